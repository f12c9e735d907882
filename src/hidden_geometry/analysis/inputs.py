"""What an analysis takes from the items table: which items are measured, their labels and exclusion groups.

- Identical inputs (the same sequence, text or image pixels) give identical representations in every layer; the
  first of each is kept, the same way in every layer and model (`identical_input_mask`), so that consecutive
  layers are compared on the same points.
- Labels come from one column of the items table (`item_labels`); a column of empty strings means the dataset is
  unlabelled: no label measures, and the reason says so.
- Exclusion groups (the `group` column, e.g. the SCOPe family) are used only when asked and present.
"""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

import numpy as np

from ..data.labels import is_unlabelled
from ..errors import InputError


def first_occurrence_mask(keys: Sequence[Any]) -> np.ndarray:
    """True for the first item of each distinct key, in input order."""
    seen: set[Any] = set()
    keep = np.zeros(len(keys), dtype=bool)
    for index, key in enumerate(keys):
        if key not in seen:
            seen.add(key)
            keep[index] = True
    return keep


def input_keys(items: Any, images: np.ndarray | None = None) -> list[bytes]:
    """A digest of each item's input: the pixels for images, else the `sequence` or `text` column."""
    if images is not None:
        if len(images) != len(items.ids):
            raise InputError(f"images: {len(images)} images for {len(items.ids)} items")
        return [hashlib.sha256(np.ascontiguousarray(image).tobytes()).digest() for image in images]
    column = items.input_column
    if column is None:
        raise InputError("items table has neither a 'sequence' nor a 'text' column (images need their pixels)")
    return [hashlib.sha256(value.encode("utf-8")).digest() for value in items.columns[column]]


def identical_input_mask(items: Any, images: np.ndarray | None = None, deduplicate: bool = True) -> np.ndarray:
    """Keep-mask of the items: the first of each identical input (all items when `deduplicate` is False)."""
    if not deduplicate:
        return np.ones(len(items.ids), dtype=bool)
    return first_occurrence_mask(input_keys(items, images))


def identical_rows_mask(layers: Sequence[np.ndarray]) -> np.ndarray:
    """Keep-mask when the inputs are unknown: the first of rows that are identical in EVERY layer (what identical
    inputs give), in row order."""
    n = layers[0].shape[0]
    digests = [hashlib.sha256() for _ in range(n)]
    for X in layers:
        if X.shape[0] != n:
            raise InputError(f"layers differ in their number of rows ({X.shape[0]} and {n})")
        for row, digest in zip(np.asarray(X), digests):
            digest.update(np.ascontiguousarray(row + 0.0 if row.dtype.kind == "f" else row).tobytes())
    return first_occurrence_mask([digest.digest() for digest in digests])


def item_labels(items: Any, column: str = "label") -> tuple[np.ndarray | None, str | None]:
    """The label of each item (table order), or (None, reason) when the column holds no label."""
    if column not in items.columns:
        raise InputError(f"analyses: label_column {column!r} is not a column of the items table "
                         f"(columns: {', '.join(sorted(items.columns))})")
    labels = np.asarray(items.columns[column], dtype=object)
    if all(is_unlabelled(label) for label in labels):
        return None, f"the dataset has no '{column}' labels"
    return labels, None


def item_groups(items: Any, exclude_groups: bool = True) -> np.ndarray | None:
    """Exclusion groups of the label overlap (the `group` column) when asked for and present, else None."""
    if not exclude_groups or "group" not in items.columns or all(g == "" for g in items.columns["group"]):
        return None
    return np.asarray(items.columns["group"], dtype=object)
