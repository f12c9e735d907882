"""benchmarks/knn_graph.py runs faiss on the fastest OpenBLAS kernel this CPU can execute: the kernel it names
starts, is the one OpenBLAS reports, and gives faiss's exact answer (forcing SkylakeX stopped faiss with an illegal
instruction on CPUs with AVX2 only)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def bench_module():
    spec = importlib.util.spec_from_file_location("knn_graph_bench", ROOT / "benchmarks" / "knn_graph.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_faiss_coretype_follows_the_cpu_flags():
    bench = bench_module()
    assert bench.faiss_coretype(frozenset({"avx2", "fma", "avx512f"})) == "SkylakeX"
    assert bench.faiss_coretype(frozenset({"avx2", "fma"})) == "Haswell"
    assert bench.faiss_coretype(frozenset({"sse4_2", "avx"})) is None


def test_faiss_worker_runs_on_the_chosen_kernel(tmp_path: Path):
    pytest.importorskip("faiss", reason="faiss comes with the bench extra (make install)")
    pytest.importorskip("threadpoolctl", reason="threadpoolctl comes with the bench extra (make install)")
    from hidden_geometry.hardware import cpu_flags

    bench = bench_module()
    coretype = bench.faiss_coretype(cpu_flags())
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((2000, 64)) + 5.0).astype(np.float32)  # large enough for the full kernel:
    # SkylakeX on an AVX2-only CPU passed at 400 x 24 and stopped (illegal instruction) at 2,000 x 64
    np.save(tmp_path / "X.npy", X)
    env = {key: value for key, value in os.environ.items() if key != "OPENBLAS_L2_SIZE"}
    if coretype:
        env["OPENBLAS_CORETYPE"] = coretype
    out = tmp_path / "faiss"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "knn_graph.py"), "--worker", "faiss",
                           str(tmp_path / "X.npy"), str(out), "-k", "5", "--threads", "1"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(Path(str(out) + ".json").read_text())
    if coretype:
        assert [kernel.lower() for kernel in report["engine"]["openblas"]] == [coretype.lower()]
    found = np.load(str(out) + ".npy")
    rows = np.arange(0, 2000, 10)
    Y = X.astype(np.float64)
    d2 = ((Y[rows, None, :] - Y[None, :, :]) ** 2).sum(axis=2)
    d2[np.arange(rows.size), rows] = np.inf
    exact = np.argsort(d2, axis=1, kind="stable")[:, :5]
    assert np.mean([len(set(a) & set(b)) / 5 for a, b in zip(found[rows].tolist(), exact.tolist())]) > 0.99
