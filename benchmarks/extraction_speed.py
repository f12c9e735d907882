"""Extraction speed of random-weight ESM-2 architectures on real SCOPe sequences, on this machine's CPU.

    python benchmarks/extraction_speed.py                                # t6_8M and t12_35M, ~150 sequences
    python benchmarks/extraction_speed.py --models t6_8M t12_35M t30_150M --n-items 100 --budgets 1024

For each model, token budget and allocator setting it runs the project's own extraction
(`hidden_geometry.models.extraction.extract_representations`, all layers, mean pooling, written to .npy) in a
fresh subprocess, since `GLIBC_TUNABLES=glibc.malloc.hugetlb=1` only takes effect at process start. Weights are
random (published architectures, `build_random_esm2`): the time of a forward pass does not depend on the weights.
Reports items/s and residues/s (model loading excluded), the process CPU time (on a shared machine, wall time
grows with the other load; the 1-minute load average is recorded beside it) and the FLOP rate
2 * params * tokens / s that docs/scaling.md extrapolates from. Sequences: a seeded sample of the SCOPe 2.07 40% file in
../shared/data (or $HG_SHARED_DATA), lengths 1..1022.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = PROJECT_ROOT / "benchmarks" / "out" / "extraction_speed.json"
SCOPE_FILE = Path("scope") / "astral-scopedom-seqres-gd-sel-gs-bib-40-2.07.fa"
MODELS = {  # short name -> (layers, embed_dim, heads)
    "t6_8M": (6, 320, 20),
    "t12_35M": (12, 480, 20),
    "t30_150M": (30, 640, 20),
    "t33_650M": (33, 1280, 20),
}
HUGETLB = "glibc.malloc.hugetlb=1"


@dataclass(frozen=True)
class ExtractionTiming:
    """One (model, token budget, allocator) run: extraction time of `n_items` sequences."""

    model: str
    parameters: int
    threads: int
    token_budget: int
    hugetlb: bool
    n_items: int
    n_residues: int
    n_tokens: int
    seconds: float
    cpu_seconds: float
    load_average: float
    items_per_second: float
    residues_per_second: float
    gflop_per_second: float

    def to_dict(self) -> dict:
        return asdict(self)


def shared_data_dir() -> Path:
    return Path(os.environ.get("HG_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data")).resolve()


def sample_sequences(n_items: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """Ids and sequences of a seeded sample of SCOPe domains of 1..1022 residues, in file order."""
    import numpy as np

    from hidden_geometry.data.scope import read_scope

    domains = [d for d in read_scope(shared_data_dir() / SCOPE_FILE) if 0 < len(d.sequence) <= 1022]
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(domains), size=min(n_items, len(domains)), replace=False))
    return [domains[i].id for i in chosen], [domains[i].sequence for i in chosen]


def checkpoint_for(model: str, cache: Path) -> Path:
    """The random-weight checkpoint of `model`, built once into `cache`."""
    from hidden_geometry.models.random_init import build_random_esm2, esm2_file_name

    layers, dim, heads = MODELS[model]
    path = cache / esm2_file_name(layers, dim, heads)
    if not path.is_file():
        build_random_esm2(path, num_layers=layers, embed_dim=dim, attention_heads=heads, seed=0)
    return path


def worker(model: str, token_budget: int, n_items: int, cache: Path, threads: int) -> ExtractionTiming:
    """Load the model and time one extraction of the sample (runs inside the subprocess)."""
    import torch

    from hidden_geometry.models.extraction import extract_representations

    torch.set_num_threads(threads)
    from hidden_geometry.models.loading import load_model

    ids, sequences = sample_sequences(n_items)
    adapter = load_model({"kind": "esm2", "backend": "fair-esm", "path": str(checkpoint_for(model, cache))},
                         device="cpu", name=model)
    parameters = sum(p.numel() for p in adapter.model.parameters())
    with tempfile.TemporaryDirectory(prefix="hg-extraction-bench-") as out_dir:
        start, cpu_start = time.perf_counter(), time.process_time()
        extract_representations(adapter, sequences, ids, out_dir, token_budget=token_budget, progress=False)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    residues = sum(len(s) for s in sequences)
    tokens = residues + 2 * len(sequences)
    return ExtractionTiming(
        model, parameters, threads, token_budget, os.environ.get("GLIBC_TUNABLES", "") == HUGETLB, len(sequences),
        residues, tokens, seconds, cpu_seconds, os.getloadavg()[0], len(sequences) / seconds, residues / seconds,
        2.0 * parameters * tokens / seconds / 1e9,
    )


def run_in_subprocess(
    model: str, token_budget: int, hugetlb: bool, n_items: int, cache: Path, threads: int
) -> ExtractionTiming:
    """One measurement in a fresh interpreter, with or without the huge-page malloc tunable."""
    env = dict(os.environ)
    env.pop("GLIBC_TUNABLES", None)
    if hugetlb:
        env["GLIBC_TUNABLES"] = HUGETLB
    command = [sys.executable, __file__, "--worker", model, "--budgets", str(token_budget), "--n-items",
               str(n_items), "--cache", str(cache), "--threads", str(threads)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return ExtractionTiming(**json.loads(result.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["t6_8M", "t12_35M"])
    parser.add_argument("--budgets", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--hugetlb", choices=["both", "on", "off"], default="both")
    parser.add_argument("--n-items", type=int, default=150)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "hg-bench-models",
                        help="where the random-weight checkpoints are built once")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: per-core numbers that a busy machine's load distorts least)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--worker", choices=sorted(MODELS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        timing = worker(args.worker, args.budgets[0], args.n_items, args.cache, args.threads)
        print(json.dumps(timing.to_dict()))
        return 0

    if not (shared_data_dir() / SCOPE_FILE).is_file():
        print(f"SCOPe file not found under {shared_data_dir()} (set HG_SHARED_DATA)", file=sys.stderr)
        return 1
    settings = {"both": [False, True], "on": [True], "off": [False]}[args.hugetlb]
    timings: list[ExtractionTiming] = []
    print(f"torch threads per run: {args.threads}")
    print(
        "| model | params | budget | hugetlb | items | residues | s | CPU s | load | items/s | residues/s | GFLOP/s |"
    )
    print("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for model in args.models:
        for budget in args.budgets:
            for hugetlb in settings:
                t = run_in_subprocess(model, budget, hugetlb, args.n_items, args.cache, args.threads)
                timings.append(t)
                print(f"| {t.model} | {t.parameters / 1e6:.1f}M | {t.token_budget} | {'on' if t.hugetlb else 'off'} "
                      f"| {t.n_items} | {t.n_residues} | {t.seconds:.1f} | {t.cpu_seconds:.1f} | {t.load_average:.1f} "
                      f"| {t.items_per_second:.2f} "
                      f"| {t.residues_per_second:.0f} | {t.gflop_per_second:.1f} |", flush=True)

    from hidden_geometry.atomic import write_text_atomic

    report = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
              "timings": [t.to_dict() for t in timings]}
    write_text_atomic(args.out, json.dumps(report, indent=2) + "\n")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
