"""Labels for items from a separate TSV table (e.g. a FASTA plus `labels.tsv` with columns id, label).

Cases: an item id missing from the table -> InputError naming the first few (policy 'error') or the item is
dropped and counted (policy 'drop'); ids in the table but not among the items -> ignored, counted; a class with
one member -> kept, listed in the summary; a single class -> flagged (`single_class`: the probe is undefined and
reports NaN downstream); an id twice in the table -> InputError naming both lines.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..errors import InputError
from .text import read_tsv_rows, require_columns

MISSING_POLICIES = ("error", "drop")

# Characters stripped from both ends of a label, id or group besides whitespace: a byte-order mark and the
# zero-width characters that editors and spreadsheets leave behind (invisible, so never a different class).
_INVISIBLE = "\ufeff\u200b\u200c\u200d\u2060"


def normalise_label(value: Any) -> str:
    """The one normal form of a label, group or id cell: text with surrounding whitespace, byte-order marks and
    zero-width characters removed (None -> ""). Used by the data stage, the CLI and the measures alike."""
    if value is None:
        return ""
    text = str(value)
    previous = None
    while previous != text:
        previous = text
        text = text.strip().strip(_INVISIBLE)
    return text


def is_unlabelled(value: Any) -> bool:
    """True for a missing label: None, NaN, or a cell that is empty after `normalise_label`.

    The one definition of "unlabelled": `dataset.json` counts these, and label overlap, the kNN probe and the linear
    probe neither score such an item nor count it as a neighbour's label.
    """
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and normalise_label(value) == ""


def unlabelled_mask(values: Sequence[Any] | Any) -> Any:
    """Boolean numpy array: is_unlabelled of each value."""
    import numpy as np

    arr = np.asarray(values)
    if arr.dtype.kind in "iub":
        return np.zeros(arr.shape[0], dtype=bool)
    if arr.dtype.kind == "f":
        return np.isnan(arr)
    return np.fromiter((is_unlabelled(v) for v in arr.tolist()), dtype=bool, count=arr.shape[0])


@dataclass(frozen=True)
class LabelAlignment:
    """Labels aligned to the input ids; `keep` holds the indices (into the input ids) of the items kept."""

    keep: list[int]
    ids: list[str]
    labels: list[str]
    groups: list[str]
    missing_ids: list[str]
    n_extra: int
    singleton_classes: list[str]
    n_classes: int

    @property
    def single_class(self) -> bool:
        return self.n_classes < 2

    def to_dict(self, max_ids: int = 50) -> dict[str, Any]:
        """Summary for dataset.json (not the labels themselves, so not `io.as_record`): counts, at most `max_ids`
        ids of each kind."""
        return {
            "n_kept": len(self.keep),
            "n_missing": len(self.missing_ids),
            "missing_ids": self.missing_ids[:max_ids],
            "n_extra_in_table": self.n_extra,
            "n_classes": self.n_classes,
            "class_sizes_min": min(labelled.values()) if (labelled := Counter(
                label for label in self.labels if not is_unlabelled(label))) else 0,
            "n_unlabelled": sum(1 for label in self.labels if is_unlabelled(label)),
            "singleton_classes": self.singleton_classes[:max_ids],
            "n_singleton_classes": len(self.singleton_classes),
            "single_class": self.single_class,
        }


def read_labels_table(
    path: str | os.PathLike, id_column: str = "id", label_column: str = "label", group_column: str | None = None
) -> dict[str, tuple[str, str, int]]:
    """id -> (label, group, line) from a TSV labels table; duplicate ids raise InputError naming both lines."""
    source = Path(path)
    header, rows = read_tsv_rows(source, decode="error")
    require_columns(
        source, header, {"id_column": id_column, "label_column": label_column, "group_column": group_column}
    )
    table: dict[str, tuple[str, str, int]] = {}
    for row in rows:
        item_id = normalise_label(row.fields[id_column])
        if not item_id:
            raise InputError(f"{source}:{row.line}: empty id in column '{id_column}'")
        if item_id in table:
            raise InputError(f"{source}:{row.line}: duplicate id '{item_id}' (first at line {table[item_id][2]})")
        group = normalise_label(row.fields[group_column]) if group_column else ""
        table[item_id] = (normalise_label(row.fields[label_column]), group, row.line)
    return table


def align_labels(
    ids: Sequence[str],
    labels_table_path: str | os.PathLike,
    id_column: str = "id",
    label_column: str = "label",
    group_column: str | None = None,
    missing_labels: str = "error",
) -> LabelAlignment:
    """Look up each id's label in the labels table (see the module docstring for the cases)."""
    if missing_labels not in MISSING_POLICIES:
        raise InputError(f"missing_labels must be one of {MISSING_POLICIES}, got {missing_labels!r}")
    source = Path(labels_table_path)
    table = read_labels_table(source, id_column, label_column, group_column)
    keep: list[int] = []
    missing: list[str] = []
    for index, item_id in enumerate(ids):
        if item_id in table:
            keep.append(index)
        else:
            missing.append(item_id)
    if missing and missing_labels == "error":
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise InputError(f"{source}: {len(missing)} id(s) have no label in column '{label_column}': {shown}")
    if not keep:
        raise InputError(f"{source}: none of the {len(ids)} ids is in the labels table (column '{id_column}')")
    kept_ids = [ids[i] for i in keep]
    labels = [table[i][0] for i in kept_ids]
    counts = Counter(label for label in labels if not is_unlabelled(label))
    id_set = set(ids)
    return LabelAlignment(
        keep=keep,
        ids=kept_ids,
        labels=labels,
        groups=[table[i][1] for i in kept_ids],
        missing_ids=missing,
        n_extra=sum(1 for i in table if i not in id_set),
        singleton_classes=sorted(c for c, n in counts.items() if n == 1),
        n_classes=len(counts),
    )


def label_summary(labels: Sequence[str]) -> dict[str, Any]:
    """Class counts of a label column: number of classes, singleton classes, single-class flag."""
    counts = Counter(label for label in labels if not is_unlabelled(label))
    return {
        "n_classes": len(counts),
        "singleton_classes": sorted(c for c, n in counts.items() if n == 1)[:50],
        "n_singleton_classes": sum(1 for n in counts.values() if n == 1),
        "single_class": len(counts) < 2,
        "n_unlabelled": sum(1 for label in labels if is_unlabelled(label)),
    }
