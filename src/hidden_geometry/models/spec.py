"""A model spec's own checks, without importing torch: `validate_spec(spec, name)`.

The keys are documented in `hidden_geometry.models.loading`. `load_model` calls `validate_spec`; the workflow's
config check (`hidden_geometry.config.check_config`) calls it too, before any job, so each rule about a model's
settings (e.g. fair-esm serves only ESM-2) is written once, here.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from .tokens import DEFAULT_MAX_UNKNOWN_SHARE, RARE_RESIDUE_POLICIES

POOLINGS = ("mean", "last", "cls")
PROTEIN_KINDS = ("protein", "esm2")
TAPS = ("hidden", "ln_1")
KINDS = ("protein", "esm2", "igpt", "text")
BACKENDS = ("fair-esm", "transformers")
DTYPES = ("auto", "fp32", "fp16", "bf16")
SPEC_KEYS = (
    "kind",
    "backend",
    "source",
    "path",
    "pooling",
    "tap",
    "dtype",
    "max_tokens",
    "trust_pickle",
    "untrained",
    "device_map",
    "offload",
    "offload_folder",
    "checkpoints",
    "checkpoint",
    "step",
    "revision",
    "max_unknown_share",
    "rare_residues",
    "checkpoint_of",
    "name",
)


def _key(name: str, key: str) -> str:
    return f"models.{name}.{key}"


def infer_kind(spec: dict) -> str:
    """`kind` from the spec, or guessed from the source/path name (esm2*, imagegpt*, else text)."""
    if spec.get("kind"):
        return str(spec["kind"])
    hint = f"{spec.get('source', '')} {Path(str(spec.get('path', ''))).name}".lower()
    if "esm2" in hint:
        return "esm2"
    if "imagegpt" in hint or "igpt" in hint:
        return "igpt"
    return "text"


def infer_backend(spec: dict, kind: str) -> str:
    """`backend` from the spec, or fair-esm for ESM-2 named without a hub owner or given as a `.pt` file."""
    if spec.get("backend"):
        return str(spec["backend"])
    if kind != "esm2":
        return "transformers"
    path = str(spec.get("path", "") or "")
    if path:
        return "fair-esm" if path.endswith(".pt") else "transformers"
    return "transformers" if "/" in str(spec.get("source", "")) else "fair-esm"


def validate_spec(spec: dict, name: str) -> dict:
    """Check a model spec and return it with `kind`, `backend`, `pooling`, `tap`, `dtype` filled in."""
    if not isinstance(spec, dict):
        raise InputError(f"models.{name}: expected a mapping of settings, got {type(spec).__name__}")
    for key in spec:
        if key not in SPEC_KEYS:
            raise InputError(f"{_key(name, key)}: unknown setting (known: {', '.join(SPEC_KEYS)})")
    if not spec.get("source") and not spec.get("path"):
        raise InputError(f"models.{name}: give `source` (a model name or id) or `path` (a local checkpoint)")
    out = dict(spec)
    out["kind"] = infer_kind(spec)
    out["backend"] = infer_backend(spec, out["kind"])
    pooling = str(spec.get("pooling", "mean"))
    tap = str(spec.get("tap", "hidden"))
    if pooling == "first_ln":
        pooling, tap = "mean", "ln_1"
    out["pooling"], out["tap"] = pooling, tap
    out["dtype"] = str(spec.get("dtype", "auto"))
    checks = [
        ("kind", out["kind"], KINDS),
        ("backend", out["backend"], BACKENDS),
        ("pooling", pooling, POOLINGS + ("first_ln",)),
        ("tap", tap, TAPS),
        ("dtype", out["dtype"], DTYPES),
    ]
    for key, value, allowed in checks:
        if value not in allowed:
            raise InputError(f"{_key(name, key)}: '{value}' is not one of {', '.join(allowed)}")
    if out["backend"] == "fair-esm" and out["kind"] != "esm2":
        raise InputError(f"{_key(name, 'backend')}: fair-esm serves only kind esm2, not '{out['kind']}'")
    if tap == "ln_1" and out["kind"] != "igpt":
        raise InputError(f"{_key(name, 'tap')}: the ln_1 tap exists only for kind igpt")
    if out["kind"] == "igpt" and pooling == "cls":
        raise InputError(f"{_key(name, 'pooling')}: iGPT has no CLS token; use mean or last")
    if "max_tokens" in spec and (not isinstance(spec["max_tokens"], int) or spec["max_tokens"] < 3):
        raise InputError(f"{_key(name, 'max_tokens')}: expected an integer >= 3, got {spec['max_tokens']!r}")
    share = spec.get("max_unknown_share", DEFAULT_MAX_UNKNOWN_SHARE)
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
        raise InputError(f"{_key(name, 'max_unknown_share')}: expected a number from 0 to 1, got {share!r}")
    out["max_unknown_share"] = float(share)
    rare = str(spec.get("rare_residues", "auto"))
    if rare not in RARE_RESIDUE_POLICIES:
        raise InputError(f"{_key(name, 'rare_residues')}: '{rare}' is not one of {', '.join(RARE_RESIDUE_POLICIES)}")
    if rare != "auto" and out["kind"] not in PROTEIN_KINDS:  # auto: the schema's default, filled in for every model
        raise InputError(f"{_key(name, 'rare_residues')}: only protein models map rare residues")
    out["rare_residues"] = rare
    if "step" in spec and (isinstance(spec["step"], bool) or not isinstance(spec["step"], int) or spec["step"] < 0):
        raise InputError(f"{_key(name, 'step')}: expected an integer >= 0, got {spec['step']!r}")
    if spec.get("path"):
        path = Path(str(spec["path"])).expanduser()
        if not path.exists():
            raise InputError(f"{_key(name, 'path')}: {path} does not exist")
        out["path"] = str(path)
    return out
