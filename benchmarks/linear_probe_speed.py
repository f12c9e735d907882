"""Linear probe time and accuracy: the default solver (all folds in one float32 fit) against scikit-learn's
LogisticRegression per fold (the earlier probe), each in its own process, on the same rows, labels and folds.

Rows: `--vectors X.npy --labels y.npy` (e.g. one layer of an extraction and its superfamily labels), or synthetic
clustered rows (`--n`, `--d`, `--classes`). `--reference` adds scikit-learn at tol 1e-8 (a converged fit) so that
both can be compared with the optimum, not only with each other. Each run is a whole process (imports included in
`process s`, not in `probe s`). It writes a markdown section into docs/benchmarks.md with the machine's load.

    python benchmarks/linear_probe_speed.py --vectors layer_003.npy --labels labels.npy --reference
    python benchmarks/linear_probe_speed.py --n 3000 --classes 60 --no-doc      # quick check
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from knn_graph import load_average, machine, write_section  # noqa: E402 - after the sys.path entry above

BEGIN, END = "<!-- linear_probe:begin -->", "<!-- linear_probe:end -->"
RUNS = {"torch": ("torch", 1e-4), "sklearn": ("sklearn", 1e-4), "sklearn-converged": ("sklearn", 1e-8)}


def synthetic(n: int, d: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Clustered low-rank rows with a common offset, classes of unequal sizes (at least 5 members each)."""
    rng = np.random.default_rng(seed)
    sizes = np.maximum(5, rng.zipf(1.8, classes) * 5)
    y = np.repeat(np.arange(classes), np.maximum(1, (sizes * n / sizes.sum()).astype(int)).clip(5))
    basis = rng.standard_normal((64, d))
    centres = rng.standard_normal((classes, 64)) * 0.5
    X = (centres[y] + rng.standard_normal((y.size, 64))) @ basis + 0.5 * rng.standard_normal((y.size, d)) + 3.0
    return X, y


def worker(args: argparse.Namespace) -> None:
    start = time.perf_counter()
    sys.path.insert(0, str(ROOT / "src"))
    from hidden_geometry.probes import linear_probe

    X, y = np.load(args.x), np.load(args.y, allow_pickle=False)
    solver, tol = RUNS[args.worker]
    before = time.perf_counter()
    result = linear_probe(X, y, solver=solver, tol=tol, max_iter=args.max_iter)
    probe = time.perf_counter() - before
    print(json.dumps({"probe": probe, "process": time.perf_counter() - start, "mean": result.mean,
                      "std": result.std, "n_folds": result.n_folds, "n": result.n, "classes": result.n_classes}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors")
    parser.add_argument("--labels")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--d", type=int, default=320)
    parser.add_argument("--classes", type=int, default=282)
    parser.add_argument("--reference", action="store_true", help="also scikit-learn at tol 1e-8")
    parser.add_argument("--max-iter", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-doc", action="store_true")
    parser.add_argument("--worker", choices=sorted(RUNS), help=argparse.SUPPRESS)
    parser.add_argument("--x", help=argparse.SUPPRESS)
    parser.add_argument("--y", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        if args.vectors:
            X, y = np.load(args.vectors), np.load(args.labels, allow_pickle=False)
            source = f"`{Path(args.vectors).name}` with `{Path(args.labels).name}`"
        else:
            X, y = synthetic(args.n, args.d, args.classes, args.seed)
            source = "synthetic clustered rows"
        np.save(Path(tmp) / "X.npy", np.asarray(X, dtype=np.float64))
        np.save(Path(tmp) / "y.npy", np.asarray(y))
        loads = [load_average()]
        rows = {}
        for name in ["torch", "sklearn"] + (["sklearn-converged"] if args.reference else []):
            command = [sys.executable, __file__, "--worker", name, "--x", f"{tmp}/X.npy", "--y", f"{tmp}/y.npy",
                       "--max-iter", str(args.max_iter if name != "sklearn-converged" else 10 * args.max_iter)]
            out = subprocess.run(command, check=True, capture_output=True, text=True, env=os.environ)
            rows[name] = json.loads(out.stdout.strip().splitlines()[-1])
            loads.append(load_average())
            print(name, rows[name], flush=True)
    base = rows["sklearn"]
    title = (f"### Linear probe: {source}, N = {X.shape[0]}, D = {X.shape[1]}, {base['classes']} classes, "
             f"{base['n_folds']} folds")
    lines = [title, "",
             f"{machine()}; load average (1, 5, 15 min) before and after each run: {' | '.join(loads)}.", "",
             "| solver | tol | probe s | process s | speed-up (probe) | accuracy mean | std | minus scikit-learn |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in rows.items():
        lines.append(f"| {RUNS[name][0]} | {RUNS[name][1]:g} | {r['probe']:.1f} | {r['process']:.1f} | "
                     f"{base['probe'] / r['probe']:.2f} | {r['mean']:.4f} | {r['std']:.4f} | "
                     f"{r['mean'] - base['mean']:+.4f} |")
    text = "\n".join(lines)
    print(text)
    if not args.no_doc:
        write_section(text, BEGIN, END)


if __name__ == "__main__":
    main()
