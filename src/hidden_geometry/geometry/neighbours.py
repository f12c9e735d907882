"""Exact k-nearest-neighbour graphs of one representation (N x D rows), the input of every layer measure.

How the graph is made exact and fast (the CPU engine is `_knn_cpu`, the torch engine for CUDA `_knn_torch`):
- The rows are centred (in float64) before any low-precision product: a large common offset (the outlier
  dimensions of real models) would otherwise swamp the mantissa and scramble the neighbours. They are then
  multiplied by a power of two (exact) so that every row norm is at most 1: the products can neither overflow
  nor lose the bound to underflow, at any finite magnitude of the input.
- float64 input far from 1 (largest magnitude outside 2^-300 .. 2^300) is multiplied by a power of two before
  anything else, so that its float64 squared distances neither overflow nor underflow; the distances are
  scaled back exactly. Where that scaling would lose a digit (values spanning more than float64's range),
  the graph is refused with an InputError instead of being wrong.
- Squared distances come from one matrix product per pair of row blocks, with the norms folded into extra
  columns, so each tile is ``|a|^2 + |b|^2 - 2 a.b`` straight from the product. The distance matrix is
  symmetric: each pair of blocks (I <= J) is computed once and updates the neighbour lists of both sides, half
  the multiply-adds of a flat search.
- Each row keeps a pool of ``k + pool`` candidates ranked by a certified lower bound of their squared distance
  (the product's value minus its worst-case error). The pool is re-ranked with distances recomputed in float64
  from the original rows (direct differences), ties broken by row index. A row whose k-th exact distance is not
  below the bound of everything outside its pool is redone (float32 products against all rows, then float64
  brute force), so rounding can never drop a true neighbour.
- On CPU the products are bfloat16 where this machine runs them much faster than float32 (`precision="auto"`),
  float32 otherwise; the answer is the same either way, only the time changes.
- Identical rows are found by hashing their bytes and comparing exactly; the copies after the first are removed
  and counted. The point itself is dropped by index, never by distance.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from ..errors import InputError
from ..graph import METRICS, NeighbourGraph, check_k  # noqa: F401 - the graph as data; re-exported here
from ..io import load_graph, save_graph  # noqa: F401 - the graph's file; re-exported here
from . import _knn_cpu, _knn_lowdim, _knn_torch

PRECISIONS = ("auto", "float32", "bfloat16")
# Below this many points "auto" stays with float32 products: the graph takes about a second either way, and
# the bfloat16 pools would need the wider margin for no gain.
_BF16_MIN_POINTS = 8192


def validate_representation(X: Any, name: str = "representation", keep: np.ndarray | None = None) -> np.ndarray:
    """Return `X` as a float32/float64 2-D array with at least one column, or raise InputError naming the problem.

    keep: check only the rows of this boolean mask for NaN and inf (rows left out are never used); default all.
    """
    arr = np.asarray(X)
    if arr.ndim != 2:
        raise InputError(f"{name}: expected a 2-D array (points x features), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(f"{name}: empty array of shape {arr.shape}")
    if arr.dtype.kind not in "fiub":
        raise InputError(f"{name}: expected numbers, got dtype {arr.dtype}")
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    rows = None if keep is None else _kept_rows(arr.shape[0], keep)
    checked = arr if rows is None else arr[rows]
    finite = np.isfinite(checked).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite) if rows is None else np.asarray(rows)[~finite]
        shown = ", ".join(str(int(i)) for i in bad[:5])
        raise InputError(
            f"{name}: {bad.size} row(s) contain NaN or inf (rows {shown}{', ...' if bad.size > 5 else ''})"
        )
    return arr


def find_duplicates(X: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Keep-mask: True for the first occurrence of each distinct row, False for its later exact copies.

    Rows are grouped by a 64-bit hash of their bytes (computed for all rows at once: a multiply-and-add of their
    64-bit words with fixed odd constants, wrapping) and compared exactly within a group (-0.0 equals 0.0), so a
    hash collision costs a comparison, never a wrong answer.
    """
    arr = np.ascontiguousarray(X)
    if arr.ndim != 2:
        raise InputError(f"find_duplicates: expected a 2-D array, got shape {arr.shape}")
    n = arr.shape[0]
    keep = np.ones(n, dtype=bool)
    if n < 2:
        return keep
    hashes = _row_hashes(arr, chunk)
    order = np.argsort(hashes, kind="stable")  # equal hashes stay in row order: the first copy comes first
    ordered = hashes[order]
    same = ordered[1:] == ordered[:-1]
    if not same.any():
        return keep
    # Runs of equal hashes: compare exactly, in row order, against the distinct rows met so far in the run.
    starts = np.flatnonzero(np.diff(np.concatenate(([False], same, [False])).astype(np.int8)) == 1)
    for s in starts:
        e = s + 1
        while e < n and ordered[e] == ordered[s]:
            e += 1
        distinct: list[int] = []
        for i in order[s:e].tolist():
            if any(np.array_equal(arr[j], arr[i]) for j in distinct):
                keep[i] = False
            else:
                distinct.append(i)
    return keep


def _row_hashes(arr: np.ndarray, chunk: int) -> np.ndarray:
    """A uint64 hash per row of its bytes, with -0.0 read as 0.0 in float rows (equal rows, equal hashes)."""
    n = arr.shape[0]
    width = arr.dtype.itemsize * arr.shape[1]
    words = -(-width // 8)
    odd = np.random.default_rng(0x5EED).integers(0, 2**63, size=words, dtype=np.uint64)
    constants = odd * np.uint64(2) + np.uint64(1)
    out = np.empty(n, dtype=np.uint64)
    padded = np.zeros((min(chunk, n), words * 8), dtype=np.uint8)
    for start in range(0, n, chunk):
        part = arr[start : start + chunk]
        if arr.dtype.kind == "f":
            part = part + arr.dtype.type(0.0)  # -0.0 + 0.0 = 0.0: signed zeros hash alike
        rows = part.shape[0]
        if width % 8 == 0:
            as_words = np.ascontiguousarray(part).view(np.uint64).reshape(rows, words)
        else:
            padded[:rows, :width] = np.ascontiguousarray(part).view(np.uint8).reshape(rows, width)
            as_words = padded[:rows].view(np.uint64)
        mixed = as_words * constants  # odd constants, wrapping modulo 2^64
        mixed ^= mixed >> np.uint64(29)
        out[start : start + rows] = mixed.sum(axis=1, dtype=np.uint64)
    return out


def shared_keep_mask(layers: list[np.ndarray], keep: np.ndarray | None = None) -> np.ndarray:
    """A keep-mask that drops a row wherever it duplicates an earlier row in ANY layer (same inputs in every layer)."""
    mask = None if keep is None else np.asarray(keep, dtype=bool).copy()
    for X in layers:
        layer_mask = np.ones(X.shape[0], dtype=bool)
        rows = np.arange(X.shape[0]) if mask is None else np.flatnonzero(mask)
        layer_mask[rows] = find_duplicates(np.asarray(X)[rows])
        mask = layer_mask if mask is None else (mask & layer_mask)
    if mask is None:
        raise InputError("shared_keep_mask: no layers given")
    return mask


def _resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _kept_rows(n: int, keep: np.ndarray | None) -> np.ndarray:
    if keep is None:
        return np.arange(n, dtype=np.int64)
    mask = np.asarray(keep)
    if mask.dtype != bool or mask.shape != (n,):
        raise InputError(f"keep must be a boolean mask of length {n}, got dtype {mask.dtype} and shape {mask.shape}")
    return np.flatnonzero(mask).astype(np.int64)


# float64 rows whose largest magnitude lies outside [2^-_F64_SAFE, 2^_F64_SAFE] are scaled by a power of two
# first: inside, squared distances (up to 4 D 2^600) cannot overflow float64.
_F64_SAFE = 300


def _float64_shift(E: np.ndarray) -> int:
    """The exponent e by which float64 rows are divided (2^e, exact) before the graph: 0 unless their largest
    magnitude is outside [2^-300, 2^300]; then the largest becomes about 1. Raises InputError where the scaling
    would lose a digit (a value that would fall below float64's normal range)."""
    if E.dtype != np.float64:
        return 0  # float32 values: float64 squares of their differences always fit
    top = float(np.max(np.abs(E)))
    if top == 0.0:
        return 0
    _, e = np.frexp(top)
    if -_F64_SAFE <= e <= _F64_SAFE:
        return 0
    nonzero = np.abs(E[E != 0])
    if e > 0 and float(nonzero.min()) < np.ldexp(np.finfo(np.float64).tiny, int(e)):
        raise InputError(
            f"representation: values from {float(nonzero.min()):.3g} to {top:.3g} span more than float64 can hold "
            "once squared; rescale the data"
        )
    return int(e)


def _exact_rows(X: np.ndarray, rows: np.ndarray, metric: str, chunk: int = 4096) -> np.ndarray:
    """The rows as the metric sees them: as given for Euclidean, unit rows in float64 for cosine."""
    if metric == "euclidean":
        return X if rows.size == X.shape[0] else X[rows]
    out = np.empty((rows.shape[0], X.shape[1]), dtype=np.float64)
    for start in range(0, rows.shape[0], chunk):
        part = X[rows[start : start + chunk]].astype(np.float64)
        if metric == "cosine":
            # Each row divided by a power of two near its largest entry first (exact), so that the squares of
            # 1e-200 or 1e200 neither underflow nor overflow.
            _, exps = np.frexp(np.abs(part).max(axis=1))
            part = np.ldexp(part, -exps[:, None])
            norms = np.sqrt(np.einsum("ij,ij->i", part, part))
            if np.any(norms == 0):
                bad = rows[start + int(np.flatnonzero(norms == 0)[0])]
                raise InputError(f"row {bad} is all zeros: its cosine distance is undefined")
            part /= norms[:, None]
        out[start : start + chunk] = part
    return out


def default_pool(k: int, precision: str = "float32") -> int:
    """Extra candidates kept beyond k before the float64 re-rank (wider for the coarser bfloat16 bound)."""
    return _knn_cpu.default_pool(k, precision)


def default_block_size(n: int, device: torch.device) -> int:
    """Rows per block: large enough for efficient products, small enough for a few tiles in memory."""
    # 4096 on CPU: a quarter of the tiles of 2048 and so a quarter of the per-tile selection passes; the tile
    # buffer (32 MB in bfloat16, 64 MB in float32) is reused.
    return 8192 if device.type == "cuda" else 4096


def resolve_precision(precision: str, n: int, device: torch.device) -> str:
    """The products' precision: float32 on CUDA; on CPU "auto" picks bfloat16 ("auto-bfloat16": checked
    again on a sample of the data) for large inputs where this CPU multiplies bfloat16 in hardware
    (`_knn_cpu.bf16_products_are_fast`: the CPU's flags, and a small product keeping the bound's model)."""
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if device.type != "cpu":
        return "float32"
    if precision == "auto":
        # "auto-bfloat16": the engine still checks on a sample that bfloat16 pools will certify most rows.
        return "auto-bfloat16" if n >= _BF16_MIN_POINTS and _knn_cpu.bf16_products_are_fast() else "float32"
    if precision == "bfloat16" and not _knn_cpu.bf16_accumulation_is_float32():
        raise InputError(
            "precision='bfloat16': this CPU's bfloat16 matrix product does not sum in float32, so the graph's "
            "error bound does not hold; use precision='float32' or 'auto'"
        )
    return precision


def knn_graph(
    X: np.ndarray,
    k: int,
    metric: str = "euclidean",
    keep: np.ndarray | None = None,
    block_size: int | None = None,
    device: str | torch.device | None = None,
    seed: int = 0,
    pool: int | None = None,
    precision: str = "auto",
) -> NeighbourGraph:
    """Exact k-nearest-neighbour graph of the rows of `X` (see the module docstring for the method).

    keep: optional boolean mask over the rows; rows outside it are ignored (they may even hold NaN: use it to
    keep the same inputs in every layer). Exact duplicate rows among the kept rows are removed (the first copy
    stays) and counted.
    pool: extra candidates per row beyond k (default `default_pool`); precision: "auto", "float32" or
    "bfloat16" products on CPU (the result is identical, see the module docstring).
    seed: accepted for interface symmetry; the graph is deterministic and uses no randomness.
    """
    del seed  # deterministic: no random choices are made
    if metric not in METRICS:
        raise InputError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    dev = _resolve_device(device)
    if dev.type == "cpu" and isinstance(X, np.ndarray) and X.ndim == 2 and X.shape[1] > _knn_lowdim.LOW_DIM:
        # Before the checks, so that loading the compiled kernels overlaps them (a wrong guess of the rows' dtype
        # costs time only: the right kernels then load at their first call).
        _knn_cpu.load_kernels_in_background(X.dtype if metric == "euclidean" else np.float64)
    X = validate_representation(X, keep=keep)
    if isinstance(k, bool) or int(k) != k or k < 1:
        raise InputError(f"k must be a positive integer, got {k!r}")
    k = int(k)
    candidates = _kept_rows(X.shape[0], keep)
    E_all = _exact_rows(X, candidates, metric)
    shift = _float64_shift(E_all)
    if shift:
        E_all = np.ldexp(E_all, -shift)  # exact (checked by _float64_shift); distances scaled back below
    order = None
    if dev.type == "cpu" and E_all.shape[1] > _knn_lowdim.LOW_DIM:  # the CPU engine's tiles
        # The duplicates are found on a second thread while the engine's locality order of all kept rows is
        # computed here (both mostly outside the GIL); the order is used where no row turns out to be a copy.
        n_all = E_all.shape[0]
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="find-duplicates") as helper:
            found = helper.submit(find_duplicates, E_all)
            order = _knn_cpu.graph_order(E_all, int(block_size) if block_size else default_block_size(n_all, dev))
            unique = found.result()
        if not unique.all():
            order = None
    else:
        unique = find_duplicates(E_all)
    rows = candidates[unique]
    E = E_all if unique.all() else E_all[unique]
    n_duplicates = int(candidates.size - rows.size)
    n = rows.size
    if n < k + 1:
        raise InputError(
            f"need at least k + 1 = {k + 1} distinct points for k={k} neighbours, got {n}"
            + (f" ({n_duplicates} duplicate rows removed)" if n_duplicates else "")
        )
    chosen = resolve_precision(precision, n, dev)
    block = int(block_size) if block_size else default_block_size(n, dev)
    extra = int(pool) if pool is not None else None
    width = min(k + (default_pool(k, chosen) if extra is None else extra), n - 1)
    threads = torch.get_num_threads()  # the caller's setting
    try:
        if dev.type == "cpu":
            fallback_width = min(k + (default_pool(k, "float32") if extra is None else extra), n - 1)
            if E.shape[1] <= _knn_lowdim.LOW_DIM:  # float products certify little here: a float64 k-d tree
                local_idx, sq = _knn_lowdim.tree_graph(E, k, threads)
            else:
                local_idx, sq, _ = _knn_cpu.cpu_graph(E, k, width, block, threads, chosen, fallback_width, order)
        else:
            local_idx, sq = _knn_torch.torch_graph(E, k, width, block, dev, threads)
    except OverflowError as exc:  # never expected after the scaling above; refused rather than wrong
        raise InputError(f"representation: values out of range for the neighbour graph ({exc})") from exc
    # Cosine distance 1 - cos(a, b) equals half the squared distance between the unit rows. In place: the engine's
    # arrays are the graph's own (at N = 30,000, k = 100 each new array is 24 MB of fresh pages).
    if metric == "cosine":
        distances = np.multiply(sq, 0.5, out=sq)
    else:
        distances = np.ldexp(np.sqrt(sq, out=sq), shift, out=sq)
    every_row = rows.size == X.shape[0]  # then rows is 0, 1, ..., N - 1 and a row's name is its number
    return NeighbourGraph(
        rows=rows,
        indices=local_idx if every_row else rows[local_idx],
        distances=distances,
        n_duplicates=n_duplicates,
        k=k,
        metric=metric,
        n_input=int(X.shape[0]),
    )
