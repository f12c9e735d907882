"""Models: offline loading (fair-esm, transformers), random-weight builds of published architectures, extraction.

Public entry points:
- `load_model(spec, device="cpu", name=None) -> ModelAdapter` and `expand_checkpoints(name, spec)` (loading.py)
- `extract(adapter, inputs) -> Representations` (per-layer arrays in memory), `extract_representations(adapter,
  inputs, ids, out_dir, ...)` (the same, written to disk with resume) and `gather_shards(shard_dirs, out_dir)`
  (extraction.py)
- `build_random_esm2`, `build_random_esm2_hf`, `build_random_imagegpt`, `build_random_bert` (random_init.py)
- `hf_esm2_to_fair_esm(folder, target)` (convert.py): a Hugging Face ESM-2 folder in fair-esm's checkpoint format
- `check_unknown_share`, `detect_residue_spacing` (tokens.py): what a tokenizer makes of the inputs

Submodules import torch/transformers lazily through these names only when used.
"""

from __future__ import annotations

from .._lazy import lazy_getattr

_EXPORTS = {
    "load_model": "loading",
    "expand_checkpoints": "loading",
    "validate_spec": "spec",
    "minilm_path": "loading",
    "ModelAdapter": "adapters",
    "pool_hidden": "adapters",
    "extract": "extraction",
    "Representations": "extraction",
    "extract_representations": "extraction",
    "gather_shards": "extraction",
    "plan_batches": "extraction",
    "read_manifest": "extraction",
    "load_layer": "extraction",
    "read_ids": "extraction",
    "ExtractionResult": "extraction",
    "build_random_esm2": "random_init",
    "build_random_esm2_hf": "random_init",
    "build_random_imagegpt": "random_init",
    "build_random_bert": "random_init",
    "hf_esm2_to_fair_esm": "convert",
    "check_unknown_share": "tokens",
    "detect_residue_spacing": "tokens",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)
