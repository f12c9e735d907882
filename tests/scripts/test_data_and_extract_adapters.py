"""scripts/prepare_dataset.py, extract_shard.py (device choice, GPU claim) and build_random_model.py adapters."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from hidden_geometry.data.items import ItemTable, read_items
from hidden_geometry.errors import InputError

from .conftest import Named, fake_snakemake


def prepare(script, tmp_path: Path, spec: dict, images: bool) -> Path:
    outputs = {"table": str(tmp_path / "items.tsv"), "summary": str(tmp_path / "dataset.json")}
    if images:
        outputs["images"] = str(tmp_path / "images.npy")
    wildcards = {"image_dataset": "pics"} if images else {"other_dataset": "words"}
    script("prepare_dataset").main(fake_snakemake(output=outputs, params={"spec": spec, "cache_dir": str(tmp_path)},
                                                  wildcards=wildcards, log=[str(tmp_path / "log.txt")]))
    return tmp_path


def test_prepare_text_dataset(script, tmp_path: Path) -> None:
    out = prepare(script, tmp_path, {"kind": "synthetic_text", "n_per_class": 5, "seed": 0}, images=False)
    items = read_items(out / "items.tsv")
    summary = json.loads((out / "dataset.json").read_text())
    assert summary["n_items"] == len(items.ids) > 0 and "text" in items.columns
    assert not (out / "images.npy").exists()


def test_prepare_image_dataset_writes_images_in_item_order(script, tmp_path: Path) -> None:
    out = prepare(script, tmp_path, {"kind": "digits", "per_class": 2, "size": 8, "seed": 0}, images=True)
    images = np.load(out / "images.npy")
    assert images.shape == (len(read_items(out / "items.tsv").ids), 8, 8, 3) and images.dtype == np.uint8


def test_bad_dataset_spec_fails_with_one_line_and_no_output(script, tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        prepare(script, tmp_path, {"kind": "text_tsv", "path": str(tmp_path / "missing.tsv")}, images=False)
    assert "\n" not in str(caught.value) and "missing.tsv" in str(caught.value)
    assert not (tmp_path / "items.tsv").exists() and not (tmp_path / "dataset.json").exists()
    assert "missing.tsv" in (tmp_path / "log.txt").read_text()  # the reason is in the job's log too


def test_gpu_claims_are_exclusive(script, tmp_path: Path) -> None:
    extract = script("extract_shard")
    claimed = [extract.claim_gpu(tmp_path, 2) for _ in range(3)]
    assert claimed == [0, 1, None]


def test_cpu_request_never_touches_cuda(script, monkeypatch) -> None:
    extract = script("extract_shard")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert extract.choose_device("cpu", "unused", SimpleNamespace(info=print, warning=print)) == "cpu"
    assert "CUDA_VISIBLE_DEVICES" not in __import__("os").environ


def test_shard_inputs_are_the_input_column_or_images(script, tmp_path: Path) -> None:
    extract = script("extract_shard")
    items = ItemTable(ids=["x", "y"], columns={"label": ["a", "b"], "sequence": ["ACD", "KL"]})
    assert extract.shard_inputs(items, None) == ["ACD", "KL"]
    np.save(tmp_path / "im.npy", np.zeros((2, 4, 4, 3), dtype=np.uint8))
    assert extract.shard_inputs(items, str(tmp_path / "im.npy")).shape == (2, 4, 4, 3)


def test_random_model_builder_dispatch(script, tmp_path: Path) -> None:
    build = script("build_random_model")
    spec = {"kind": "igpt", "backend": "transformers",
            "random_init": {"seed": 0, "architecture": {"n_layer": 1, "n_embd": 16, "n_head": 2, "size": 8}}}
    folder = tmp_path / "igpt"
    build.main(fake_snakemake(output=Named(str(folder)), params={"spec": spec}, wildcards={"model": "igpt"},
                              log=[str(tmp_path / "b.log")]))
    assert (folder / "config.json").is_file() and not folder.with_name("igpt.building").exists()
    assert json.loads((folder / "config.json").read_text())["n_layer"] == 1
