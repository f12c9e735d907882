"""scripts/input_keep_mask.py: identical inputs are kept once, the first in input order."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hidden_geometry.data.items import ItemTable, write_items
from hidden_geometry.io import read_json

from .conftest import fake_snakemake


def run(script, tmp_path: Path, table: ItemTable, images: np.ndarray | None, deduplicate: bool = True):
    write_items(table, tmp_path / "items.tsv")
    inputs = {"table": str(tmp_path / "items.tsv")}
    if images is not None:
        np.save(tmp_path / "images.npy", images)
        inputs["images"] = str(tmp_path / "images.npy")
    outputs = {"keep": str(tmp_path / "keep.npy"), "summary": str(tmp_path / "keep.json")}
    script("input_keep_mask").main(fake_snakemake(input=inputs, output=outputs, params={"deduplicate": deduplicate},
                                                  log=[str(tmp_path / "log.txt")]))
    return np.load(tmp_path / "keep.npy"), read_json(tmp_path / "keep.json")


def test_identical_sequences_are_kept_once(script, tmp_path: Path) -> None:
    table = ItemTable(ids=["a", "b", "c", "d"], columns={"sequence": ["ACD", "KLM", "ACD", "ACD"]})
    keep, summary = run(script, tmp_path, table, None)
    assert keep.tolist() == [True, True, False, False]
    assert summary["n_kept"] == 2 and summary["duplicate_ids"] == ["c", "d"]


def test_identical_images_are_kept_once_and_dedup_can_be_off(script, tmp_path: Path) -> None:
    images = np.zeros((3, 4, 4, 3), dtype=np.uint8)
    images[1, 0, 0, 0] = 1
    table = ItemTable(ids=["x", "y", "z"], columns={"label": ["0", "1", "0"]})
    keep, _ = run(script, tmp_path, table, images)
    assert keep.tolist() == [True, True, False]
    keep, summary = run(script, tmp_path, table, images, deduplicate=False)
    assert keep.all() and summary["n_duplicates"] == 0
