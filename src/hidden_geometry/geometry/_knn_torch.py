"""The torch engine of the exact neighbour graph, used on CUDA devices (and by the tests on CPU).

The same method as the CPU engine (`_knn_cpu`): symmetric blocked float32 products of centred rows, per-row
candidate pools, a float64 re-rank by direct differences, and a certificate per row from the worst-case float32
error, with float64 brute force for the rows it cannot certify. Here the pools are merged with torch operations
(top-k and masked gathers), which run on any device.

The bound assumes IEEE float32 products. CUDA may run float32 products in TF32 (10-bit mantissa) and oneDNN in
bfloat16 (`allow_tf32`, `torch.set_float32_matmul_precision`, `torch.backends.*.matmul.fp32_precision`), and an
active autocast would run them in half precision: `ieee_float32` turns all of these off for the duration of the
graph (the caller's settings are restored) and checks on the device that a product keeps float32's mantissa.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..hardware import ieee_float32, torch_threads

# float32 unit roundoff: the float32 products are trusted only up to a multiple of this.
_U32 = float(np.finfo(np.float32).eps) / 2.0
# Multiply-adds of one tile product above which it is worth waking the other torch threads.
_PARALLEL_MIN_WORK = 1 << 24
# Smallest normal float32 (and bfloat16): below it a product or sum may lose everything (gradual underflow, or
# flush-to-zero in bfloat16 dot-product instructions). Per unit of product width, with room for the rows'
# rounding and the final rounding of the result: with row norms at most 1 this bounds every absolute error.
_TINY32 = float(np.finfo(np.float32).tiny)
# Bytes of float64 differences one step of the re-rank may hold on a GPU (on the CPU: a few rows, kept in cache).
_GPU_RERANK_BYTES = 1 << 30


def _abs_err(width: int) -> float:
    """Absolute error bound of one scaled tile entry from underflow: 2 per product term (the product and the
    sum), 8 per column for the rounding of the rows, 64 for the norms and the final rounding."""
    return (2.0 * width + 8.0 * width + 64.0) * _TINY32


def centred_shift(E: np.ndarray, mean: np.ndarray, chunk: int = 8192) -> int:
    """The exponent e such that every centred row (E - mean) * 2^-e has a norm of at most 1.

    Uses the per-column extremes (one pass, no copy): |E_ij - mean_j| <= c_j, so every row norm is at most
    |c|. Found in float64 after scaling c by its largest entry, so that neither overflows nor underflows."""
    n = E.shape[0]
    top = np.full(E.shape[1], -np.inf)
    bottom = np.full(E.shape[1], np.inf)
    for start in range(0, n, chunk):
        part = E[start : start + chunk]
        top = np.maximum(top, part.max(axis=0))
        bottom = np.minimum(bottom, part.min(axis=0))
    c = np.maximum(np.abs(top - mean), np.abs(bottom - mean))
    if not np.isfinite(c).all():
        raise OverflowError("the centred rows overflow float64")
    c_max = float(c.max())
    if c_max == 0.0:
        return 0
    _, e_max = np.frexp(c_max)  # c_max < 2^e_max
    norm = float(np.sqrt(np.sum(np.ldexp(c, -int(e_max)) ** 2)))  # |c| / 2^e_max, in [0.5, sqrt(D)]
    _, e_norm = np.frexp(norm)
    return int(e_max) + int(e_norm)


def to_given_units(bound: np.ndarray, shift: int) -> np.ndarray:
    """Squared-distance bounds in the scaled units (rows times 2^-shift) back in the units of the rows as given,
    rounded down (ldexp is exact, except in the subnormal range, where the next float below is taken)."""
    out = np.ldexp(bound, 2 * shift)
    return np.nextafter(out, -np.inf, out=out, where=(out != 0.0) & np.isfinite(out))


def _augmented_rows(E: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray, int]:
    """Rows [y, |y|^2, 1, 0...] with y = (E minus its float64 mean) 2^-shift, in float32; |y|^2 in float64; shift.

    shift (see `centred_shift`) makes every row norm at most 1: no product can overflow.

    The product of a row block scaled to [-2y, 1, |y|^2] with these rows is the squared distance, tile by tile
    (see `_row_factor`). The width is padded to a multiple of 16, which keeps the products on the fast kernels.
    """
    n, d = E.shape
    width = d + 2 + (-(d + 2)) % 16
    mean = E.mean(axis=0, dtype=np.float64)
    shift = centred_shift(E, mean)
    out = np.zeros((n, width), dtype=np.float32)
    norms = np.empty(n, dtype=np.float64)
    for start in range(0, n, chunk):
        y = np.ldexp(E[start : start + chunk] - mean, -shift).astype(np.float32)
        out[start : start + chunk, :d] = y
        norms[start : start + chunk] = np.einsum("ij,ij->i", y, y, dtype=np.float64)
    if not (np.isfinite(norms).all() and norms.max() <= 1.0 + 1e-6):
        raise OverflowError("scaled rows out of range for float32 products")  # never: see centred_shift
    out[:, d] = norms.astype(np.float32)
    out[:, d + 1] = 1.0
    return out, norms, shift


def _row_factor(rows: torch.Tensor, d: int) -> torch.Tensor:
    """[-2y, 1, |y|^2, 0...] from augmented rows [y, |y|^2, 1, 0...]."""
    factor = rows.clone()
    factor[:, :d] *= -2.0
    factor[:, d] = rows[:, d + 1]
    factor[:, d + 1] = rows[:, d]
    return factor


def _hit_positions(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(row, column) of the True entries of a 2-D bool mask, row-major, found word by word (8 entries at a time)."""
    rows, cols = mask.shape
    flat = mask.reshape(-1)
    if flat.numel() % 8 or not mask.is_contiguous() or mask.device.type != "cpu":
        r, c = torch.nonzero(mask, as_tuple=True)
        return r, c
    words = torch.nonzero(flat.view(torch.int64)).reshape(-1)
    if words.numel() == 0:
        empty = torch.empty(0, dtype=torch.int64, device=mask.device)
        return empty, empty
    candidates = (words[:, None] * 8 + torch.arange(8, device=mask.device)).reshape(-1)
    hits = candidates[flat[candidates]]
    return hits // cols, hits % cols


class _Pool:
    """Per-row candidate pools (float32 value, local index) of width K, merged tile by tile.

    A block of rows first meets its own diagonal tile, merged with a full top-K. Every later tile is filtered:
    only the entries below a row's current worst candidate are merged (one compare per entry instead of a
    selection), and those become rare as the pools tighten.
    """

    def __init__(self, n: int, width: int, device: torch.device):
        self.vals = torch.full((n, width), math.inf, dtype=torch.float32, device=device)
        self.idx = torch.full((n, width), -1, dtype=torch.int64, device=device)
        self.width = width

    def merge_dense(self, start: int, tile: torch.Tensor, col_offset: int) -> None:
        """Merge the rows of `tile` (pool rows start..) with a full top-K of each row."""
        kk = min(self.width, tile.shape[1])
        v, j = torch.topk(tile, kk, dim=1, largest=False, sorted=False)
        self._merge(start, start + tile.shape[0], v, j + col_offset)

    def merge_filtered(self, start: int, tile: torch.Tensor, col_offset: int, transposed: bool = False) -> None:
        """Merge the entries of `tile` below each row's worst candidate (rows along dim 1 when `transposed`)."""
        n_rows = tile.shape[1] if transposed else tile.shape[0]
        stop = start + n_rows
        bound = self.vals[start:stop].max(dim=1).values
        if transposed:
            c, r = _hit_positions(tile < bound[None, :])
            order = torch.argsort(r, stable=True)
            r, c = r[order], c[order]
            values = tile[c, r]
        else:
            r, c = _hit_positions(tile < bound[:, None])
            values = tile[r, c]
        if r.numel() == 0:
            return
        counts = torch.bincount(r, minlength=n_rows)
        width = int(counts.max())
        first = torch.cumsum(counts, 0) - counts
        pos = torch.arange(r.numel(), device=r.device) - first[r]
        v = torch.full((n_rows, width), math.inf, dtype=tile.dtype, device=tile.device)
        j = torch.full((n_rows, width), -1, dtype=torch.int64, device=tile.device)
        v[r, pos] = values
        j[r, pos] = c + col_offset
        self._merge(start, stop, v, j)

    def _merge(self, start: int, stop: int, v: torch.Tensor, j: torch.Tensor) -> None:
        allv = torch.cat([self.vals[start:stop], v], dim=1)
        allj = torch.cat([self.idx[start:stop], j], dim=1)
        bv, pos = torch.topk(allv, self.width, dim=1, largest=False, sorted=False)
        self.vals[start:stop] = bv
        self.idx[start:stop] = torch.gather(allj, 1, pos)


def _float32_pools(
    A: np.ndarray, d: int, width: int, block: int, device: torch.device, threads: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Float32 candidate pools (values = approximate squared distances, local indices) by symmetric blocked products.

    `threads`: torch threads for the products (the rest runs on the calling thread's setting). The diagonal
    tiles come first, so that every pool is full before any off-diagonal tile and those can all be filtered.
    """
    rows = torch.from_numpy(A).to(device)  # augmented centred rows, see `_augmented_rows`
    n = A.shape[0]
    pool = _Pool(n, width, device)
    factors: dict[int, torch.Tensor] = {}
    buffers: dict[tuple[int, int], torch.Tensor] = {}  # reused tiles: fresh large allocations are slow to fault in

    def product(i0: int, i1: int, j0: int, j1: int) -> torch.Tensor:
        shape = (i1 - i0, j1 - j0)
        if shape not in buffers:
            buffers[shape] = torch.empty(shape, dtype=torch.float32, device=device)
        # Small products finish before extra threads would even wake up.
        if i0 not in factors:
            factors.clear()  # one row block at a time: the loops below go block row by block row
            factors[i0] = _row_factor(rows[i0:i1], d)
        product_threads = threads if shape[0] * shape[1] * rows.shape[1] >= _PARALLEL_MIN_WORK else 1
        with torch_threads(product_threads):
            return torch.mm(factors[i0], rows[j0:j1].T, out=buffers[shape])

    starts = list(range(0, n, block))
    for i0 in starts:
        i1 = min(i0 + block, n)
        tile = product(i0, i1, i0, i1)
        # Self is excluded by index; the diagonal tile is symmetric, so its rows cover all its pairs.
        tile.fill_diagonal_(math.inf)
        pool.merge_dense(i0, tile, i0)
    for bi, i0 in enumerate(starts):
        i1 = min(i0 + block, n)
        for j0 in starts[bi + 1 :]:
            j1 = min(j0 + block, n)
            tile = product(i0, i1, j0, j1)
            pool.merge_filtered(i0, tile, j0)
            pool.merge_filtered(j0, tile, i0, transposed=True)
    return pool.vals.cpu().numpy(), pool.idx.cpu().numpy()


def _pair_distances(E: torch.Tensor, a: torch.Tensor, b: torch.Tensor, chunk: int = 4) -> torch.Tensor:
    """Euclidean distances between E[a[i]] and E[b[i, j]] from direct float64 differences -> float64 [len(a), width]
    on E's device.

    Rows are gathered `chunk` rows of `a` at a time into reused buffers: a few on the CPU (they stay in cache; fresh
    large buffers are slow), up to `_GPU_RERANK_BYTES` of differences on a GPU (`_exact_rerank`).
    """
    n, width = b.shape
    a, b = a.to(E.device), b.to(E.device)
    out = torch.empty((n, width), dtype=torch.float64, device=E.device)
    chunk = max(1, min(chunk, n))
    gathered = torch.empty((chunk * width, E.shape[1]), dtype=E.dtype, device=E.device)
    wide = gathered if E.dtype == torch.float64 else torch.empty_like(gathered, dtype=torch.float64)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        m = (stop - start) * width
        torch.index_select(E, 0, b[start:stop].reshape(-1), out=gathered[:m])
        if wide is not gathered:
            wide[:m].copy_(gathered[:m])
        diff = wide[:m].view(stop - start, width, E.shape[1])
        # float32 values become exact float64 values, so these differences carry no cancellation error.
        diff.sub_(E[a[start:stop]].to(torch.float64)[:, None, :])
        out[start:stop] = torch.linalg.vector_norm(diff, dim=2)
    return out


def _pool_distances(
    E: torch.Tensor, pool_idx: np.ndarray, block: int = 512, chunk: int = 256
) -> np.ndarray:
    """Euclidean distances (float64, direct differences) from each row i of E to the rows pool_idx[i].

    Each unordered pair is computed once (neighbour relations are often mutual), and the pairs are taken block
    pair by block pair, so that both rows of a pair come from two small blocks held in cache instead of from
    anywhere in memory.
    """
    n, width = pool_idx.shape
    i = np.repeat(np.arange(n, dtype=np.int64), width)
    j = pool_idx.reshape(-1).astype(np.int64)
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    del i, j
    n_blocks = (n + block - 1) // block
    # One integer per pair that sorts by (block of lo, block of hi), then by position: pairs of a block pair
    # end up together, and np.unique both removes the mirrored copies and groups them.
    code = ((lo // block) * n_blocks + hi // block) * (block * block) + (lo % block) * block + hi % block
    del lo, hi
    pairs, inverse = np.unique(code, return_inverse=True)
    del code
    group = pairs // (block * block)
    local = pairs % (block * block)
    lo_idx = torch.from_numpy(local // block + (group // n_blocks) * block)
    hi_idx = torch.from_numpy(local % block + (group % n_blocks) * block)
    lo_block = group // n_blocks
    dist = torch.empty(pairs.size, dtype=torch.float64)
    # Work items: the pairs of one block of lo rows (its float64 copy is made once and stays in cache).
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(lo_block)) + 1, [pairs.size]])

    with torch_threads(1):
        for start, stop in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
            bi = int(lo_block[start])
            lo_rows = E[bi * block : (bi + 1) * block].to(torch.float64)
            for s0 in range(start, stop, chunk):
                s1 = min(s0 + chunk, stop)
                diff = torch.index_select(lo_rows, 0, lo_idx[s0:s1] - bi * block)
                # float32 values become exact float64 values: the difference carries no cancellation error.
                diff.sub_(torch.index_select(E, 0, hi_idx[s0:s1]).to(torch.float64))
                dist[s0:s1] = torch.linalg.vector_norm(diff, dim=1)
    return dist.numpy()[inverse].reshape(n, width)


def _rank(cand: np.ndarray, dist: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the k candidates with the smallest distance, ties by index."""
    order = np.lexsort((cand, dist), axis=-1)[:, :k]
    return np.take_along_axis(cand, order, axis=1), np.take_along_axis(dist, order, axis=1)


def _brute_force_rows(E: torch.Tensor, queries: np.ndarray, k: int, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest (local indices, distances) of E[queries] among all rows of E, in float64."""
    n = E.shape[0]
    out_idx = np.empty((queries.shape[0], k), dtype=np.int64)
    out_dist = np.empty((queries.shape[0], k), dtype=np.float64)
    for qi, q in enumerate(queries):
        dist = np.empty(n, dtype=np.float64)
        for start in range(0, n, chunk):
            cols = torch.arange(start, min(start + chunk, n))
            part = _pair_distances(E, torch.tensor([int(q)]), cols[None, :], 1)[0]
            dist[start : start + cols.numel()] = part.cpu().numpy()
        dist[q] = np.inf
        kth = np.partition(dist, k - 1)[k - 1]
        cand = np.flatnonzero(dist <= kth)
        idx, d = _rank(cand[None, :], dist[cand][None, :], k)
        out_idx[qi], out_dist[qi] = idx[0], d[0]
    return out_idx, out_dist


def _exact_rerank(
    E: torch.Tensor, pool_vals: np.ndarray, pool_idx: np.ndarray, k: int, norms: np.ndarray, shift: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Re-rank the pools in float64; return local indices, distances and the rows that need brute force.

    Empty slots (-1) and the row itself (a diagonal tile narrower than the pool holds it, at +inf) are
    dropped: their distance is +inf and their index -1, so a row left with fewer than k is redone."""
    n, width = pool_idx.shape
    own = np.arange(n, dtype=np.int64)[:, None]
    empty = (pool_idx < 0) | (pool_idx == own)
    pool_idx = np.where(empty, -1, pool_idx)
    pairs = np.where(empty, own, pool_idx)  # an empty slot as the row itself: a valid index, set to +inf below
    if E.device.type == "cpu":
        exact = _pool_distances(E, pairs)
    else:  # every (row, candidate) pair at once, rows in large chunks: the GPU is not cache-bound like the CPU
        chunk = max(1, _GPU_RERANK_BYTES // (8 * width * E.shape[1]))
        exact = _pair_distances(E, torch.arange(n), torch.from_numpy(pairs), chunk).cpu().numpy()
    exact[empty] = np.inf
    idx, dist = _rank(pool_idx, exact, k)
    # Worst-case float32 error of one product entry (any summation order), with room for the centring rounding:
    # a point outside the pool has a float32 value >= the pool's largest, so its true squared distance is at
    # least that minus `tol`; if this still exceeds the k-th exact one, nothing closer can be missing.
    tol = (2.0 * (E.shape[1] + 2) + 16.0) * _U32 * (norms + norms.max()) * (1.0 + 1e-9)
    tol += _abs_err(E.shape[1] + 2 + 16)
    boundary = pool_vals.max(axis=1).astype(np.float64)
    # In the products' scaled units (rows times 2^-shift), converted back rounded down.
    certified = to_given_units(boundary - tol, shift) > dist[:, k - 1] ** 2 * (1.0 + 1e-10)
    certified &= np.isfinite(dist[:, k - 1])
    if width >= n - 1:  # the pool holds every other point: nothing can be missing
        certified |= (pool_idx >= 0).sum(axis=1) >= n - 1
    return idx, dist, np.flatnonzero(~certified)


def torch_graph(
    E: np.ndarray, k: int, width: int, block: int, device: torch.device, threads: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest (local indices, float64 squared distances) of every row of E, products on `device`."""
    with torch_threads(1), ieee_float32(device):
        A, norms, shift = _augmented_rows(E)
        pool_vals, pool_idx = _float32_pools(A, E.shape[1], width, block, device, threads)
        del A
        Et = torch.from_numpy(np.ascontiguousarray(E)).to(device)
        local_idx, dist, unsure = _exact_rerank(Et, pool_vals, pool_idx, k, norms, shift)
        if unsure.size:
            local_idx[unsure], dist[unsure] = _brute_force_rows(Et, unsure, k)
    return local_idx, dist**2
