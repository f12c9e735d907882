"""Time of every measure of one layer computed from its neighbour graph, at N = 50,000 and k = 100.

The graph is built once (its time is reported too), then each measure is timed from it, best of `--repeats`:
TwoNN (fit and maximum likelihood), Gride (all scales and the choice), neighbourhood overlap with a second
layer, label overlap (plain, with family exclusion, class-balanced), the kNN probe, the TwoNN decimation error bar
(from the graph), saving and loading the graph; anisotropy, which takes the rows, is listed apart. The goal is
under one second per graph measure. It writes a markdown section into docs/benchmarks.md.

    python benchmarks/layer_measures.py              # N=50,000, k=100
    python benchmarks/layer_measures.py --n 5000     # quick check
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from knn_graph import load_average, machine, make_data, peak_rss_mb, write_section  # noqa: E402

BEGIN, END = "<!-- layer_measures:begin -->", "<!-- layer_measures:end -->"


def best_time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--d", type=int, default=128, help="width of the rows the graphs are built from")
    parser.add_argument("-k", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from hidden_geometry.geometry import (
        anisotropy,
        gride,
        knn_graph,
        label_overlap,
        load_graph,
        neighbourhood_overlap,
        save_graph,
        twonn,
        twonn_decimation,
        twonn_mle,
    )
    from hidden_geometry.probes import knn_probe

    load_start = load_average()
    rng = np.random.default_rng(args.seed)
    X = make_data(args.n, args.d, args.seed, 0.0)
    X_next = X + 0.1 * rng.standard_normal(X.shape).astype(np.float32)  # the "next layer"
    # Labels: 100 classes; exclusion groups: 2,000 families, each inside one class.
    family = rng.integers(0, 2000, args.n)
    labels = family % 100
    start = time.perf_counter()
    graph = knn_graph(X, args.k)
    graph_seconds = time.perf_counter() - start
    graph_next = knn_graph(X_next, args.k)
    rows = [
        ("TwoNN (linear fit, 90%)", lambda: twonn(graph)),
        ("TwoNN (maximum likelihood)", lambda: twonn_mle(graph)),
        ("Gride (every scale n2 = 2, 4, ..., up to k, and the choice)", lambda: gride(graph)),
        ("neighbourhood overlap chi_k with the next layer", lambda: neighbourhood_overlap(graph, graph_next)),
        ("label overlap chi_k^gt", lambda: label_overlap(graph, labels, args.k)),
        ("label overlap, family excluded (k = 30)", lambda: label_overlap(graph, labels, 30, exclude_groups=family)),
        ("label overlap, class-balanced", lambda: label_overlap(graph, labels, args.k, class_balanced=True)),
        ("kNN probe (leave-one-out)", lambda: knn_probe(graph, labels, args.k)),
        ("TwoNN decimation error bar (2 halves, from the graph)", lambda: twonn_decimation(graph, X, 0.5)),
    ]
    timings = [(name, best_time(fn, args.repeats)) for name, fn in rows]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "graph.npz"
        timings.append(("save_graph + load_graph (.npz)", best_time(lambda: (save_graph(graph, path), load_graph(path)),
                                                                    args.repeats)))
    aniso_seconds = best_time(lambda: anisotropy(X), args.repeats)
    peak = peak_rss_mb()
    load_end = load_average()
    busy = float(load_start.split()[0]) > 0.5 or float(load_end.split()[0]) > 0.5
    lines = [
        f"### Measures from one graph: N = {args.n:,}, k = {args.k}",
        "",
        f"Machine: {machine()}; {args.threads} torch threads. Load average at start {load_start}, at end {load_end}"
        + (" (other processes were using the CPU)." if busy else "."),
        f"Rows: clustered low-rank data, D = {args.d} (the measures below depend on N and k, not on D). Building "
        f"the graph took {graph_seconds:.1f} s. Times are the best of {args.repeats}. Peak RSS of the run: "
        f"{peak:.0f} MB.",
        "",
        "| measure | time (s) | under 1 s |",
        "| --- | ---: | :---: |",
    ]
    for name, seconds in timings:
        lines.append(f"| {name} | {seconds:.3f} | {'yes' if seconds < 1 else 'no'} |")
    lines.append(
        f"| anisotropy (from the rows, D = {args.d}) | {aniso_seconds:.3f} | {'yes' if aniso_seconds < 1 else 'no'} |"
    )
    text = "\n".join(lines)
    print(text)
    if not args.no_doc:
        write_section(text, BEGIN, END)


if __name__ == "__main__":
    main()
