"""Exact k-nearest-neighbour graph: ours against faiss IndexFlatL2 and scikit-learn brute force (DADApy's backend).

One run measures, side by side on the same data and machine:
- wall time of each method as a whole process (start-up, imports, reading the rows, the graph, writing the
  result: the workflow runs one process per layer), the methods interleaved over --repeats rounds, medians;
  and the graph's own time inside the process,
- faiss at its best on this CPU: its bundled OpenBLAS 0.3.15 picks a generic kernel on these machines unless
  OPENBLAS_CORETYPE names one, so its process gets the fastest kernel the CPU can run (`faiss_coretype`: SkylakeX
  with AVX-512, Haswell with AVX2 only; OPENBLAS_L2_SIZE unset), and the kernel it used is read back with
  threadpoolctl and reported,
- recall against the exact answer on sampled query rows (float64, direct distances),
- peak RSS of each subprocess,
- achieved GFLOP/s of our graph (multiply-adds actually performed, and flat-search equivalent) against a plain
  float32 matrix product of the same width on this machine.
It writes a markdown section into docs/benchmarks.md (between markers, replacing an earlier run's).

    python benchmarks/knn_graph.py                      # N=50,000, D=1,280, k=100 (several minutes)
    python benchmarks/knn_graph.py --n 5000 --d 256     # quick check
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from hidden_geometry.hardware import cpu_field, cpu_flags

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
MARKERS = {
    # (The N = 50,000 tables measured before issue 11 keep their old markers, knn_graph:begin/end, untouched.)
    "clustered": ("<!-- knn_graph_clustered:begin -->", "<!-- knn_graph_clustered:end -->"),
    "manifold": ("<!-- knn_graph_manifold:begin -->", "<!-- knn_graph_manifold:end -->"),
    "isotropic": ("<!-- knn_graph_isotropic:begin -->", "<!-- knn_graph_isotropic:end -->"),
}
BEGIN, END = MARKERS["clustered"]


def make_data(n: int, d: int, seed: int, offset: float, kind: str = "clustered") -> np.ndarray:
    """Clustered low-rank data with noise, like hidden representations (float32); optional common offset.

    kind "isotropic": standard normal rows in all d dimensions instead, the worst case for any method that
    prunes with a bound (every point is nearly as far as the nearest).
    """
    rng = np.random.default_rng(seed)
    if kind == "isotropic":
        return rng.standard_normal((n, d), dtype=np.float32)
    if kind == "manifold":
        # Not clustered: a smooth 8-dimensional non-linear manifold (random Fourier features of uniform latent
        # points) spanning 64 directions, plus isotropic noise in all d, offset from the origin.
        latent = rng.uniform(-1.0, 1.0, (n, 8))
        features = np.sin(latent @ rng.standard_normal((8, 64)) * 1.5 + rng.uniform(0, 2 * np.pi, 64))
        X = features @ (rng.standard_normal((64, d)) / np.sqrt(64)) + 0.15 * rng.standard_normal((n, d))
        direction = rng.standard_normal(d)
        X += (offset or 20.0) * direction / np.linalg.norm(direction)
        return X.astype(np.float32)
    rank = min(64, d)
    centres = rng.standard_normal((100, rank)) * 2.0
    Z = centres[rng.integers(0, 100, n)] + rng.standard_normal((n, rank))
    W = rng.standard_normal((rank, d)) / np.sqrt(rank)
    X = Z @ W + 0.3 * rng.standard_normal((n, d))
    if offset:
        direction = rng.standard_normal(d)
        X += offset * direction / np.linalg.norm(direction)
    return X.astype(np.float32)


def peak_rss_mb() -> float:
    """Peak resident memory of this process (VmHWM). Not ru_maxrss: Linux carries that over from the parent
    across fork and exec, so every worker would report at least the parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def worker(method: str, data_path: str, k: int, threads: int, out_path: str) -> None:
    """Run one method in this process; write indices (int64 [N, k], self excluded) and a JSON of timings.

    Each method's modules are imported before the clock starts (torch and numba take over a second to import,
    faiss a tenth): the time is the graph's. A first call's one-off costs (loading compiled kernels from the
    numba cache, the bfloat16 speed probe) are inside it.
    """
    X = np.load(data_path)
    extra: dict = {}
    if method in ("ours", "ours-float32"):
        import torch

        torch.set_num_threads(threads)
        from hidden_geometry.geometry import _knn_cpu, knn_graph

        # Record what the engine did (precision, rows settled by each fallback) without changing its path.
        engine = _knn_cpu.cpu_graph

        def recorded(*a, **kw):
            out = engine(*a, **kw)
            extra.update(out[2])
            return out

        _knn_cpu.cpu_graph = recorded

        def run() -> np.ndarray:
            graph = knn_graph(X, k, precision="auto" if method == "ours" else "float32")
            return all_rows(graph.rows, graph.indices, X.shape[0])

    elif method == "faiss":
        import faiss
        from threadpoolctl import threadpool_info

        faiss.omp_set_num_threads(threads)
        extra["openblas"] = [i.get("architecture") for i in threadpool_info()
                             if i.get("internal_api") == "openblas" and "faiss" in i.get("filepath", "")]

        def run() -> np.ndarray:
            index = faiss.IndexFlatL2(X.shape[1])
            index.add(X)
            _, found = index.search(X, k + 1)
            return drop_self(found.astype(np.int64), k)

    elif method == "sklearn":
        from sklearn.neighbors import NearestNeighbors

        def run() -> np.ndarray:
            nn = NearestNeighbors(n_neighbors=k + 1, algorithm="brute", n_jobs=threads).fit(X)
            _, found = nn.kneighbors(X)
            return drop_self(found.astype(np.int64), k)

    else:
        raise SystemExit(f"unknown method {method}")
    rss_before = peak_rss_mb()
    start = time.perf_counter()
    indices = run()
    seconds = time.perf_counter() - start
    np.save(out_path + ".npy", indices)
    Path(out_path + ".json").write_text(
        json.dumps({"seconds": seconds, "peak_rss_mb": peak_rss_mb(), "rss_before_mb": rss_before, "engine": extra}),
        encoding="utf-8",
    )


def all_rows(rows: np.ndarray, indices: np.ndarray, n: int) -> np.ndarray:
    """A graph's neighbour indices as an [n, k] array over all n input rows (-1 for rows it left out)."""
    found = np.full((n, indices.shape[1]), -1, dtype=np.int64)
    found[rows] = indices
    return found


def recall(found: np.ndarray, exact: list[set[int]], queries: np.ndarray, k: int) -> float:
    """Mean share of the exact k nearest (`exact_neighbours` of `queries`) among the found neighbours."""
    return float(np.mean([len(exact[i] & set(found[q].tolist())) / k for i, q in enumerate(queries)]))


def drop_self(found: np.ndarray, k: int) -> np.ndarray:
    """Remove each row's own index (by index, wherever it landed); keep k."""
    own = found == np.arange(found.shape[0])[:, None]
    out = np.empty((found.shape[0], k), dtype=np.int64)
    for i in range(found.shape[0]):
        row = found[i][~own[i]]
        out[i] = row[:k]
    return out


def recall_queries(n: int, count: int, seed: int) -> np.ndarray:
    """The rows whose exact neighbours give the recall: `count` distinct rows of n, drawn with seed + 1 (the data
    use `seed` itself)."""
    return np.random.default_rng(seed + 1).choice(n, size=min(count, n), replace=False)


def exact_neighbours(X: np.ndarray, queries: np.ndarray, k: int) -> list[set[int]]:
    """Exact k nearest of the query rows as sets: float64 distances of the centred rows (one float64 product)."""
    X64 = X.astype(np.float64)
    X64 -= X64.mean(axis=0)
    norms = np.einsum("ij,ij->i", X64, X64)
    sq = norms[:, None] + norms[queries][None, :] - 2.0 * (X64 @ X64[queries].T)  # [N, Q]
    sq[queries, np.arange(queries.size)] = np.inf
    return [set(np.argpartition(sq[:, j], k)[:k].tolist()) for j in range(queries.size)]


def matmul_gflops(d: int, threads: int, size: int = 4096, dtype: str = "float32", library: str = "torch") -> float:
    """GFLOP/s of a plain matrix product (size x d) @ (d x size) in `dtype` on this machine, best of 5: torch's, or
    with library="numpy" numpy's (its OpenBLAS; float32 only)."""
    import torch

    torch.set_num_threads(threads)
    kind = getattr(torch, dtype)
    a = torch.randn(size, d).to(kind)
    b = torch.randn(size, d).to(kind)
    out = torch.empty(size, size, dtype=kind)
    if library == "numpy":
        from threadpoolctl import threadpool_limits

        a_, b_, out_ = a.numpy(), b.numpy(), out.numpy()
        with threadpool_limits(limits=threads, user_api="blas"):
            return _best_rate(lambda: np.matmul(a_, b_.T, out=out_), size, d)
    return _best_rate(lambda: torch.mm(a, b.T, out=out), size, d)


def _best_rate(product, size: int, d: int) -> float:
    product()
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        product()
        best = min(best, time.perf_counter() - start)
    return 2.0 * size * size * d / best / 1e9


def faiss_coretype(flags: frozenset[str]) -> str | None:
    """The OpenBLAS kernel with the fastest float32 products that a CPU with these flags can run, for faiss's
    bundled OpenBLAS 0.3.15: SkylakeX where there is AVX-512 (avx512f), Haswell where there is AVX2 and FMA only
    (OpenBLAS's Zen target uses the same float32 kernels: on an AMD EPYC of family 23, faiss took 35.2 s with
    Haswell and 35.7 s with Zen at N = 30,000, D = 1,280), None (OpenBLAS's own choice) on older CPUs. SkylakeX on
    a CPU without AVX-512 stops faiss with an illegal instruction."""
    if "avx512f" in flags:
        return "SkylakeX"
    if {"avx2", "fma"} <= flags:
        return "Haswell"
    return None


# CPU flags that decide which products are fast here, named in each table's machine line (results differ a lot
# between CPUs that /proc/cpuinfo calls by the same model name).
SPEED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def machine() -> str:
    cpu = cpu_field(("model name",)) or platform.processor() or "cpu"
    family, model = cpu_field(("cpu family",)), cpu_field(("model",))
    flags = cpu_flags()
    named = [flag for flag in SPEED_FLAGS if flag in flags]
    if family:
        cpu += f" (family {family}, model {model}; {', '.join(named) or 'no AVX2'})"
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, Python {platform.python_version()}"


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def write_section(text: str, begin: str = BEGIN, end: str = END) -> None:
    """Replace the docs/benchmarks.md section between `begin` and `end` (appended when absent) with `text`."""
    sys.path.insert(0, str(ROOT / "src"))
    from hidden_geometry.atomic import write_text_atomic

    old = DOC.read_text(encoding="utf-8") if DOC.exists() else "# Benchmarks\n"
    section = f"{begin}\n{text}\n{end}"
    if begin in old and end in old:
        new = old[: old.index(begin)] + section + old[old.index(end) + len(end) :]
    else:
        new = old.rstrip("\n") + "\n\n" + section + "\n"
    write_text_atomic(DOC, new)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--d", type=int, default=1280)
    parser.add_argument("-k", type=int, default=100)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--methods", default="ours,ours-float32,faiss,sklearn")
    parser.add_argument("--queries", type=int, default=200, help="rows whose exact neighbours give the recall")
    parser.add_argument("--offset", type=float, default=0.0, help="common offset norm added to every row")
    parser.add_argument("--data", choices=sorted(MARKERS), default="clustered", help="kind of rows (see make_data)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds; medians are reported")
    parser.add_argument("--no-doc", action="store_true", help="print the table only")
    parser.add_argument("--faiss-coretype", default=None,
                        help="OPENBLAS_CORETYPE for faiss's process (default: the best this CPU runs)")
    parser.add_argument("--worker", nargs=3, metavar=("METHOD", "DATA", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], args.worker[1], args.k, args.threads, args.worker[2])
        return

    load_start = load_average()
    X = make_data(args.n, args.d, args.seed, args.offset, args.data)
    queries = recall_queries(args.n, args.queries, args.seed)
    coretype = args.faiss_coretype or faiss_coretype(cpu_flags())
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        data_path = str(Path(tmp) / "X.npy")
        np.save(data_path, X)
        for round_ in range(args.repeats):
            for method in args.methods.split(","):
                out = str(Path(tmp) / method)
                env = dict(os.environ)
                if method == "faiss" and coretype:  # faiss at its best: its OpenBLAS on this CPU's best kernels
                    env["OPENBLAS_CORETYPE"] = coretype
                    env.pop("OPENBLAS_L2_SIZE", None)
                if method == "cli-torch":  # the CLI with its float32 tiles multiplied by torch (MKL), for comparison
                    env["HIDDEN_GEOMETRY_FLOAT32_PRODUCTS"] = "torch"
                if method in ("cli", "cli-torch"):  # the command a user (and the workflow) runs, as a whole process
                    command = [str(Path(sys.executable).parent / "hidden-geometry"), "knn", data_path, "-k",
                               str(args.k), "-o", out + ".npz"]
                else:
                    command = [sys.executable, __file__, "--worker", method, data_path, out, "-k", str(args.k),
                               "--threads", str(args.threads)]
                start = time.perf_counter()
                proc = subprocess.run(command, capture_output=True, text=True, env=env)
                wall = time.perf_counter() - start
                if proc.returncode != 0:
                    print(f"{method} failed:\n{proc.stderr}", file=sys.stderr)
                    continue
                if method in ("cli", "cli-torch"):
                    with np.load(out + ".npz") as graph:
                        found = all_rows(graph["rows"], graph["indices"], args.n)
                    info = {"seconds": float("nan"), "peak_rss_mb": float("nan"), "engine": {}, "indices": found}
                else:
                    info = json.loads(Path(out + ".json").read_text(encoding="utf-8"))
                    info["indices"] = np.load(out + ".npy")
                entry = results.setdefault(method, {"walls": [], "inner": [], "loads": []})
                entry["walls"].append(wall)
                entry["inner"].append(info["seconds"])
                entry["loads"].append(load_average().split()[0])
                entry.update({key: value for key, value in info.items() if key not in ("seconds",)})
                print(f"round {round_ + 1} {method}: process {wall:.1f} s (graph {info['seconds']:.1f} s), "
                      f"load {entry['loads'][-1]}", flush=True)
        for entry in results.values():
            entry["wall"] = float(np.median(entry["walls"]))
            inner_finite = np.isfinite(entry["inner"]).any()
            entry["seconds"] = float(np.nanmedian(entry["inner"])) if inner_finite else float("nan")
    exact = exact_neighbours(X, queries, args.k)
    for info in results.values():
        info["recall"] = recall(info["indices"], exact, queries, args.k)
    reference = {dtype: matmul_gflops(args.d, args.threads, dtype=dtype) for dtype in ("float32", "bfloat16")}
    # the limit takes the faster float32 library: the graph multiplies its float32 tiles with numpy's OpenBLAS on
    # AMD CPUs (hardware.float32_products_library), where torch's MKL is slower
    torch_float32 = reference["float32"]
    numpy_float32 = matmul_gflops(args.d, args.threads, library="numpy")
    reference["float32"] = max(torch_float32, numpy_float32)
    load_end = load_average()

    flops_half = float(args.n) * args.n * args.d  # N^2 D / 2 multiply-adds = N^2 D floating-point operations
    limit = {dtype: flops_half / (reference[dtype] * 1e9) for dtype in reference}
    data_text = {
        "clustered": "clustered low-rank (64) rows plus noise",
        "isotropic": "isotropic standard normal rows (the worst case for bounds)",
        "manifold": "not clustered: an 8-dimensional non-linear manifold in 64 directions, isotropic noise "
        "(0.15 per dimension), offset 20 from the origin",
    }[args.data]
    lines = [
        f"### Neighbour graph, {args.data} data: N = {args.n:,}, D = {args.d:,}, k = {args.k}, float32"
        + (f", common offset of norm {args.offset:g}" if args.offset else ""),
        "",
        f"Machine: {machine()}; {args.threads} threads. Load average (1/5/15 min) at start {load_start}, "
        f"at end {load_end}" + (" (other processes were using the CPU)." if float(load_start.split()[0]) > 0.5
                                 or float(load_end.split()[0]) > 0.5 else "."),
        f"Data: {data_text} (benchmarks/knn_graph.py --data {args.data} --n {args.n}, seed {args.seed}). "
        f"Recall: exact float64 neighbours of {len(queries)} sampled rows. Times: medians of {args.repeats} "
        "interleaved rounds; a process's time counts its start-up, imports, reading the rows and writing the result.",
        "",
        "| method | process (s) | each round (s) | graph in process (s) | speed-up vs faiss (process) | recall | "
        "peak RSS (MB) |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    faiss_time = results.get("faiss", {}).get("wall")
    names = {"ours": "hidden_geometry.knn_graph, precision auto", "ours-float32": "hidden_geometry.knn_graph, float32",
             "cli": "`hidden-geometry knn` (the CLI)",
             "cli-torch": "`hidden-geometry knn`, float32 tiles by torch (HIDDEN_GEOMETRY_FLOAT32_PRODUCTS=torch)",
             "faiss": "faiss IndexFlatL2", "sklearn": "scikit-learn brute force (DADApy's backend)"}
    for method, info in results.items():
        speedup = f"{faiss_time / info['wall']:.2f}x" if faiss_time else "n/a"
        label = names.get(method, method)
        if info.get("engine", {}).get("precision"):
            label += f" ({info['engine']['precision']} products)"
        kernels = info.get("engine", {}).get("openblas")
        if kernels:
            label += f" (OpenBLAS kernel {', '.join(map(str, kernels))})"
        rounds = ", ".join(f"{w:.1f}" for w in info["walls"])
        inner = f"{info['seconds']:.1f}" if np.isfinite(info["seconds"]) else "n/a"
        rss = f"{info['peak_rss_mb']:.0f}" if np.isfinite(info.get("peak_rss_mb", float("nan"))) else "n/a"
        lines.append(
            f"| {label} | {info['wall']:.1f} | {rounds} | {inner} | {speedup} | {info['recall']:.4f} | {rss} |"
        )
    lines += [
        "",
        f"Plain matrix products of the same width (4096 x {args.d} by {args.d} x 4096, best of 5, measured "
        f"in this run): float32 {torch_float32:.0f} GFLOP/s with torch, {numpy_float32:.0f} with numpy (OpenBLAS), "
        f"bfloat16 {reference['bfloat16']:.0f} GFLOP/s (torch). "
        f"Physical limit of the graph (N^2 D / 2 multiply-adds, each pair of rows once, at the faster rate): "
        f"{limit['float32']:.1f} s in float32, {limit['bfloat16']:.1f} s in bfloat16; a flat search (faiss) does "
        f"twice that: {2 * limit['float32']:.1f} s in float32.",
    ]
    for method in ("ours", "ours-float32"):
        if method not in results:
            continue
        engine = results[method].get("engine", {})
        precision = engine.get("precision", "float32")
        lines.append(
            f"- {names[method]}: pools of {engine.get('width', '?')} candidates; rows not certified by them: "
            f"{engine.get('float32_pass', 0)} redone with float32 products, {engine.get('brute_force', 0)} by "
            f"float64 brute force; graph time {results[method]['seconds']:.1f} s against the {precision} limit "
            f"{limit[precision]:.1f} s."
            + (
                " Share of rows a sample predicted uncertified by bfloat16 pools: "
                f"{engine['predicted_uncertified']:.2f}."
                if engine.get("predicted_uncertified") is not None
                else ""
            )
        )
    text = "\n".join(lines)
    print(text)
    if not args.no_doc:
        write_section(text, *MARKERS[args.data])


if __name__ == "__main__":
    main()
