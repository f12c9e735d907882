"""Linear probe time and accuracy: the default solver (one L-BFGS per fold, folds side by side in torch) against
scikit-learn's LogisticRegression per fold (the earlier probe), each in its own process, on the same rows, labels and
folds, interleaved source by source.

Rows: `--vectors A.npy [B.npy ...] --labels y.npy` (e.g. every layer of an extraction and its superfamily labels;
each file is one source), and/or `--synthetic` clustered rows (`--n`, `--d`, `--classes`). `--reference` adds
scikit-learn at tol 1e-8 (a converged fit) so that both can be compared with the optimum, not only with each other.
Each run is a whole process (imports included in `process s`, not in `probe s`); `cpu s` is the probe's processor
time (all threads), less sensitive than wall time to other jobs on the machine; `process cpu s` the whole
process's user + system time up to the end of the probe (imports of torch or scikit-learn included; the
scikit-learn process imports scikit-learn alone, `sklearn_folds`, as its users run it). The markdown section in
docs/benchmarks.md, with the machine's load before and after each run, is rewritten after every source, so an
interrupted run keeps what it measured. `--rounds N` runs every solver N times per source, interleaved (the table gives
medians, and each round's process cpu s); `--baseline DIR` adds the torch solver of another checkout's `src` (e.g. a
`git worktree` of an earlier commit) to every round, side by side with this one.

    python benchmarks/linear_probe_speed.py --vectors emb/layer_00*.npy --labels labels.npy --synthetic
    python benchmarks/linear_probe_speed.py --synthetic --n 3000 --classes 60 --no-doc      # quick check
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
RUNS = {"torch": ("torch", 1e-4), "sklearn": ("sklearn", 1e-4), "sklearn-converged": ("sklearn", 1e-8),
        "torch-baseline": ("torch", 1e-4)}


def synthetic(n: int, d: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Clustered low-rank rows with a common offset, classes of unequal sizes (at least 5 members each)."""
    rng = np.random.default_rng(seed)
    sizes = np.maximum(5, rng.zipf(1.8, classes) * 5)
    y = np.repeat(np.arange(classes), np.maximum(1, (sizes * n / sizes.sum()).astype(int)).clip(5))
    basis = rng.standard_normal((64, d))
    centres = rng.standard_normal((classes, 64)) * 0.5
    X = (centres[y] + rng.standard_normal((y.size, 64))) @ basis + 0.5 * rng.standard_normal((y.size, d)) + 3.0
    return X, y


def sklearn_folds(X: np.ndarray, y: np.ndarray, tol: float, max_iter: int, folds: int = 5, seed: int = 0,
                  C: float = 1.0) -> dict:
    """The peer as its users run it: scikit-learn alone (StratifiedKFold, StandardScaler, LogisticRegression), with
    nothing of ours imported. `hidden_geometry.probes` imports torch (1.2 to 1.5 s of processor time), which a
    scikit-learn process does not pay. The folds are `fold_splits`' (tests/geometry/test_probes.py checks that they
    are StratifiedKFold's), and `linear_probe(solver="sklearn")` fits each of them as here."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if np.unique(y, return_counts=True)[1].min() < folds:
        raise SystemExit(f"every class needs at least {folds} members for the scikit-learn worker")
    scores = []
    for train, test in StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(X, y):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=C, tol=tol, max_iter=max_iter))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X[train], y[train])
        scores.append(float(np.mean(model.predict(X[test]) == y[test])))
    return {"mean": float(np.mean(scores)), "std": float(np.std(scores)), "n_folds": folds, "n": int(y.size),
            "classes": int(np.unique(y).size)}


def worker(args: argparse.Namespace) -> None:
    start = time.perf_counter()
    solver, tol = RUNS[args.worker]
    if solver == "torch":
        sys.path.insert(0, args.src or str(ROOT / "src"))
        from hidden_geometry.probes import linear_probe
    X, y = np.load(args.x), np.load(args.y, allow_pickle=False)
    before, cpu_before = time.perf_counter(), time.process_time()
    if solver == "torch":
        result = linear_probe(X, y, solver=solver, tol=tol, max_iter=args.max_iter)
        fit = {"mean": result.mean, "std": result.std, "n_folds": result.n_folds, "n": result.n,
               "classes": result.n_classes}
    else:
        fit = sklearn_folds(X, y, tol, args.max_iter)
    probe, cpu = time.perf_counter() - before, time.process_time() - cpu_before
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"probe": probe, "cpu": cpu, "process": time.perf_counter() - start,
                      "process_cpu": usage.ru_utime + usage.ru_stime, "torch_imported": "torch" in sys.modules,
                      **fit}))


def run(name: str, x: str, y: str, max_iter: int, threads: int | None, src: str | None = None) -> dict:
    command = [sys.executable, __file__, "--worker", name, "--x", x, "--y", y,
               "--max-iter", str(max_iter if name != "sklearn-converged" else 10 * max_iter)]
    if src:
        command += ["--src", src]
    env = dict(os.environ)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    out = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def medians(rounds: list[dict]) -> dict:
    """Each timing's median over the rounds (accuracies are the same in every round: the solvers are
    deterministic), and the rounds' process cpu s."""
    out = dict(rounds[0])
    for key in ("probe", "cpu", "process", "process_cpu"):
        out[key] = float(np.median([r[key] for r in rounds]))
    out["each"] = ", ".join(f"{r['process_cpu']:.1f}" for r in rounds)
    return out


def table(sources: list[tuple[str, dict, list[str]]], header: str) -> str:
    lines = [header, "",
             "| rows | solver | tol | probe s | cpu s | process s | process cpu s | process cpu s, each round | "
             "speed-up (probe) | speed-up (cpu) | speed-up (process cpu) | accuracy mean | std | minus scikit-learn |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for source, rounds, _ in sources:
        rows = {name: medians(runs) for name, runs in rounds.items()}
        base = rows["sklearn"]
        for name, r in rows.items():
            solver = RUNS[name][0] + (" (baseline)" if name == "torch-baseline" else "")
            lines.append(f"| {source} | {solver} | {RUNS[name][1]:g} | {r['probe']:.1f} | {r['cpu']:.1f} | "
                         f"{r['process']:.1f} | {r['process_cpu']:.1f} | {r['each']} | "
                         f"{base['probe'] / r['probe']:.2f} | {base['cpu'] / r['cpu']:.2f} | "
                         f"{base['process_cpu'] / r['process_cpu']:.2f} | "
                         f"{r['mean']:.4f} | {r['std']:.4f} | "
                         f"{r['mean'] - base['mean']:+.4f} |")
    lines += ["", "Load average (1, 5, 15 min) before and after each run, by rows: "
              + "; ".join(f"{source}: {' | '.join(loads)}" for source, _, loads in sources) + "."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", nargs="+", default=[])
    parser.add_argument("--labels")
    parser.add_argument("--synthetic", action="store_true", help="also synthetic clustered rows")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--d", type=int, default=320)
    parser.add_argument("--classes", type=int, default=282)
    parser.add_argument("--reference", action="store_true", help="also scikit-learn at tol 1e-8")
    parser.add_argument("--threads", type=int, help="threads of every run (default: the libraries' own)")
    parser.add_argument("--max-iter", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=1, help="runs of every solver per source, interleaved")
    parser.add_argument("--baseline", metavar="DIR", help="also the torch solver of this `src` directory")
    parser.add_argument("--float64-rows", action="store_true",
                        help="give both solvers float64 rows (every run before 1 December did); the default is "
                             "float32 rows, as an extraction writes them and as scikit-learn's users then fit them")
    parser.add_argument("--no-doc", action="store_true")
    parser.add_argument("--src", help=argparse.SUPPRESS)
    parser.add_argument("--worker", choices=sorted(RUNS), help=argparse.SUPPRESS)
    parser.add_argument("--x", help=argparse.SUPPRESS)
    parser.add_argument("--y", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    if args.vectors and not args.labels:
        parser.error("--vectors needs --labels")
    if not args.vectors and not args.synthetic:
        parser.error("give --vectors and/or --synthetic")
    import tempfile

    names = (["torch"] + (["torch-baseline"] if args.baseline else []) + ["sklearn"]
             + (["sklearn-converged"] if args.reference else []))
    sources: list[tuple[str, dict, list[str]]] = []
    inputs = [(f"`{Path(v).name}`", v) for v in args.vectors] + ([("synthetic", None)] if args.synthetic else [])
    shape = ""
    with tempfile.TemporaryDirectory() as tmp:
        for label, path in inputs:
            X, y = (np.load(path), np.load(args.labels, allow_pickle=False)) if path else synthetic(
                args.n, args.d, args.classes, args.seed)
            np.save(Path(tmp) / "X.npy", np.asarray(X, dtype=np.float64 if args.float64_rows else np.float32))
            np.save(Path(tmp) / "y.npy", np.asarray(y))
            loads, rows = [load_average()], {name: [] for name in names}
            for _ in range(args.rounds):
                for name in names:
                    src = args.baseline if name == "torch-baseline" else None
                    rows[name].append(run(name, f"{tmp}/X.npy", f"{tmp}/y.npy", args.max_iter, args.threads, src))
                    loads.append(load_average())
                    print(label, name, rows[name][-1], flush=True)
            sources.append((label, rows, loads))
            first = rows["sklearn"][0]
            shape += f"{label}: N = {first['n']}, D = {X.shape[1]}, {first['classes']} classes; "
            threads = f"{args.threads} thread(s) per run" if args.threads else "the libraries' default threads"
            rounds = f"; medians of {args.rounds} interleaved rounds" if args.rounds > 1 else ""
            header = (f"### Linear probe, {first['n_folds']} folds ({shape.rstrip('; ')})\n\n"
                      f"{machine()}; {threads}{rounds}; both solvers read the rows as "
                      f"{'float64' if args.float64_rows else 'float32'}.")
            text = table(sources, header)
            if not args.no_doc:
                write_section(text, BEGIN, END)
    print(text)


if __name__ == "__main__":
    main()
