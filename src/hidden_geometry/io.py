"""One home for the files the library and the workflow write and read back: JSON, TSV tables, graph files.

- `json_ready(value, digits=None)`: plain JSON types from numpy scalars and arrays, tuples, mappings and result
  objects with `to_dict()`; NaN and inf become `None`; with `digits`, floats are rounded to that many significant
  digits (the workflow writes `FLOAT_DIGITS` so that reruns are byte-identical).
- `as_record(obj)` / `Record`: the one `to_dict()` of the result dataclasses: their fields in order, each through
  `json_ready` (a field's metadata `record_key` names its key).
- `write_json` / `read_json`: sorted, indented, rounded JSON written atomically.
- `write_table` / `read_table` (pandas): a TSV table with exactly the given columns. The workflow's tables write
  `NA` for undefined cells, floats with `FLOAT_DIGITS` significant digits and free text with its tabs and line breaks
  escaped; `quoted=True` is the items table's format (csv minimal quoting, so that any text round-trips).
  `read_table_columns`: a numeric table as float arrays.
- `save_graph` / `load_graph`: a `NeighbourGraph` as `.npz`; `write_graph_file` / `read_graph_file`: a layer's graph
  file, the graph or the `UndefinedGraph` saying why the layer has none.

numpy, pandas and the numpy-only `graph` module: every workflow environment (figures included) can import it.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import re
from io import StringIO
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:  # pandas is imported where a table is read or written (0.2 s a process otherwise)
    import pandas as pd

from .atomic import atomic_path, write_text_atomic
from .errors import InputError
from .graph import METRICS, NeighbourGraph, UndefinedGraph

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


RECORD_KEY = "record_key"  # field metadata: the field's key in `as_record` (default its name; None leaves it out)
# Declared types whose numbers a record writes as floats (an int given to a float field is written 3.0, not 3).
_FLOAT_FIELDS = {"float": "one", "float | None": "one", "list[float]": "each", "tuple[float, ...]": "each",
                 "dict[str, float]": "values"}


def _as_declared(value: Any, declared: Any) -> Any:
    """`value` with the numbers of a field declared float (alone, in a list/tuple, as dict values) as floats."""
    how = _FLOAT_FIELDS.get(declared if isinstance(declared, str) else getattr(declared, "__name__", ""))

    def number(item: Any) -> Any:
        is_int = isinstance(item, (int, np.integer)) and not isinstance(item, (bool, np.bool_))
        return float(item) if is_int else item

    if how == "one":
        return number(value)
    if how == "each" and isinstance(value, (list, tuple)):
        return [number(item) for item in value]
    if how == "values" and isinstance(value, Mapping):
        return {key: number(item) for key, item in value.items()}
    return value


def as_record(obj: Any) -> dict[str, Any]:
    """The JSON-ready record of a result dataclass: its fields in order, keyed by name (or by the field's metadata
    `record_key`; None leaves the field out), each value through `json_ready` (NaN/inf -> None, numpy to Python,
    tuples to lists, a nested result by its own `to_dict()`), the numbers of a field declared float as floats.
    Floats are not rounded: `write_json` rounds them for a file."""
    return {field.metadata.get(RECORD_KEY, field.name): json_ready(_as_declared(getattr(obj, field.name), field.type))
            for field in dataclasses.fields(obj) if field.metadata.get(RECORD_KEY, field.name) is not None}


class Record:
    """Mixin of the result dataclasses: `to_dict()` is `as_record(self)`."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (`io.as_record`)."""
        return as_record(self)


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


TABLE_ENCODING = "utf-8"


def _table_frame(table: pd.DataFrame | Sequence[Mapping[str, Any]], columns: Sequence[str] | None,
                 quoted: bool) -> pd.DataFrame:
    """The cells to write as strings, exactly `columns` (a frame's own columns when None)."""
    import pandas as pd

    cell = str if quoted else format_cell
    if isinstance(table, pd.DataFrame):
        frame = table if columns is None else table.reindex(columns=list(columns))
        return frame.map(cell).astype(object)
    if columns is None:
        raise ValueError("write_table: rows need their columns")
    return pd.DataFrame([[cell(row.get(column)) for column in columns] for row in table], columns=list(columns),
                        dtype=object)


def write_table(path: str | os.PathLike, table: pd.DataFrame | Sequence[Mapping[str, Any]],
                columns: Sequence[str] | None = None, quoted: bool = False) -> Path:
    """Write a TSV table with exactly `columns` (a DataFrame, or rows as mappings; a missing cell is NA), atomically.

    Cells as `format_cell` writes them: floats with FLOAT_DIGITS significant digits, NA, true/false, free text with
    its tabs and line breaks escaped. `quoted=True` (the items table): cells written as given, with the csv module's
    minimal quoting, so that a text with tabs, line breaks or quotes round-trips through `read_table(quoted=True)`.
    """
    frame = _table_frame(table, columns, quoted)
    target = Path(path)
    with atomic_path(target) as tmp, open(tmp, "w", encoding=TABLE_ENCODING, newline="") as handle:
        frame.to_csv(handle, sep="\t", index=False, lineterminator="\n",
                     quoting=csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE)
    return target


def _decoded(path: Path) -> str:
    """The file's text (UTF-8, a byte-order mark dropped); bytes that are not UTF-8 are an InputError naming the
    line. Decoded from the bytes, so that a quoted "\\r\\n" inside a cell stays as written."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: table not found") from None
    except OSError as error:
        raise InputError(f"{path}: cannot read the table ({error.strerror})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}: not UTF-8 ({error.reason})") from None


_LINE_BREAK = re.compile(r"\r\n|\n|\r")
_LONG_ROW = "\x00long row:"  # first cell of a row with more fields than the header, then its number of fields


def _mark_long_row(fields: list[str]) -> list[str]:
    """pandas' `on_bad_lines` hook: the row is kept, marked, so that `read_table` names its line."""
    return [f"{_LONG_ROW}{len(fields)}"]


def read_table(path: str | os.PathLike, quoted: bool = False, comment: str | None = None) -> pd.DataFrame:
    """A TSV table with a header line as a DataFrame of strings (cells as written: no NA conversion, no
    unescaping), indexed by the line number of each row in the file (the header is line 1 when nothing precedes it).

    Empty lines and, with `comment`, lines starting with it are skipped. A row whose number of fields is not the
    header's, an empty or repeated column name, or a file without a header is a one-line InputError naming the file
    and line. `quoted=True` reads the items table's format (csv minimal quoting; a quoted cell may hold tabs and line
    breaks).
    """
    import pandas as pd

    source = Path(path)
    text = _decoded(source)
    if comment:
        # blanked, not removed, so that the line numbers stay those of the file
        text = re.sub(f"(?m)^{re.escape(comment)}[^\r\n]*", "", text)
    leading = re.match(f"(?:{_LINE_BREAK.pattern})*", text).group()  # empty lines before the header
    text = text[len(leading):]
    try:
        # The python engine leaves the cells of a short row missing (NaN), where the C engine fills them with "";
        # a long row is kept as a marked row, so that its line is found below.
        cells = pd.read_csv(StringIO(text, newline=""), sep="\t", header=None, dtype=str, keep_default_na=False,
                            skip_blank_lines=False, engine="python", on_bad_lines=_mark_long_row,
                            quoting=csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE)
    except pd.errors.EmptyDataError:
        raise InputError(f"{source}: empty table (no header line)") from None
    except (pd.errors.ParserError, csv.Error) as error:
        raise InputError(f"{source}: not a TSV table ({' '.join(str(error).split())})") from None
    # Line of each record: one more than the previous record's, plus the line breaks inside its quoted cells. Every
    # line of the file must be in a record: pandas drops a last record whose quote is never closed.
    breaks = cells.apply(lambda column: column.str.count(_LINE_BREAK)).fillna(0).sum(axis=1).astype(int).to_numpy()
    if len(cells) + int(breaks.sum()) != len(_LINE_BREAK.findall(text + "\n")) - text.endswith(("\n", "\r")):
        raise InputError(f"{source}: not a TSV table (a quote is never closed)")
    lines = 1 + len(_LINE_BREAK.findall(leading)) + np.arange(len(cells))
    lines += np.concatenate([[0], np.cumsum(breaks)[:-1]]).astype(int)
    blank = cells.isna().all(axis=1).to_numpy()
    if blank.all():
        raise InputError(f"{source}: empty table (no header line)")
    first = int(np.argmax(~blank))
    header = [str(name) for name in cells.iloc[first]]
    if cells.iloc[first].isna().any() or "" in header or len(set(header)) != len(header):
        raise InputError(f"{source}:{lines[first]}: the header has empty or repeated column names: {header}")
    keep = ~blank
    keep[: first + 1] = False
    rows = cells[keep]
    long = rows.iloc[:, 0].str.startswith(_LONG_ROW).to_numpy()
    short = rows.isna().any(axis=1).to_numpy()
    if long.any() or short.any():
        first_bad = int(np.argmax(long | short))
        row = rows.iloc[first_bad]
        n_fields = int(row.iloc[0][len(_LONG_ROW):]) if long[first_bad] else int(row.notna().sum())
        raise InputError(f"{source}:{lines[keep][first_bad]}: {n_fields} fields where the header has {len(header)}")
    rows = rows.set_axis(header, axis=1).set_axis(pd.Index(lines[keep], name="line"), axis=0)
    return rows.astype(object)


def read_table_columns(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A numeric table written by `write_table` as float arrays per column (`NA` -> NaN); a cell that is not a
    number is a one-line InputError naming the line and column."""
    table = read_table(path)
    columns = {}
    for name in table.columns:
        values = []
        for line, cell in table[name].items():
            try:
                values.append(math.nan if cell == "NA" else float(cell))
            except ValueError:
                raise InputError(f"{path}:{line}: column {name}: {cell!r} is not a number") from None
        columns[name] = np.array(values, dtype=float)
    return columns


# ---- graph files -------------------------------------------------------------------------------------------------

GRAPH_KEYS = ("rows", "indices", "distances", "n_duplicates", "k", "metric", "n_input")


def save_graph(graph: NeighbourGraph, path: str | os.PathLike) -> None:
    """Write the graph to a `.npz` file (atomically)."""
    with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as handle:
        np.savez(
            handle,
            rows=graph.rows.astype(np.int64),
            indices=graph.indices.astype(np.int64),
            distances=graph.distances.astype(np.float64),
            n_duplicates=np.int64(graph.n_duplicates),
            k=np.int64(graph.k),
            metric=np.str_(graph.metric),
            n_input=np.int64(graph.n_input),
        )


def load_graph(path: str | os.PathLike) -> NeighbourGraph:
    """Read a graph written by `save_graph`; a missing key or inconsistent shapes raise InputError."""
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [key for key in GRAPH_KEYS if key not in data.files]
            if missing:
                raise InputError(f"{path}: not a neighbour graph, missing key(s) {', '.join(missing)}")
            rows = data["rows"].astype(np.int64)
            indices = data["indices"].astype(np.int64)
            distances = data["distances"].astype(np.float64)
            n_duplicates, k, n_input = int(data["n_duplicates"]), int(data["k"]), int(data["n_input"])
            metric = str(data["metric"])
    except (OSError, ValueError, EOFError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{path}: cannot read a neighbour graph ({exc})") from exc
    if indices.ndim != 2 or indices.shape != distances.shape or indices.shape != (rows.size, k):
        raise InputError(
            f"{path}: inconsistent shapes rows {rows.shape}, indices {indices.shape}, distances {distances.shape}"
        )
    if metric not in METRICS:
        raise InputError(f"{path}: unknown metric {metric!r}")
    return NeighbourGraph(rows, indices, distances, n_duplicates, k, metric, n_input)


def write_graph_file(path: str | os.PathLike, graph: NeighbourGraph | UndefinedGraph) -> None:
    """A layer's graph file: its `NeighbourGraph` (`save_graph`) or the `UndefinedGraph` saying why it has none
    (`.npz`, atomically), so that the summary reads every layer's file the same way."""
    if isinstance(graph, UndefinedGraph):
        with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as handle:
            np.savez(handle, undefined_reason=np.array(graph.reason), n_points=np.array(graph.n_points, dtype=np.int64))
        return
    save_graph(graph, path)


def read_graph_file(path: str | os.PathLike) -> NeighbourGraph | UndefinedGraph:
    """The `NeighbourGraph` or `UndefinedGraph` stored by `write_graph_file`."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if "undefined_reason" in data.files:
                return UndefinedGraph(str(data["undefined_reason"]), int(data["n_points"]))
    except (OSError, ValueError, EOFError) as error:
        raise InputError(f"{path}: cannot read a graph file ({error})") from None
    return load_graph(path)
