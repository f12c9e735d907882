"""Convert a Hugging Face ESM-2 folder (EsmModel, EsmForMaskedLM, EsmForSequenceClassification) to fair-esm's
checkpoint format, so the same trained weights run through either backend.

Key renames (the HF names under an optional `esm.` prefix -> fair-esm's): `embeddings.word_embeddings` ->
`embed_tokens`; `encoder.emb_layer_norm_after` -> `emb_layer_norm_after`; in `encoder.layer.N.`:
`attention.self.query/key/value` -> `self_attn.q_proj/k_proj/v_proj`, `attention.self.rotary_embeddings.inv_freq`
-> `self_attn.rot_emb.inv_freq`, `attention.output.dense` -> `self_attn.out_proj`, `attention.LayerNorm` ->
`self_attn_layer_norm`, `intermediate.dense` -> `fc1`, `output.dense` -> `fc2`, `LayerNorm` -> `final_layer_norm`,
under `layers.N.`. Task heads (`classifier.*`, `pooler.*`) are left out. A model without a language-model head
(a fine-tuned classifier) gets fair-esm's freshly initialised head, recorded in the checkpoint's `hidden_geometry`
entry; the head does not touch the representations.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

import torch

from ..atomic import atomic_path
from ..errors import InputError

_LAYER_PARTS = {
    "attention.self.query.": "self_attn.q_proj.",
    "attention.self.key.": "self_attn.k_proj.",
    "attention.self.value.": "self_attn.v_proj.",
    "attention.self.rotary_embeddings.inv_freq": "self_attn.rot_emb.inv_freq",
    "attention.output.dense.": "self_attn.out_proj.",
    "attention.LayerNorm.": "self_attn_layer_norm.",
    "intermediate.dense.": "fc1.",
    "output.dense.": "fc2.",
    "LayerNorm.": "final_layer_norm.",
}
_DROPPED = re.compile(
    r"^(classifier\.|pooler\.|embeddings\.position_ids|embeddings\.position_embeddings|lm_head\.decoder\.)"
)


def fair_esm_key(hf_key: str) -> str | None:
    """fair-esm's name for one HF ESM-2 weight, None for weights fair-esm has no place for (task heads)."""
    key = hf_key.removeprefix("esm.")
    if _DROPPED.match(key):
        return None
    if key.startswith("embeddings.word_embeddings."):
        return "embed_tokens." + key[len("embeddings.word_embeddings.") :]
    if key.startswith("encoder.emb_layer_norm_after."):
        return key[len("encoder.") :]
    if key.startswith(("lm_head.", "contact_head.")):
        return key
    match = re.match(r"^encoder\.layer\.(\d+)\.(.+)$", key)
    if match:
        rest = match.group(2)
        for hf_part, fair_part in _LAYER_PARTS.items():
            if rest.startswith(hf_part):
                return f"layers.{match.group(1)}.{fair_part}{rest[len(hf_part) :]}"
    raise InputError(f"weight '{hf_key}' has no counterpart in fair-esm's ESM-2")


def _hf_weights(folder: Path) -> dict[str, torch.Tensor]:
    if (folder / "model.safetensors").is_file():
        from safetensors.torch import load_file

        return load_file(str(folder / "model.safetensors"))
    if (folder / "pytorch_model.bin").is_file():
        try:
            return torch.load(str(folder / "pytorch_model.bin"), map_location="cpu", weights_only=True)
        except Exception as exc:
            raise InputError(f"{folder}/pytorch_model.bin: the weights-only loader refuses it ({exc})") from exc
    raise InputError(f"{folder}: no model.safetensors or pytorch_model.bin")


def hf_esm2_to_fair_esm(folder: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Write `target` (a `.pt` file named `esm2*`, as fair-esm requires) from the HF ESM-2 folder `folder`.

    The architecture comes from the folder's config.json (rotary positions and token dropout required, as in
    every ESM-2). Returns the target path.
    """
    from esm.model.esm2 import ESM2

    source, out = Path(folder), Path(target)
    if out.suffix != ".pt" or not out.name.startswith("esm2"):
        raise InputError(f"{out}: fair-esm reads ESM-2 only from a .pt file whose name starts with esm2")
    try:
        config = json.loads((source / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{source}/config.json: cannot read ({exc})") from exc
    if config.get("model_type") != "esm" or config.get("position_embedding_type", "rotary") != "rotary":
        raise InputError(f"{source}/config.json: not an ESM-2 model (model_type esm with rotary positions)")
    layers, width, heads = (int(config[k]) for k in ("num_hidden_layers", "hidden_size", "num_attention_heads"))
    weights = {}
    for key, value in _hf_weights(source).items():
        name = fair_esm_key(key)
        if name is not None:
            weights[name] = value
    model = ESM2(
        num_layers=layers, embed_dim=width, attention_heads=heads, token_dropout=bool(config.get("token_dropout", True))
    )
    expected = model.state_dict()
    wrong = [k for k, v in weights.items() if k not in expected or expected[k].shape != v.shape]
    if wrong:
        raise InputError(f"{source}: weight '{wrong[0]}' does not fit ESM-2 {layers} x {width} ({len(wrong)} such)")
    missing = sorted(k for k in expected if k not in weights)
    not_heads = [k for k in missing if not k.startswith(("lm_head.", "contact_head."))]
    if not_heads:
        raise InputError(f"{source}: weight '{not_heads[0]}' of the encoder is missing ({len(not_heads)} such)")
    full = {k: weights.get(k, v).clone() for k, v in expected.items()}
    full["lm_head.weight"] = full["embed_tokens.weight"]  # tied in ESM-2, as fair-esm builds it
    cfg = argparse.Namespace(
        encoder_layers=layers, encoder_embed_dim=width, encoder_attention_heads=heads, token_dropout=True
    )
    checkpoint = {
        "model": {f"encoder.{k}": v for k, v in full.items() if not k.startswith("contact_head.")},
        "cfg": {"model": cfg},
        "hidden_geometry": {
            "converted_from": str(source),
            "untrained": False,
            "fresh_heads": sorted({k.split(".")[0] for k in missing}),
        },
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        torch.save(checkpoint, tmp)
    return out
