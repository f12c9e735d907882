"""Shared plumbing of the workflow's scripts: logging into the rule's log, stable JSON/TSV, the items inputs.

Snakemake puts each local script's folder on `sys.path`, so the scripts import this module as `_wf`.
Everything here is small and I/O-only; the computations live in `hidden_geometry`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sys
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

try:
    import hidden_geometry  # noqa: F401 - installed (pip install -e .)
except ImportError:  # a conda env from envs/ holds only the dependencies: use the repository's source
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from hidden_geometry.atomic import atomic_path, write_text_atomic  # noqa: E402

FLOAT_DIGITS = 6  # significant digits of every float written to a table or JSON (byte-identical reruns)


@contextlib.contextmanager
def logged(snakemake: Any) -> Iterator[logging.Logger]:
    """Send Python logging and stderr of the script to the rule's log file (or stderr when it has none)."""
    log_files = list(getattr(snakemake, "log", []) or [])
    root = logging.getLogger()
    previous_level = root.level
    stream = open(log_files[0], "a", encoding="utf-8") if log_files else None  # noqa: SIM115 - closed below
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    saved_stderr = sys.stderr
    if stream is not None:
        sys.stderr = stream  # progress bars and warnings go to the log too
    logger = logging.getLogger(f"hidden_geometry.workflow.{getattr(snakemake, 'rule', 'script')}")
    try:
        yield logger
    except Exception as error:
        logger.error("%s: %s", type(error).__name__, error)
        raise
    finally:
        sys.stderr = saved_stderr
        root.removeHandler(handler)
        root.setLevel(previous_level)
        if stream is not None:
            stream.close()


def tidy(value: Any) -> Any:
    """JSON-ready copy of `value`: floats rounded to FLOAT_DIGITS significant digits, NaN/inf -> None,
    numpy scalars and arrays to Python, tuples to lists, dataclasses with to_dict() converted."""
    if hasattr(value, "to_dict") and callable(value.to_dict):
        return tidy(value.to_dict())
    if isinstance(value, Mapping):
        return {str(key): tidy(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [tidy(item) for item in value]
    if isinstance(value, np.ndarray):
        return tidy(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if not math.isfinite(value):
            return None
        return float(f"{value:.{FLOAT_DIGITS}g}")
    return value


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write `data` as indented JSON with sorted keys and rounded floats, atomically."""
    write_text_atomic(path, json.dumps(tidy(data), indent=2, sort_keys=True, allow_nan=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def format_cell(value: Any) -> str:
    """A TSV cell: fixed float format, 'NA' for undefined values."""
    if value is None:
        return "NA"
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (float, np.floating)):
        return "NA" if not math.isfinite(float(value)) else f"{float(value):.{FLOAT_DIGITS}g}"
    return str(value)


def write_tsv(path: str | os.PathLike, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> None:
    """Write rows (dicts) with exactly `columns`, atomically."""
    lines = ["\t".join(columns)]
    lines += ["\t".join(format_cell(row.get(column)) for column in columns) for row in rows]
    write_text_atomic(path, "\n".join(lines) + "\n")


def read_tsv(path: str | os.PathLike) -> list[dict[str, str]]:
    """Read a TSV written by `write_tsv` (no quoting inside)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"))) for line in lines[1:] if line]


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """np.save through atomic_path."""
    with atomic_path(path) as tmp:
        np.save(tmp, array)


def layer_number(path: str | os.PathLike) -> int:
    """The layer of a per-layer file named like 'layer_007.json' or 'layer_007.npz'."""
    return int(Path(path).stem.rsplit("_", 1)[-1])


def input_column(columns: Mapping[str, Sequence[str]]) -> str | None:
    """Name of the items table's input column: 'sequence' or 'text' (None for images)."""
    for name in ("sequence", "text"):
        if name in columns:
            return name
    return None
