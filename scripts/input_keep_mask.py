"""Rule input_keep_mask: one item per identical input, as a boolean mask shared by every model and layer.

Identical sequences/texts (or identical image pixels) give identical representations in every layer; keeping the
first of each the same way everywhere makes layers comparable (consecutive overlap needs the same points).
"""

import hashlib
from typing import Any, Sequence

import numpy as np
from _wf import input_column, logged, save_npy, write_json

from hidden_geometry.data.items import read_items


def first_occurrence_mask(keys: Sequence[bytes]) -> np.ndarray:
    """True for the first item of each distinct key, in input order."""
    seen: set[bytes] = set()
    keep = np.zeros(len(keys), dtype=bool)
    for index, key in enumerate(keys):
        if key not in seen:
            seen.add(key)
            keep[index] = True
    return keep


def input_keys(items: Any, images: np.ndarray | None) -> list[bytes]:
    """A digest of each item's input: the pixels for images, else the sequence or text."""
    if images is not None:
        return [hashlib.sha256(np.ascontiguousarray(image).tobytes()).digest() for image in images]
    column = input_column(items.columns)
    if column is None:
        raise ValueError("items table has neither a 'sequence' nor a 'text' column")
    return [hashlib.sha256(value.encode("utf-8")).digest() for value in items.columns[column]]


def main(snakemake: Any) -> None:
    with logged(snakemake) as log:
        items = read_items(snakemake.input.table)
        images = np.load(snakemake.input.images, mmap_mode="r") if "images" in snakemake.input.keys() else None
        if snakemake.params.deduplicate:
            keep = first_occurrence_mask(input_keys(items, images))
        else:
            keep = np.ones(len(items.ids), dtype=bool)
        dropped = [item for item, kept in zip(items.ids, keep) if not kept]
        log.info("%d items, %d kept, %d identical inputs dropped", len(keep), int(keep.sum()), len(dropped))
        save_npy(snakemake.output.keep, keep)
        write_json(snakemake.output.summary, {"n_items": len(keep), "n_kept": int(keep.sum()),
                                              "n_duplicates": len(dropped), "duplicate_ids": dropped[:100],
                                              "deduplicate": bool(snakemake.params.deduplicate)})


if __name__ == "__main__":
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
