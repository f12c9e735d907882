"""One home for the JSON and TSV files the library and the workflow write.

- `json_ready(value, digits=None)`: plain JSON types from numpy scalars and arrays, tuples, mappings and result
  objects with `to_dict()`; NaN and inf become `None`; with `digits`, floats are rounded to that many significant
  digits (the workflow writes `FLOAT_DIGITS` so that reruns are byte-identical).
- `write_json` / `read_json`: sorted, indented, rounded JSON written atomically.
- `write_tsv` / `read_tsv`: a table with exactly the given columns, `NA` for undefined cells, floats with
  `FLOAT_DIGITS` significant digits.

Graph files (a layer's neighbour graph, or why it has none) live with the graph: `geometry.graph_files`. This module
needs numpy only, so that every workflow environment (figures included) can import it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .atomic import write_text_atomic
from .errors import InputError

FLOAT_DIGITS = 6  # significant digits of every float the workflow writes to a table or JSON (byte-identical reruns)


def json_ready(value: Any, digits: int | None = None) -> Any:
    """A JSON-ready copy of `value`: NaN/inf -> None, numpy to Python, tuples to lists, sets to sorted lists, paths
    to strings, `to_dict()` objects and dataclasses converted; floats rounded to `digits` significant digits when
    given."""
    if hasattr(value, "to_dict") and callable(value.to_dict):
        return json_ready(value.to_dict(), digits)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return json_ready(dataclasses.asdict(value), digits)
    if isinstance(value, Mapping):
        return {str(key): json_ready(item, digits) for key, item in value.items()}
    if isinstance(value, (set, frozenset)):
        return [json_ready(item, digits) for item in sorted(value)]
    if isinstance(value, (list, tuple)):
        return [json_ready(item, digits) for item in value]
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist(), digits)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if not math.isfinite(value):
            return None
        return value if digits is None else float(f"{value:.{digits}g}")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def write_json(path: str | os.PathLike, data: Any, digits: int | None = FLOAT_DIGITS) -> None:
    """Write `data` as indented JSON with sorted keys and rounded floats, atomically."""
    write_text_atomic(path, json.dumps(json_ready(data, digits), indent=2, sort_keys=True, allow_nan=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """The JSON value stored in `path`; unreadable JSON is a one-line InputError."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise InputError(f"{path}: not JSON ({error})") from None


def format_cell(value: Any) -> str:
    """A TSV cell: floats with FLOAT_DIGITS significant digits, 'NA' for undefined values, 'true'/'false'."""
    if value is None:
        return "NA"
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (float, np.floating)):
        return "NA" if not math.isfinite(float(value)) else f"{float(value):.{FLOAT_DIGITS}g}"
    return escape_cell(str(value))


_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def escape_cell(text: str) -> str:
    """Free text made safe for one TSV cell: a tab or line break (also U+2028 and the like) written as its escape
    (\\t, \\n, \\r, \\uXXXX), so that a row always has its number of fields."""
    return "".join(c if len((c + "x").splitlines()) == 1 and c != "\t" else _ESCAPES.get(c, f"\\u{ord(c):04x}")
                   for c in text)


def write_tsv(path: str | os.PathLike, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> None:
    """Write rows (mappings) with exactly `columns` (a missing cell is NA), atomically."""
    lines = ["\t".join(columns)]
    lines += ["\t".join(format_cell(row.get(column)) for column in columns) for row in rows]
    write_text_atomic(path, "\n".join(lines) + "\n")


def read_tsv(path: str | os.PathLike) -> list[dict[str, str]]:
    """The rows of a table written by `write_tsv`, as dicts of strings (no quoting inside); a row whose field
    count is not the header's is a one-line InputError naming the line."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    if not lines:
        raise InputError(f"{path}: empty table (no header line)")
    header = lines[0].split("\t")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        fields = line.split("\t")
        if len(fields) != len(header):
            raise InputError(f"{path}:{number}: {len(fields)} fields where the header has {len(header)}")
        rows.append(dict(zip(header, fields)))
    return rows


def read_tsv_columns(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A numeric table written by `write_tsv` as float arrays per column (`NA` -> NaN)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t") if lines else []
    rows = read_tsv(path)
    try:
        return {name: np.array([math.nan if row[name] == "NA" else float(row[name]) for row in rows], dtype=float)
                for name in header}
    except ValueError as error:
        raise InputError(f"{path}: not a numeric table ({error})") from None
