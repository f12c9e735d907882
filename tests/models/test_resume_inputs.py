"""Issue 13: library resume sees a change of the inputs under the same ids (the resume key hashes the inputs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hidden_geometry.models.extraction import (
    extract_representations,
    inputs_digest,
    load_layer,
    read_manifest,
)
from hidden_geometry.models.loading import load_model


@pytest.fixture(scope="module")
def esm(tiny_esm_pt: Path) -> Any:
    return load_model({"path": str(tiny_esm_pt)}, name="tiny_esm")


def test_resume_recomputes_when_the_inputs_change_under_the_same_ids(esm: Any, proteins: list[str],
                                                                   tmp_path: Path) -> None:
    ids = [f"item{i:02d}" for i in range(len(proteins))]
    out = tmp_path / "o"
    extract_representations(esm, proteins, ids, out, progress=False)
    before = load_layer(out, 1).copy()
    assert read_manifest(out)["inputs_sha256"] == inputs_digest(proteins)
    edited = list(proteins)
    edited[0] = "M" + edited[0][1:] if edited[0][0] != "M" else "A" + edited[0][1:]
    again = extract_representations(esm, edited, ids, out, progress=False)
    assert not again.skipped  # old code: the same ids and settings -> the old folder, old rows returned
    after = load_layer(out, 1)
    assert not np.allclose(before[0], after[0]) and np.allclose(before[1:], after[1:], atol=1e-5)
    assert read_manifest(out)["inputs_sha256"] == inputs_digest(edited)
    assert extract_representations(esm, edited, ids, out, progress=False).skipped  # unchanged: kept


def test_inputs_digest_tells_texts_and_images_apart() -> None:
    assert inputs_digest(["ab", "c"]) != inputs_digest(["a", "bc"])  # boundaries count
    image = np.zeros((2, 4, 4, 3), dtype=np.uint8)
    changed = image.copy()
    changed[1, 0, 0, 0] = 1
    assert inputs_digest(image) != inputs_digest(changed)
    assert inputs_digest(image) == inputs_digest(image.copy())
