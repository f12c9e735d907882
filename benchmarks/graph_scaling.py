"""Neighbour-graph time against the number of points N and the dimension D, on this machine.

    python benchmarks/graph_scaling.py                       # default grid, results in benchmarks/out/
    python benchmarks/graph_scaling.py --n 5000 10000 --d 320 1280 --k 30

Two backends, each labelled in the output:
- `knn_graph`: the project's `hidden_geometry.geometry.neighbours.knn_graph` (exact, what the workflow runs);
- `torch-flat`: a chunked matmul + top-k flat search in float32, with no duplicate removal and no float64
  recomputation: a lower bound on what an exact k-NN graph costs on the same CPU.
The cost of an exact graph is the N x N distance matrix: 2 N^2 D floating-point operations as one matrix
product (N^2 D when only one triangle is computed). Each row reports its measured GFLOP/s against 2 N^2 D, which
is what docs/scaling.md extrapolates from. A --max-gflop budget skips the largest cells (and says so) so that a
run on a shared 2-core machine stays short.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from hidden_geometry.atomic import write_text_atomic

DEFAULT_OUT = Path(__file__).resolve().parent / "out" / "graph_scaling.json"


@dataclass(frozen=True)
class GraphTiming:
    """One (backend, N, D) measurement: best wall time over the repeats."""

    backend: str
    n_points: int
    dimension: int
    k: int
    seconds: float
    gflop: float
    gflop_per_second: float

    def to_dict(self) -> dict:
        return asdict(self)


def graph_gflop(n_points: int, dimension: int) -> float:
    """Floating-point work of the full N x N distance matrix as one matrix product, in GFLOP (2 N^2 D)."""
    return 2.0 * n_points * n_points * dimension / 1e9


def torch_flat_knn(points: np.ndarray, k: int, chunk_rows: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """k nearest neighbours (self excluded) by squared Euclidean distance, chunked matmul + top-k in float32."""
    x = torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32))
    squared_norms = (x * x).sum(dim=1)
    all_indices = []
    all_distances = []
    for start in range(0, x.shape[0], chunk_rows):
        block = x[start : start + chunk_rows]
        squared = squared_norms[start : start + chunk_rows, None] + squared_norms[None, :] - 2.0 * block @ x.T
        rows = torch.arange(start, start + block.shape[0])
        squared[rows - start, rows] = float("inf")  # self is not its own neighbour
        distances, indices = torch.topk(squared, k, dim=1, largest=False, sorted=True)
        all_indices.append(indices)
        all_distances.append(distances.clamp_min_(0).sqrt_())
    return torch.cat(all_indices).numpy(), torch.cat(all_distances).numpy()


def project_knn_graph() -> Callable[[np.ndarray, int], object] | None:
    """The geometry stage's knn_graph, or None where that module is not importable (then only torch-flat runs)."""
    try:
        from hidden_geometry.geometry.neighbours import knn_graph
    except ImportError:
        return None
    return lambda points, k: knn_graph(points, k)


def random_points(n_points: int, dimension: int, seed: int = 0) -> np.ndarray:
    """Gaussian points on a 16-dimensional subspace plus small noise: no exact duplicates, realistic ties-free."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n_points, 16)).astype(np.float32)
    mixing = rng.standard_normal((16, dimension)).astype(np.float32)
    noise = 0.01 * rng.standard_normal((n_points, dimension)).astype(np.float32)
    return latent @ mixing + noise


def time_backend(build: Callable, points: np.ndarray, k: int, repeats: int) -> float:
    """Best wall time of `build(points, k)` over `repeats` runs."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        build(points, k)
        best = min(best, time.perf_counter() - start)
    return best


def grid(sizes: list[int], dimensions: list[int], base_n: int, base_d: int) -> list[tuple[int, int]]:
    """N sweep at base_d, then D sweep at base_n (one line each, not the full product)."""
    cells = [(n, base_d) for n in sizes] + [(base_n, d) for d in dimensions]
    return sorted(set(cells), key=lambda cell: (cell[1], cell[0]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[5000, 10000, 20000, 50000], help="N sweep")
    parser.add_argument("--d", type=int, nargs="+", default=[320, 640, 1280, 2560], help="D sweep")
    parser.add_argument("--base-n", type=int, default=10000, help="N of the D sweep")
    parser.add_argument("--base-d", type=int, default=320, help="D of the N sweep")
    parser.add_argument("--k", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--max-gflop", type=float, default=2000.0, help="skip cells above this 2 N^2 D budget")
    parser.add_argument("--backend", choices=["auto", "torch-flat", "knn_graph"], default="auto")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    backends: dict[str, Callable] = {}
    project = project_knn_graph()
    if args.backend in ("auto", "knn_graph"):
        if project is None:
            print("knn_graph: hidden_geometry.geometry.neighbours not importable; skipped", file=sys.stderr)
        else:
            backends["knn_graph"] = project
    if args.backend in ("auto", "torch-flat"):
        backends["torch-flat"] = torch_flat_knn
    if not backends:
        print("no backend to run", file=sys.stderr)
        return 1

    timings: list[GraphTiming] = []
    skipped: list[dict] = []
    print(f"torch threads: {torch.get_num_threads()}; k = {args.k}")
    print("| backend | N | D | seconds | GFLOP (2N^2D) | GFLOP/s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for n_points, dimension in grid(args.n, args.d, args.base_n, args.base_d):
        work = graph_gflop(n_points, dimension)
        if work > args.max_gflop:
            skipped.append({"n_points": n_points, "dimension": dimension, "gflop": work})
            continue
        points = random_points(n_points, dimension)
        for name, build in backends.items():
            seconds = time_backend(build, points, args.k, args.repeats)
            timing = GraphTiming(name, n_points, dimension, args.k, seconds, work, work / seconds)
            timings.append(timing)
            print(f"| {name} | {n_points} | {dimension} | {seconds:.2f} | {work:.0f} | {work / seconds:.1f} |",
                  flush=True)
    for cell in skipped:
        print(f"skipped N={cell['n_points']} D={cell['dimension']}: {cell['gflop']:.0f} GFLOP > --max-gflop")

    report = {
        "machine": {"platform": platform.platform(), "torch_threads": torch.get_num_threads(),
                    "processor": platform.processor()},
        "timings": [t.to_dict() for t in timings],
        "skipped": skipped,
    }
    write_text_atomic(args.out, json.dumps(report, indent=2) + "\n")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
