"""Labels for items from a separate TSV table (e.g. a FASTA plus `labels.tsv` with columns id, label).

Cases: an item id missing from the table -> InputError naming the first few (policy 'error') or the item is
dropped and counted (policy 'drop'); ids in the table but not among the items -> ignored, counted; a class with
one member -> kept, listed in the summary; a single class -> flagged (`single_class`: the probe is undefined and
reports NaN downstream); an id twice in the table -> InputError naming both lines.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..errors import InputError
from .text import read_tsv_rows, require_columns

MISSING_POLICIES = ("error", "drop")


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
        """Summary for dataset.json (not the labels themselves)."""
        return {
            "n_kept": len(self.keep),
            "n_missing": len(self.missing_ids),
            "missing_ids": self.missing_ids[:max_ids],
            "n_extra_in_table": self.n_extra,
            "n_classes": self.n_classes,
            "class_sizes_min": min(Counter(self.labels).values()) if self.labels else 0,
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
    require_columns(source, header, {"id_column": id_column, "label_column": label_column, "group_column": group_column})
    table: dict[str, tuple[str, str, int]] = {}
    for row in rows:
        item_id = row.fields[id_column].strip()
        if not item_id:
            raise InputError(f"{source}:{row.line}: empty id in column '{id_column}'")
        if item_id in table:
            raise InputError(f"{source}:{row.line}: duplicate id '{item_id}' (first at line {table[item_id][2]})")
        group = row.fields[group_column].strip() if group_column else ""
        table[item_id] = (row.fields[label_column].strip(), group, row.line)
    return table


def align_labels(
    ids: Sequence[str],
    labels_table_path: str | os.PathLike,
    id_column: str = "id",
    label_column: str = "label",
    group_column: str | None = None,
    missing_policy: str = "error",
) -> LabelAlignment:
    """Look up each id's label in the labels table (see the module docstring for the cases)."""
    if missing_policy not in MISSING_POLICIES:
        raise InputError(f"missing labels policy must be one of {MISSING_POLICIES}, got {missing_policy!r}")
    source = Path(labels_table_path)
    table = read_labels_table(source, id_column, label_column, group_column)
    keep: list[int] = []
    missing: list[str] = []
    for index, item_id in enumerate(ids):
        if item_id in table:
            keep.append(index)
        else:
            missing.append(item_id)
    if missing and missing_policy == "error":
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise InputError(f"{source}: {len(missing)} id(s) have no label in column '{label_column}': {shown}")
    if not keep:
        raise InputError(f"{source}: none of the {len(ids)} ids is in the labels table (column '{id_column}')")
    kept_ids = [ids[i] for i in keep]
    labels = [table[i][0] for i in kept_ids]
    counts = Counter(labels)
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
    counts = Counter(l for l in labels if l != "")
    return {
        "n_classes": len(counts),
        "singleton_classes": sorted(c for c, n in counts.items() if n == 1)[:50],
        "n_singleton_classes": sum(1 for n in counts.values() if n == 1),
        "single_class": len(counts) < 2,
        "n_unlabelled": sum(1 for l in labels if l == ""),
    }
