"""Models with their published architectures and random weights, saved in the real checkpoint formats.

They let the real loading and extraction code run offline (tests, the demo). Each one carries an `untrained`
marker that `load_model` reads, so every output made from it says `untrained: true`:
- fair-esm `.pt` files: a `"hidden_geometry": {"untrained": true, ...}` entry in the checkpoint dict (fair-esm
  ignores keys it does not know);
- transformers folders: an `untrained.json` file beside `config.json`.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_path, write_text_atomic
from ..errors import InputError
from ._hf import quiet_transformers

UNTRAINED_MARKER = "untrained.json"

# (layers, embed_dim, heads) -> fair-esm name, from the ESM-2 release (Lin et al. 2023, fair-esm README).
ESM2_ARCHITECTURES = {
    (6, 320, 20): "esm2_t6_8M_UR50D",
    (12, 480, 20): "esm2_t12_35M_UR50D",
    (30, 640, 20): "esm2_t30_150M_UR50D",
    (33, 1280, 20): "esm2_t33_650M_UR50D",
    (36, 2560, 40): "esm2_t36_3B_UR50D",
    (48, 5120, 40): "esm2_t48_15B_UR50D",
}
ESM2_BY_NAME = {name: arch for arch, name in ESM2_ARCHITECTURES.items()}

# iGPT sizes from Chen et al. 2020 (n_layer, n_embd, n_head); all at 32 x 32 in the transformers releases.
IGPT_ARCHITECTURES = {"small": (24, 512, 8), "medium": (36, 1024, 8), "large": (48, 1536, 16)}


def esm2_file_name(num_layers: int, embed_dim: int, attention_heads: int) -> str:
    """The fair-esm file name for an architecture; unknown ones get an `esm2_...` name fair-esm accepts."""
    name = ESM2_ARCHITECTURES.get((num_layers, embed_dim, attention_heads))
    return f"{name}.pt" if name else f"esm2_t{num_layers}_d{embed_dim}_h{attention_heads}_random.pt"


def _marker(seed: int, architecture: dict) -> dict:
    return {
        "untrained": True,
        "seed": seed,
        "architecture": architecture,
        "made_by": "hidden_geometry.models.random_init",
    }


def build_random_esm2(
    path: str | os.PathLike,
    num_layers: int = 6,
    embed_dim: int = 320,
    attention_heads: int = 20,
    seed: int = 0,
) -> Path:
    """Save a randomly initialised fair-esm ESM-2 as fair-esm's checkpoint dict plus its contact-regression file.

    `path` is the `.pt` file (its name must start with `esm2`: fair-esm picks the architecture family from it) or
    a folder, where the file gets the published name of the architecture (default: esm2_t6_8M_UR50D.pt).
    Returns the checkpoint path.
    """
    from esm.model.esm2 import ESM2

    target = Path(path)
    if target.suffix != ".pt":
        target = target / esm2_file_name(num_layers, embed_dim, attention_heads)
    if not target.name.startswith("esm2"):
        raise InputError(f"{target}: fair-esm only treats files named esm2*.pt as ESM-2 checkpoints")
    if embed_dim % attention_heads:
        raise InputError(f"embed_dim {embed_dim} is not divisible by attention_heads {attention_heads}")
    torch.manual_seed(seed)
    model = ESM2(num_layers=num_layers, embed_dim=embed_dim, attention_heads=attention_heads, token_dropout=True)
    state = model.state_dict()
    regression = {k: v for k, v in state.items() if k.startswith("contact_head.regression.")}
    # fair-esm's v2 loader strips "encoder." from every key; the released files carry that prefix.
    weights = {f"encoder.{k}": v.clone() for k, v in state.items() if k not in regression}
    cfg = argparse.Namespace(
        encoder_layers=num_layers,
        encoder_embed_dim=embed_dim,
        encoder_attention_heads=attention_heads,
        token_dropout=True,
    )
    arch = {"num_layers": num_layers, "embed_dim": embed_dim, "attention_heads": attention_heads}
    checkpoint = {"model": weights, "cfg": {"model": cfg}, "hidden_geometry": _marker(seed, arch)}
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        torch.save(checkpoint, tmp)
    regression_path = target.with_name(f"{target.stem}-contact-regression.pt")
    with atomic_path(regression_path) as tmp:
        torch.save({"model": {k: v.clone() for k, v in regression.items()}}, tmp)
    return target


def _load_fair_esm_weights(path: Path) -> dict:
    """A fair-esm checkpoint with its contact regression merged in, loaded weights-only."""
    torch.serialization.add_safe_globals([argparse.Namespace])
    data = torch.load(str(path), map_location="cpu", weights_only=True)
    regression = path.with_name(f"{path.stem}-contact-regression.pt")
    if regression.is_file():
        data["model"].update(torch.load(str(regression), map_location="cpu", weights_only=True)["model"])
    return data


def esm2_vocabulary() -> list[str]:
    """ESM-2's 33 tokens in fair-esm's order (the same order as the transformers vocab.txt)."""
    import esm

    return list(esm.data.Alphabet.from_architecture("ESM-1b").all_toks)


def _write_marker(folder: Path, seed: int, architecture: dict) -> None:
    write_text_atomic(folder / UNTRAINED_MARKER, json.dumps(_marker(seed, architecture), indent=1) + "\n")


def _save_model_folder(model: torch.nn.Module, folder: Path) -> None:
    # save_pretrained writes several files; a folder is complete once untrained.json (written last) is there.
    with quiet_transformers():
        model.save_pretrained(folder)


# fair-esm ESM2 parameter names -> transformers EsmForMaskedLM names ({i}: block index).
_FAIR_TO_HF_LAYER = {
    "self_attn.q_proj": "attention.self.query",
    "self_attn.k_proj": "attention.self.key",
    "self_attn.v_proj": "attention.self.value",
    "self_attn.out_proj": "attention.output.dense",
    "self_attn_layer_norm": "attention.LayerNorm",
    "fc1": "intermediate.dense",
    "fc2": "output.dense",
    "final_layer_norm": "LayerNorm",
}
_FAIR_TO_HF_TOP = {
    "embed_tokens.weight": "esm.embeddings.word_embeddings.weight",
    "emb_layer_norm_after.weight": "esm.encoder.emb_layer_norm_after.weight",
    "emb_layer_norm_after.bias": "esm.encoder.emb_layer_norm_after.bias",
    "contact_head.regression.weight": "esm.contact_head.regression.weight",
    "contact_head.regression.bias": "esm.contact_head.regression.bias",
    "lm_head.weight": "lm_head.decoder.weight",
}


def fair_esm_to_hf_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a fair-esm ESM2 state dict (no "encoder." prefix) to transformers EsmForMaskedLM names."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key in _FAIR_TO_HF_TOP:
            out[_FAIR_TO_HF_TOP[key]] = value
        elif key.startswith("lm_head."):
            out[key] = value
        elif key.startswith("layers.") and ".rot_emb." not in key:
            _, index, rest = key.split(".", 2)
            module, param = rest.rsplit(".", 1)
            out[f"esm.encoder.layer.{index}.{_FAIR_TO_HF_LAYER[module]}.{param}"] = value
    return out


def build_random_esm2_hf(
    folder: str | os.PathLike,
    num_layers: int = 6,
    hidden_size: int = 320,
    attention_heads: int = 20,
    seed: int = 0,
    from_fair_esm: str | os.PathLike | None = None,
) -> Path:
    """Save a randomly initialised ESM-2 as a transformers folder like `facebook/esm2_*` (EsmForMaskedLM).

    Writes config.json, model.safetensors, vocab.txt with the tokenizer config, and untrained.json. With
    `from_fair_esm` (a fair-esm `.pt` made by `build_random_esm2`), the architecture and weights are taken from
    that file instead, so both backends hold the same model and must give the same representations.
    """
    from transformers import EsmConfig, EsmForMaskedLM, EsmTokenizer

    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    fair_state = None
    if from_fair_esm is not None:
        data = _load_fair_esm_weights(Path(from_fair_esm))
        cfg = data["cfg"]["model"]
        num_layers, hidden_size, attention_heads = (
            cfg.encoder_layers,
            cfg.encoder_embed_dim,
            cfg.encoder_attention_heads,
        )
        seed = int((data.get("hidden_geometry") or {}).get("seed", seed))
        # Released files prefix keys with "encoder.sentence_encoder." or "encoder." (fair-esm strips both).
        fair_state = {
            k.removeprefix("encoder.sentence_encoder.").removeprefix("encoder."): v for k, v in data["model"].items()
        }
    config = EsmConfig(
        vocab_size=33,
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=attention_heads,
        intermediate_size=4 * hidden_size,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        max_position_embeddings=1026,
        position_embedding_type="rotary",
        layer_norm_eps=1e-5,
        token_dropout=True,
        emb_layer_norm_before=False,
        pad_token_id=1,
        mask_token_id=32,
    )
    torch.manual_seed(seed)
    model = EsmForMaskedLM(config).eval()
    if fair_state is not None:
        converted = fair_esm_to_hf_state(fair_state)
        missing, unexpected = model.load_state_dict(converted, strict=False)
        # inv_freq is a buffer computed from the config; contact regression may be absent from the main file.
        missing = [k for k in missing if not k.endswith("inv_freq") and "contact_head" not in k]
        if missing or unexpected:
            raise InputError(
                f"{from_fair_esm}: cannot convert to transformers (missing {missing[:3]}, unexpected {unexpected[:3]})"
            )
    _save_model_folder(model, target)
    vocab = target / "vocab.txt"
    write_text_atomic(vocab, "\n".join(esm2_vocabulary()) + "\n")
    tokenizer = EsmTokenizer(vocab_file=str(vocab), model_max_length=1024)
    tokenizer.save_pretrained(target)
    arch = {"num_layers": num_layers, "hidden_size": hidden_size, "attention_heads": attention_heads}
    _write_marker(target, seed, arch)
    return target


def colour_grid_clusters(levels: int = 8) -> np.ndarray:
    """levels**3 colour centroids on a regular RGB grid, in the processor's [-1, 1] pixel scale (float32)."""
    steps = (2 * np.arange(levels, dtype=np.float64) + 1) / levels - 1.0
    grid = np.stack(np.meshgrid(steps, steps, steps, indexing="ij"), axis=-1).reshape(-1, 3)
    return grid.astype(np.float32)


def build_random_imagegpt(
    folder: str | os.PathLike,
    n_layer: int = 24,
    n_embd: int = 512,
    n_head: int = 8,
    size: int = 32,
    seed: int = 0,
) -> Path:
    """Save a randomly initialised ImageGPT (default: iGPT-S, 24 x 512, 8 heads, 32 x 32) as a transformers folder.

    The image processor gets 512 colour clusters on an 8 x 8 x 8 RGB grid (the released models use k-means
    centroids of ImageNet pixels, which cannot be had offline) and resizes to size x size.
    """
    from transformers import ImageGPTConfig, ImageGPTForCausalImageModeling
    from transformers.models.imagegpt.image_processing_pil_imagegpt import ImageGPTImageProcessorPil

    if n_embd % n_head:
        raise InputError(f"n_embd {n_embd} is not divisible by n_head {n_head}")
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    clusters = colour_grid_clusters(8)
    config = ImageGPTConfig(
        vocab_size=len(clusters) + 1,  # + the start-of-sequence token
        n_positions=size * size,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
    )
    torch.manual_seed(seed)
    model = ImageGPTForCausalImageModeling(config).eval()
    _save_model_folder(model, target)
    processor = ImageGPTImageProcessorPil(
        clusters=clusters, size={"height": size, "width": size}, do_resize=True, do_normalize=True
    )
    processor.save_pretrained(target)
    arch = {"n_layer": n_layer, "n_embd": n_embd, "n_head": n_head, "size": size}
    _write_marker(target, seed, arch)
    return target


# A small English word list for the WordPiece vocabulary of the random BERT: enough that ordinary sentences
# tokenise into words and sub-words rather than [UNK].
_WORDS = """
the a an and or but not no yes of to in on at by for with from as is are was were be been being it its this that
these those there here i you he she we they me him her us them my your his our their what which who whom whose
when where why how all any both each few more most other some such only own same so than too very can will just
do does did done have has had having good bad great new old first last long little big small high low right left
film movie story plot actor actors acting scene scenes character characters director music time life love world
make made makes making see seen seeing watch watched funny boring dull fine best worst better worse nothing
something everything one two three work works well way even also never ever still much many feel feels like
""".split()


def _bert_tokenizer(cls: type, vocab: list[str], vocab_file: Path, max_length: int) -> object:
    """A BertTokenizerFast over `vocab`; transformers 5 takes the vocabulary itself, 4.x a vocab file."""
    import inspect

    if "vocab" in inspect.signature(cls.__init__).parameters:
        return cls(vocab={tok: i for i, tok in enumerate(vocab)}, do_lower_case=True, model_max_length=max_length)
    return cls(vocab_file=str(vocab_file), do_lower_case=True, model_max_length=max_length)


def build_random_bert(
    folder: str | os.PathLike,
    num_layers: int = 12,
    hidden_size: int = 768,
    attention_heads: int = 12,
    max_position_embeddings: int = 512,
    seed: int = 0,
    words: list[str] | None = None,
) -> Path:
    """Save a randomly initialised BERT (default: BERT-base, 12 x 768, 12 heads) with a WordPiece tokenizer.

    The vocabulary: the five BERT specials, single characters with their `##` continuations, and `words`
    (default: a small built-in English list), so any lower-case ASCII text tokenises without [UNK].
    """
    from transformers import BertConfig, BertModel, BertTokenizerFast

    if hidden_size % attention_heads:
        raise InputError(f"hidden_size {hidden_size} is not divisible by attention_heads {attention_heads}")
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789") + list(".,;:!?'\"()-/&%$#@*+=<>[]_~`")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars + [f"##{c}" for c in chars]
    seen = set(vocab)
    for word in words if words is not None else _WORDS:
        word = word.lower()
        if word not in seen:
            vocab.append(word)
            seen.add(word)
    vocab_file = target / "vocab.txt"
    write_text_atomic(vocab_file, "\n".join(vocab) + "\n")
    tokenizer = _bert_tokenizer(BertTokenizerFast, vocab, vocab_file, max_position_embeddings)
    tokenizer.save_pretrained(target)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=attention_heads,
        intermediate_size=4 * hidden_size,
        max_position_embeddings=max_position_embeddings,
        pad_token_id=0,
    )
    torch.manual_seed(seed)
    model = BertModel(config).eval()
    _save_model_folder(model, target)
    arch = {"num_layers": num_layers, "hidden_size": hidden_size, "attention_heads": attention_heads}
    _write_marker(target, seed, arch)
    return target
