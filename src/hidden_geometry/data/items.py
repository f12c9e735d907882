"""The items table: what the data stage hands to the model stage (docs/architecture.md, section 1).

`items.tsv` is UTF-8, tab-separated, with a header. Columns: `id` (unique), `label`, `group`, then
dataset-specific columns, then the input column (`sequence` or `text`) last. Fields are written by
`io.write_table(quoted=True)`, the csv module's minimal quoting, so a tab, a newline or a double quote inside a text
round-trips exactly through `read_items`; fields without such characters are written as they are (a plain
`cut`/`awk` still works on protein tables). Images are stored beside the table as `images.npy`, uint8
[N, H, W, 3], row i = item i.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..atomic import atomic_path, write_text_atomic
from ..errors import InputError
from ..io import json_ready, read_table, write_table

# The first columns, always present and in this order.
LEADING_COLUMNS = ("id", "label", "group")
# The input itself; at most one of them, always written last.
INPUT_COLUMNS = ("sequence", "text")


@dataclass(frozen=True)
class ItemTable:
    """Items in input order: their ids and named string columns (every column has one value per item).

    `columns` never holds `id`; `label` and `group` are added as empty strings when missing.
    """

    ids: list[str]
    columns: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ids = [str(i) for i in self.ids]
        columns = {str(name): [str(v) for v in values] for name, values in self.columns.items()}
        if "id" in columns:
            raise InputError("items table: 'id' is given both as ids and as a column")
        for name, values in columns.items():
            if len(values) != len(ids):
                raise InputError(f"items table: column '{name}' has {len(values)} values for {len(ids)} ids")
            if not name or any(c in name for c in "\t\n\r\""):
                raise InputError(f"items table: bad column name {name!r}")
        seen: dict[str, int] = {}
        for index, item_id in enumerate(ids):
            if item_id == "" or any(c in item_id for c in "\t\n\r") or len(item_id.splitlines()) != 1:
                raise InputError(f"items table: item {index} has an empty id or a tab/newline or other line break "
                                 f"(such as U+2028) in its id {item_id!r}")
            if item_id in seen:
                raise InputError(f"items table: duplicate id '{item_id}' (items {seen[item_id]} and {index})")
            seen[item_id] = index
        if sum(name in columns for name in INPUT_COLUMNS) > 1:
            raise InputError("items table: has both a 'sequence' and a 'text' column")
        for name in LEADING_COLUMNS[1:]:
            columns.setdefault(name, [""] * len(ids))
        # Frozen dataclass: set the normalised copies through object.__setattr__.
        object.__setattr__(self, "ids", ids)
        object.__setattr__(self, "columns", columns)

    def __len__(self) -> int:
        return len(self.ids)

    def labels(self, column: str = "label") -> list[str]:
        """The values of one column (by default the primary label)."""
        if column == "id":
            return list(self.ids)
        if column not in self.columns:
            raise InputError(f"items table: no column '{column}' (columns: {', '.join(self.column_names())})")
        return list(self.columns[column])

    def subset(self, indices: Iterable[int]) -> "ItemTable":
        """A new table holding the items at `indices`, in that order."""
        index_list = [int(i) for i in indices]
        for i in index_list:
            if not 0 <= i < len(self.ids):
                raise IndexError(f"item index {i} out of range for {len(self.ids)} items")
        return ItemTable(
            ids=[self.ids[i] for i in index_list],
            columns={name: [values[i] for i in index_list] for name, values in self.columns.items()},
        )

    @property
    def input_column(self) -> str | None:
        """'sequence' or 'text' where the table holds the input itself, else None (images)."""
        for name in INPUT_COLUMNS:
            if name in self.columns:
                return name
        return None

    def column_names(self) -> list[str]:
        """All column names in file order: id, label, group, extras, then the input column."""
        extras = [n for n in self.columns if n not in LEADING_COLUMNS and n not in INPUT_COLUMNS]
        tail = [n for n in INPUT_COLUMNS if n in self.columns]
        return list(LEADING_COLUMNS) + extras + tail

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: {'id': [...], column: [...], ...} in file order (the ids as a column, so not
        `io.as_record`)."""
        return {name: self.labels(name) for name in self.column_names()}


def write_items(table: ItemTable, path: str | os.PathLike) -> Path:
    """Write `table` to `path` as items.tsv (`io.write_table`, quoted: atomic; same table, same bytes)."""
    names = table.column_names()
    columns = [table.ids if name == "id" else table.columns[name] for name in names]
    return write_table(path, [dict(zip(names, row)) for row in zip(*columns)], names, quoted=True)


def read_items(path: str | os.PathLike) -> ItemTable:
    """Read an items.tsv written by `write_items` (or by hand: a header starting with `id`)."""
    source = Path(path)
    if not source.is_file():
        raise InputError(f"{source}: items table not found")
    frame = read_table(source, quoted=True)
    header = list(frame.columns)
    if header[0] != "id":
        raise InputError(f"{source}:1: the header must start with 'id' (found {header[:1]})")
    try:
        return ItemTable(ids=frame["id"].tolist(), columns={name: frame[name].tolist() for name in header[1:]})
    except InputError as exc:
        raise InputError(f"{source}: {exc}") from exc


def write_images(images: np.ndarray, path: str | os.PathLike) -> Path:
    """Save images as .npy, uint8 [N, H, W, 3] (atomic)."""
    array = np.asarray(images)
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[-1] != 3:
        raise InputError(f"{path}: images must be uint8 [N, H, W, 3], got {array.dtype} {list(array.shape)}")
    target = Path(path)
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, np.ascontiguousarray(array), allow_pickle=False)
    return target


def read_images(path: str | os.PathLike) -> np.ndarray:
    """Load images written by `write_images` (no pickles)."""
    source = Path(path)
    if not source.is_file():
        raise InputError(f"{source}: images file not found")
    try:
        array = np.load(source, allow_pickle=False)
    except ValueError as exc:
        raise InputError(f"{source}: not a plain .npy array ({exc})") from exc
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[-1] != 3:
        raise InputError(f"{source}: images must be uint8 [N, H, W, 3], got {array.dtype} {list(array.shape)}")
    return array


def write_dataset_summary(path: str | os.PathLike, summary: dict[str, Any]) -> Path:
    """Write dataset.json (counts, drops with reasons, source, config): sorted keys, atomic, stable bytes."""
    target = Path(path)
    text = json.dumps(json_ready(summary), indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False)
    write_text_atomic(target, text + "\n")
    return target


def write_dataset(
    out_dir: str | os.PathLike,
    table: ItemTable,
    images: np.ndarray | None,
    summary: dict[str, Any],
) -> dict[str, Path]:
    """Write items.tsv, images.npy (when `images` is given) and dataset.json into `out_dir`.

    dataset.json is written last, so its presence means the folder is complete.
    """
    folder = Path(out_dir)
    if images is not None and len(images) != len(table):
        raise InputError(f"{folder}: {len(images)} images for {len(table)} items")
    written = {"items": write_items(table, folder / "items.tsv")}
    if images is not None:
        written["images"] = write_images(images, folder / "images.npy")
    written["summary"] = write_dataset_summary(folder / "dataset.json", summary)
    return written


__all__ = [
    "ItemTable",
    "write_items",
    "read_items",
    "write_images",
    "read_images",
    "write_dataset_summary",
    "write_dataset",
]
