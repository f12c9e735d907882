"""Exact k-nearest-neighbour graph on a CUDA GPU: `hidden-geometry knn` against a plain float32 top-k in torch.

Runs only where torch sees a CUDA device. One run measures, side by side on the same data and GPU:
- wall time of each method as a whole process (start-up, imports, CUDA context, reading the rows, the graph,
  writing the result: the workflow runs one process per layer), interleaved over --repeats rounds, medians;
  and the graph's own time inside the process (after a warm-up call on a small input);
- the peer: what a user would write on a GPU, blocked float32 products of the rows against all rows and
  `torch.topk` (TF32 off: IEEE float32, as the engine's products). It is not exact: its recall is reported;
- recall of both against exact float64 neighbours of sampled rows;
- the physical limit: N^2 D floating-point operations (the N^2 D / 2 multiply-adds of the symmetric
  products) at the GPU's IEEE float32 matrix-product rate measured in the run.
It writes a markdown section into docs/benchmarks.md (between markers, replacing an earlier run's).

    python benchmarks/knn_cuda.py --n 100000 --data manifold
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from knn_graph import (  # noqa: E402
    all_rows,
    drop_self,
    exact_neighbours,
    load_average,
    machine,
    make_data,
    recall,
    recall_queries,
    write_section,
)

BEGIN, END = "<!-- knn_graph_cuda:begin -->", "<!-- knn_graph_cuda:end -->"


def topk_graph(X: np.ndarray, k: int, block: int = 8192) -> np.ndarray:
    """The peer: k + 1 smallest float32 squared distances per row by blocked products and torch.topk."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    rows = torch.from_numpy(X).cuda()
    norms = (rows * rows).sum(dim=1)
    found = torch.empty((X.shape[0], k + 1), dtype=torch.int64, device="cuda")
    for start in range(0, X.shape[0], block):
        part = rows[start : start + block]
        sq = norms[start : start + block, None] + norms[None, :] - 2.0 * (part @ rows.T)
        found[start : start + block] = torch.topk(sq, k + 1, dim=1, largest=False).indices
    return drop_self(found.cpu().numpy(), k)


def worker(method: str, data_path: str, k: int, out_path: str) -> None:
    """One method in this process: its indices (int64 [N, k], self excluded) and the graph's own seconds."""
    import torch

    X = np.load(data_path)
    if method == "ours":
        from hidden_geometry.geometry import knn_graph

        def run() -> np.ndarray:
            graph = knn_graph(X, k, device="cuda")
            return all_rows(graph.rows, graph.indices, X.shape[0])

        knn_graph(X[:2000], k, device="cuda")  # warm-up: CUDA context, kernels
    else:

        def run() -> np.ndarray:
            return topk_graph(X, k)

        topk_graph(X[:2000], k)
    torch.cuda.synchronize()
    start = time.perf_counter()
    found = run()
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    np.save(out_path + ".npy", found)
    Path(out_path + ".json").write_text(json.dumps({"seconds": seconds}), encoding="utf-8")


def fp32_tflops(d: int, size: int = 16384) -> float:
    """TFLOP/s of a plain IEEE float32 product (size x d) @ (d x size) on the GPU (TF32 off)."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    a, b = torch.randn(size, d, device="cuda"), torch.randn(size, d, device="cuda")
    out = torch.empty(size, size, device="cuda")
    torch.mm(a, b.T, out=out)
    best = float("inf")
    for _ in range(5):
        torch.cuda.synchronize()
        start = time.perf_counter()
        torch.mm(a, b.T, out=out)
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2.0 * size * size * d / best / 1e12


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--d", type=int, default=1280)
    parser.add_argument("-k", type=int, default=100)
    parser.add_argument("--data", choices=["clustered", "manifold", "isotropic"], default="manifold")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-doc", action="store_true")
    parser.add_argument("--worker", nargs=3, metavar=("METHOD", "DATA", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], args.worker[1], args.k, args.worker[2])
        return 0
    import torch

    if not torch.cuda.is_available():
        print("no CUDA device: this benchmark measures the GPU engine", file=sys.stderr)
        return 1
    X = make_data(args.n, args.d, args.seed, 0.0, args.data)
    queries = recall_queries(args.n, args.queries, args.seed)
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        data_path = str(Path(tmp) / "X.npy")
        np.save(data_path, X)
        for round_ in range(args.repeats):
            for method in ("cli", "ours", "torch-topk"):
                out = str(Path(tmp) / method)
                if method == "cli":
                    command = [sys.executable, "-m", "hidden_geometry.cli", "knn", data_path, "-k", str(args.k),
                               "-o", out + ".npz"]
                else:
                    command = [sys.executable, __file__, "--worker", method, data_path, out, "-k", str(args.k)]
                env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
                start = time.perf_counter()
                proc = subprocess.run(command, capture_output=True, text=True, env=env)
                wall = time.perf_counter() - start
                if proc.returncode != 0:
                    print(f"{method} failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
                    return 1
                if method == "cli":
                    with np.load(out + ".npz") as graph:
                        found = all_rows(graph["rows"], graph["indices"], args.n)
                    seconds = float("nan")
                else:
                    seconds = json.loads(Path(out + ".json").read_text(encoding="utf-8"))["seconds"]
                    found = np.load(out + ".npy")
                entry = results.setdefault(method, {"walls": [], "inner": []})
                entry["walls"].append(wall)
                entry["inner"].append(seconds)
                entry["indices"] = found
                print(f"round {round_ + 1} {method}: process {wall:.2f} s, graph {seconds:.2f} s", flush=True)
    exact = exact_neighbours(X, queries, args.k)
    for entry in results.values():
        entry["recall"] = recall(entry.pop("indices"), exact, queries, args.k)
        entry["wall"] = float(np.median(entry["walls"]))
        entry["seconds"] = float(np.nanmedian(entry["inner"])) if np.isfinite(entry["inner"]).any() else None
    rate = fp32_tflops(args.d)
    limit = float(args.n) * args.n * args.d / (rate * 1e12)
    gpu = torch.cuda.get_device_name(0)
    peer = results["torch-topk"]["wall"]
    lines = [
        f"### Neighbour graph on a GPU, {args.data} data: N = {args.n:,}, D = {args.d:,}, k = {args.k}, float32",
        "",
        f"GPU: {gpu}, torch {torch.__version__}; host: {machine()}; load average at end {load_average()}. "
        f"`benchmarks/knn_cuda.py --data {args.data} --n {args.n}`, seed {args.seed}; medians of {args.repeats} "
        "interleaved rounds of whole processes (start-up, imports, CUDA context, reading and writing count). "
        f"Peer: blocked float32 products and `torch.topk` (TF32 off), not exact. Physical limit: N^2 D "
        f"floating-point operations at the IEEE float32 product rate measured in the run, {rate:.1f} TFLOP/s: "
        f"{limit:.2f} s. Recall: exact float64 neighbours of {len(queries)} sampled rows.",
        "",
        "| method | process (s) | each round (s) | graph in process (s) | speed-up vs peer (process) | recall |",
        "| --- | ---: | --- | ---: | ---: | ---: |",
    ]
    names = {"cli": "`hidden-geometry knn` (the CLI, exact)", "ours": "hidden_geometry.knn_graph (exact)",
             "torch-topk": "float32 products + torch.topk (peer)"}
    for method, entry in results.items():
        inner = "" if entry["seconds"] is None else f"{entry['seconds']:.2f}"
        rounds = ", ".join(f"{w:.2f}" for w in entry["walls"])
        lines.append(f"| {names[method]} | {entry['wall']:.2f} | {rounds} | {inner} | {peer / entry['wall']:.2f}x "
                     f"| {entry['recall']:.4f} |")
    table = "\n".join(lines)
    print(table)
    if not args.no_doc:
        tag = f"{args.data}_{args.n}"
        write_section(table, BEGIN.replace("cuda:", f"cuda_{tag}:"), END.replace("cuda:", f"cuda_{tag}:"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
