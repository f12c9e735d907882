"""Extraction on a CUDA device: fp32 vectors equal the CPU's, batches do not change them, bf16 is marked and close.

These run only where torch sees a CUDA device (CI has none; docs/benchmarks.md records the run on a GPU
machine). Each family's forward on the GPU is compared with the same model's forward on the CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pytest
import torch

from hidden_geometry.models.extraction import extract, extract_representations, load_layer, read_manifest
from hidden_geometry.models.loading import load_model
from hidden_geometry.models.random_init import build_random_esm2

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (torch sees none)")

TEXTS = ["a good film", "bad", "the story was long and dull and the actors were bad too", "fine music", "ok"]


@pytest.fixture(scope="module")
def esm_t6(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ESM-2 t6_8M's published shape (6 layers, 320 wide, 20 heads) with random weights."""
    folder = tmp_path_factory.mktemp("t6")
    return build_random_esm2(folder / "esm2_t6_8M_UR50D.pt", num_layers=6, embed_dim=320, attention_heads=20, seed=3)


def inputs_for(kind: str, proteins: list[str]) -> Sequence[Any]:
    if kind == "text":
        return TEXTS
    if kind == "image":
        return list(np.random.default_rng(2).integers(0, 256, size=(6, 8, 8, 3), dtype=np.uint8))
    return proteins


def relative_row_errors(got: Sequence[np.ndarray], want: Sequence[np.ndarray]) -> np.ndarray:
    return np.stack(
        [np.linalg.norm(g - w, axis=1) / np.linalg.norm(w, axis=1) for g, w in zip(got, want, strict=True)]
    )


@pytest.mark.parametrize(
    "model, kind", [("esm_t6", "protein"), ("tiny_esm_hf", "protein"), ("tiny_bert", "text"), ("tiny_igpt", "image")]
)
def test_fp32_on_cuda_equals_the_cpu_to_1e_4(model: str, kind: str, proteins: list[str], request) -> None:
    path = str(request.getfixturevalue(model))
    items = inputs_for(kind, proteins)
    on_gpu = load_model({"path": path, "dtype": "fp32"}, device="cuda", name=model)
    on_cpu = load_model({"path": path, "dtype": "fp32"}, device="cpu", name=model)
    assert on_gpu.describe()["device"] == "cuda" and on_gpu.describe()["dtype"] == "fp32"
    got = extract(on_gpu, items, token_budget=256).layers
    want = extract(on_cpu, items, token_budget=256).layers
    assert len(got) == on_cpu.n_layers
    errors = relative_row_errors(got, want)
    assert errors.max() < 1e-4, errors.max()


def test_batches_on_cuda_do_not_change_the_vectors(esm_t6: Path, proteins: list[str]) -> None:
    # One item per batch against all items in one padded batch: the padding and the batch shape must not leak
    # into the vectors (different GPU kernels may run; fp32 rounding only).
    adapter = load_model({"path": str(esm_t6), "dtype": "fp32"}, device="cuda", name="t6")
    small = extract(adapter, proteins, token_budget=1)
    large = extract(adapter, proteins, token_budget=8192)
    assert small.n_batches == len(proteins) and large.n_batches == 1
    assert relative_row_errors(small.layers, large.layers).max() < 1e-5


def test_auto_dtype_on_cuda_is_bf16_recorded_and_close_to_fp32(esm_t6: Path, proteins: list[str], tmp_path: Path):
    # dtype auto on a GPU with bf16: the manifest says bf16, the vectors are finite and within bf16's rounding
    # (8 bits) of fp32's through six layers, far from what a wrong forward (a relative error near 1) gives.
    auto = load_model({"path": str(esm_t6)}, device="cuda", name="t6")
    fp32 = load_model({"path": str(esm_t6), "dtype": "fp32"}, device="cuda", name="t6")
    ids = [f"p{i}" for i in range(len(proteins))]
    extract_representations(auto, proteins, ids, tmp_path / "bf16", token_budget=256, progress=False)
    manifest = read_manifest(tmp_path / "bf16")
    assert manifest["dtype"] == "bf16" and manifest["device"] == "cuda"
    got = [load_layer(tmp_path / "bf16", layer) for layer in range(auto.n_layers)]
    assert all(np.isfinite(g).all() for g in got)
    errors = relative_row_errors(got, extract(fp32, proteins, token_budget=256).layers)
    assert errors.max() < 5e-2, errors.max()
    assert errors.max() > 1e-6  # bf16 really ran: identical vectors would mean the dtype was ignored
