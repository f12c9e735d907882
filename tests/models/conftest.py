"""Tiny random-weight models built once per session with the real builders, for the models tests.

Every test here runs offline: the hub is put in offline mode and torch hub's cache points at an empty folder,
so a model that is not on disk can never be fetched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
import torch

from hidden_geometry.models.random_init import (
    build_random_bert,
    build_random_esm2,
    build_random_esm2_hf,
    build_random_imagegpt,
)

PROTEINS = [
    "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ",
    "GSHMLE",
    "MVLSPADKTNVKAAWGKVGAHAGEYGAEALERMFLSFPTTKTYFPHF",
    "ACDEFGHIKLMNPQRSTVWY",
    "MSTNPKPQRKTKRNTNRRPQDVKFPGG",
    "KV",
    "MADQLTEEQIAEFKEAFSLFDKDGDGTITTKELGTVMRSLGQ",
    "PEPTIDEXBZ",
]


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.getbasetemp() / "empty_torch_home"))


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    # The test models are tiny: with several jobs on two shared cores, a second intra-op thread only spins
    # (measured 4x slower under load). Restored afterwards for the rest of the session.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def tiny_esm_pt(models_dir: Path) -> Path:
    return build_random_esm2(models_dir / "esm2_t2_tiny.pt", num_layers=2, embed_dim=32, attention_heads=4, seed=1)


@pytest.fixture(scope="session")
def tiny_esm_hf(models_dir: Path) -> Path:
    return build_random_esm2_hf(models_dir / "esm2_hf_tiny", num_layers=2, hidden_size=32, attention_heads=4, seed=1)


@pytest.fixture(scope="session")
def tiny_igpt(models_dir: Path) -> Path:
    return build_random_imagegpt(models_dir / "igpt_tiny", n_layer=2, n_embd=32, n_head=4, size=8, seed=1)


@pytest.fixture(scope="session")
def tiny_bert(models_dir: Path) -> Path:
    return build_random_bert(
        models_dir / "bert_tiny", num_layers=2, hidden_size=32, attention_heads=4, max_position_embeddings=64, seed=1
    )


@pytest.fixture(scope="session")
def proteins() -> list[str]:
    return list(PROTEINS)
