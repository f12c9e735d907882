"""The CPU engine of the exact neighbour graph: symmetric blocked products, certified candidate pools, exact re-rank.

How a row's k nearest neighbours are made exact, whatever the precision of the products:
1. Approximate squared distances come from one matrix product per pair of row blocks (each unordered pair of
   blocks once, both sides updated). Every approximate value `t` is turned into a LOWER BOUND of the true squared
   distance, `t - err`, with `err` a worst-case (not typical) bound of everything that separates `t` from the
   exact value: rounding the rows to the product's precision, the float32 accumulation, rounding the result,
   the norms and the centring.
2. Each row keeps the `width` smallest lower bounds (a max-heap, `_knn_kernels`). Whatever is outside the pool
   has a lower bound at least the heap top `b`. The threads share each diagonal tile's fill by rows
   (`_Workers`), or the tiles are pipelined: every thread multiplies tiles, and the selections from them run
   one at a time, in order (`_pipelined_pools`). Every heap receives its entries in the same order as
   from one thread, so the pools do not depend on the number of threads.
3. The pool is re-ranked with squared distances computed in float64 from the original rows (direct differences),
   ties broken by index. If `b` exceeds the k-th exact squared distance, nothing outside the pool can be as near,
   and the row is certified. Rows that are not certified are redone with float32 products against all rows, and
   what remains after that by float64 brute force.
So the precision of the products changes the speed, never the answer: every path gives the same indices and the
same float64 distances.

Before the tiles, the rows are put in k-means order (`locality_order`) on a reordered copy: the diagonal tiles
then fill the pools with near-final candidates and later tiles rarely beat them, and the re-rank reads rows
that sit near each other. Ties are broken by the original row number, so the order never shows in the result.

Every magnitude: the centred rows are multiplied by a power of two (`centred_shift`) so that every row norm is
at most 1 before the low-precision products. Scaling by a power of two is exact, and it keeps every product
and sum far from float32's overflow; what underflows (values below 2^-126 times the largest row norm) is
covered by an absolute term of the bound (`_ABS_ERR`), which also covers CPUs that flush subnormals to zero.
The bounds are in these scaled units, and are converted back (exactly, rounded down) before the certificate
compares them with the float64 distances of the rows as given.

bfloat16 products (8 significant bits, float32 accumulation) run at about 2.5 times the float32 rate on CPUs with
AVX512-BF16 or AMX. Their error bound is about 1% of the squared norms, so the pools are wider (k + k/2 by
default). `bf16_products_are_fast` decides per machine (from the CPU's flags, `hardware`) and checks that
its matrix product keeps the accumulation model that the bound assumes; `predicted_uncertified` decides per data
set, on a sample, whether such pools will certify enough rows to pay (clustered, low-dimensional data do;
isotropic noise does not).
"""

from __future__ import annotations

import contextlib
import functools
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from .. import hardware
from ..hardware import ieee_float32, torch_threads
from ._knn_torch import _abs_err, centred_shift, to_given_units


class _LazyKernels:
    """The compiled kernels (`_knn_kernels`), imported on first use: importing numba costs about 0.3 s, which then
    runs on the background loader thread (`load_kernels_in_background`) beside the input checks instead of in
    front of everything in each process."""

    def __getattr__(self, name: str):
        from . import _knn_kernels

        return getattr(_knn_kernels, name)


kernels = _LazyKernels()

# Unit roundoffs: float32 and bfloat16 (round to nearest).
_U32 = float(np.finfo(np.float32).eps) / 2.0
_U16 = 2.0**-8  # = _knn_kernels.BF16_U (tested); written out so that importing this module does not import numba
# Relative slack on every computed bound, for the float64 rounding of the bound arithmetic itself.
_SLACK = 1e-9
# Relative slack when comparing a certified bound with a float64 distance computed by summation.
_DIST_SLACK = 1e-10


def _width_multiple(d: int, extra: int, multiple: int) -> int:
    return d + extra + (-(d + extra)) % multiple


def _centring_err(norms_a: np.ndarray, norms_b_max: float) -> np.ndarray:
    """Bound on |d_y^2 - d_E^2|: y is E - mean rounded to float32 (u|y| per row), so the squared distance moves
    by at most about 2u(|y_a| + |y_b|)^2 <= 4u(|y_a|^2 + |y_b|^2); 5u leaves room."""
    return 5.0 * _U32 * (norms_a + norms_b_max)


class _Float32Products:
    """Tiles of approximate squared distances from float32 products of augmented centred rows.

    Rows [y, |y|^2, 1, 0...] against factors [-2y, 1, |y|^2, 0...]: each tile entry is |a|^2 + |b|^2 - 2 a.b
    straight from one product. The error bound is the worst case of any float32 summation order.
    lazy: build each block of augmented rows when asked (the pass over a few query rows needs every block once;
    it saves holding a second copy of all rows); otherwise all are built once up front.
    """

    tile_dtype = torch.float32
    # a tile value is the float32 result itself: the pools' lower bounds are value - err, nothing more (`pool_bounds`)
    value_rel, value_tiny = 0.0, 0.0

    def __init__(self, E: np.ndarray, lazy: bool = False, chunk: int = 4096, threads: int = 1):
        n, d = E.shape
        self.E, self.d, self.n = E, d, n
        self.width = _width_multiple(d, 2, 16)
        self.mean = E.mean(axis=0, dtype=np.float64)
        self.shift = centred_shift(E, self.mean)
        self.norms = np.empty(n, dtype=np.float64)
        self.rows = None if lazy else torch.empty((n, self.width), dtype=torch.float32)

        def build(start: int) -> None:
            stop = min(start + chunk, n)
            out = None if self.rows is None else self.rows[start:stop]
            self.norms[start:stop] = self._augmented(start, stop, out=out)[1]

        # numpy releases the GIL in each step: the chunks on `threads` threads (about 1.1 s on one at N = 30,000,
        # D = 1,280 on an AMD EPYC)
        starts = range(0, n, chunk)
        if threads > 1 and n > chunk:
            with ThreadPoolExecutor(max_workers=threads) as pool:
                list(pool.map(build, starts))
        else:
            for start in starts:
                build(start)
        if not (np.isfinite(self.norms).all() and self.norms.max() <= 1.0 + 1e-6):
            raise OverflowError("scaled rows out of range for float32 products")  # never: see centred_shift
        # Where the pipelined tiles are multiplied (`hardware.float32_products_library`): the bound below holds
        # for any IEEE float32 summation order, so either library gives the same pools.
        self.library = hardware.float32_products_library()
        # Worst-case float32 error of one entry (2(D+2) roundings of terms up to |a|^2 + |b|^2), plus the
        # rounding of the norms and the centring.
        self._c = (2.0 * (d + 2) + 16.0) * _U32
        self._abs = _abs_err(self.width)

    def _augmented(self, start: int, stop: int, rows: np.ndarray | None = None,
                   out: torch.Tensor | None = None) -> tuple[torch.Tensor, np.ndarray]:
        """[y, |y|^2, 1, 0...] for rows start..stop (or the given row numbers), y = (E - mean) 2^-shift rounded
        to float32 (centred first: a large common offset would swamp the float32 mantissa; scaled so that every
        row norm is at most 1); and |y|^2 in float64. Written into `out` where given.

        The scaling by 2^-shift is exact (a multiplication by a power of two, correctly rounded where a result is
        subnormal, as ldexp), and the float32 rounding is the one rounding of each coordinate."""
        part = np.subtract(self.E[start:stop] if rows is None else self.E[rows], self.mean, dtype=np.float64)
        if -1000 <= self.shift <= 1000:  # 2^-shift is a normal float64
            np.multiply(part, 2.0**-self.shift, out=part)
        else:
            np.ldexp(part, -self.shift, out=part)
        if out is None:
            out = torch.empty((part.shape[0], self.width), dtype=torch.float32)
        view = out.numpy()
        view[:, : self.d] = part  # rounded to float32, as astype
        y = view[:, : self.d]
        norms = np.einsum("ij,ij->i", y, y, dtype=np.float64)
        view[:, self.d] = norms
        view[:, self.d + 1] = 1.0
        view[:, self.d + 2 :] = 0.0
        return out, norms

    def columns(self, start: int, stop: int) -> torch.Tensor:
        return self.rows[start:stop] if self.rows is not None else self._augmented(start, stop)[0]

    def factor(self, start: int, stop: int) -> torch.Tensor:
        """[-2y, 1, |y|^2, 0...] for rows start..stop."""
        return self._as_factor(self.columns(start, stop).clone())

    def factor_of_rows(self, rows: np.ndarray) -> torch.Tensor:
        """[-2y, 1, |y|^2, 0...] for the given row numbers."""
        return self._as_factor(self._augmented(0, 0, rows)[0])

    def _as_factor(self, aug: torch.Tensor) -> torch.Tensor:
        """Augmented rows [y, |y|^2, 1, 0...] turned, in place, into factors [-2y, 1, |y|^2, 0...]."""
        d = self.d
        aug[:, :d] *= -2.0
        norms = aug[:, d].clone()
        aug[:, d] = 1.0
        aug[:, d + 1] = norms
        return aug

    def err(self, rows: slice | np.ndarray, other: slice) -> np.ndarray:
        """Error bound of the entries between each of `rows` and any row of `other`."""
        nmax = float(self.norms[other].max())
        bound = self._c * (self.norms[rows] + nmax) + _centring_err(self.norms[rows], nmax) + self._abs
        return bound * (1.0 + _SLACK)

    def check(self, tile, row0, err_row) -> None:
        """Nothing to check: the float32 bound assumes no more than IEEE float32 arithmetic."""

    def fill(self, tile, vals, idx, row0, err_row, lo, hi) -> None:
        kernels.fill_from_diagonal_f32(tile.numpy(), vals, idx, row0, err_row, lo, hi)

    def select(self, tile, vals, idx, row0, col0, err_row, err_col, rows, cols) -> None:
        kernels.select_tile(tile.numpy(), None, vals, idx, row0, col0, err_row, err_col, 1.0, *rows, *cols)


class _Bfloat16Products:
    """Tiles of approximate squared distances from bfloat16 products (float32 accumulation, bfloat16 result).

    Factors [-2ŷ, h1, h2, h3, 1, 1, 1, 0...] against rows [ŷ, 1, 1, 1, h1, h2, h3, 0...], with ŷ the centred
    rows y rounded to bfloat16 and h1 + h2 + h3 a three-piece bfloat16 split of |y|^2 (24 significant bits):
    each entry is |a|^2 + |b|^2 - 2 ŷa.ŷb, rounded once to bfloat16 at the end. The bound of an entry between
    rows a and b:
    - rounding of the rows: y_a.y_b - ŷa.ŷb = r_a.y_b + ŷa.r_b with r = y - ŷ (exact), so at most
      2(|r_a||y_b| + |ŷa||r_b|) on the squared distance (Cauchy-Schwarz);
    - float32 accumulation of K exact products: gamma_K (|y_a|^2 + |y_b|^2 + 2|ŷa||ŷb|);
    - the split of the norms (measured per row) and the centring;
    - the final bfloat16 rounding, relative to the entry itself: applied by the kernel's lookup table.
    """

    tile_dtype = torch.bfloat16
    # a pool's lower bound starts from the lower end of the tile value's bfloat16 rounding interval: the value lies
    # within 2.02 u / (1 - u) of its magnitude above it (the table's own rounding included), plus the subnormal
    # spacing (`pool_bounds`)
    value_rel, value_tiny = 2.02 * _U16 / (1.0 - _U16), 2.0**-131

    def __init__(self, E: np.ndarray, threads: int, at: np.ndarray | None = None):
        """Rows E[at[0]], E[at[1]], ... (at: a permutation of E's rows, default their order), so that a locality
        order needs no reordered copy of E."""
        n, d = E.shape
        at = _row_order(at, n)
        width = _width_multiple(d, 6, 32)
        mean = E.mean(axis=0, dtype=np.float64)
        self.shift = centred_shift(E, mean)
        bits = np.zeros((n, width), dtype=np.uint16)
        self.norms = np.empty(n)
        self.r_norm = np.empty(n)
        self.yb_norm = np.empty(n)
        self.values = kernels.bf16_value_table()
        _split_rows(
            kernels.centre_and_round_bf16,
            lambda lo, hi: (E, at, mean, self.shift, self.values, bits, self.norms, self.r_norm, self.yb_norm, lo,
                            hi),
            n,
            threads,
        )
        if not (np.isfinite(self.yb_norm).all() and np.isfinite(self.norms).all() and self.norms.max() <= 1.0 + 1e-6):
            raise OverflowError("scaled rows out of range for bfloat16 products")  # never: see centred_shift
        self.y_norm = np.sqrt(self.norms)
        with torch_threads(1):  # small element-wise work: a second thread costs more than it gains
            n64 = torch.from_numpy(self.norms)
            h1 = n64.to(torch.bfloat16)
            rest = n64 - h1.to(torch.float64)
            h2 = rest.to(torch.bfloat16)
            rest = rest - h2.to(torch.float64)
            h3 = rest.to(torch.bfloat16)
            split = h1.to(torch.float64) + h2.to(torch.float64) + h3.to(torch.float64)
            self.split_err = (n64 - split).abs().numpy()
            rows = torch.from_numpy(bits.view(np.int16)).view(torch.bfloat16)
            for i, h in enumerate((h1, h2, h3)):
                rows[:, d + i] = 1.0
                rows[:, d + 3 + i] = h
        self.rows, self.d, self.E, self.at = rows, d, E, at
        self._factor: tuple[tuple[int, int] | None, torch.Tensor | None] = (None, None)
        self._gamma = width * _U32 / (1.0 - width * _U32)
        self._abs = _abs_err(width)
        self.lower = kernels.bf16_lower_table()
        self.scale = 1.0 / (1.0 - _U16 / (1.0 - _U16))

    def factor(self, start: int, stop: int) -> torch.Tensor:
        """[-2ŷ, h1, h2, h3, 1, 1, 1, 0...] of rows start..stop (the last block's is kept: the tiles go block
        row by block row)."""
        key, factor = self._factor  # one read: several threads multiply tiles
        if key != (start, stop):
            factor = self.as_factor(self.rows[start:stop])
            self._factor = ((start, stop), factor)
        return factor

    def as_factor(self, rows: torch.Tensor) -> torch.Tensor:
        """Factors [-2ŷ, h1, h2, h3, 1, 1, 1, 0...] of rows [ŷ, 1, 1, 1, h1, h2, h3, 0...] (a new tensor)."""
        factor = rows * -2.0  # exact: a power of two
        d = self.d
        factor[:, d : d + 3] = rows[:, d + 3 : d + 6]
        factor[:, d + 3 : d + 6] = 1.0
        return factor

    def columns(self, start: int, stop: int) -> torch.Tensor:
        return self.rows[start:stop]

    def err(self, rows: slice | np.ndarray, other: slice) -> np.ndarray:
        """Error bound (all but the final rounding) between each of `rows` and any row of `other`."""
        y_max = float(self.y_norm[other].max())
        r_max = float(self.r_norm[other].max())
        yb_max = float(self.yb_norm[other].max())
        n_max = float(self.norms[other].max())
        s_max = float(self.split_err[other].max())
        n_a = self.norms[rows]
        bound = (
            2.0 * (self.r_norm[rows] * y_max + self.yb_norm[rows] * r_max)
            + self._gamma * (n_a + n_max + 2.0 * self.yb_norm[rows] * yb_max)
            + self.split_err[rows]
            + s_max
            + _centring_err(n_a, n_max)
            + self._abs
        )
        return bound * (1.0 + _SLACK)

    def check(self, tile, row0, err_row) -> None:
        if row0 == 0:
            self.check_bounds(tile.view(torch.int16).numpy(), err_row)

    def fill(self, tile, vals, idx, row0, err_row, lo, hi) -> None:
        kernels.fill_from_diagonal_bf16(tile.view(torch.int16).numpy(), self.lower, vals, idx, row0, err_row, lo, hi)

    def check_bounds(self, bits: np.ndarray, err_row: np.ndarray, n_pairs: int = 4096) -> None:
        """Spot-check the bound on this run's own product: on random pairs of the first diagonal tile, every
        lower bound must be at most the exact squared distance. The error model (float32 sums inside the
        bfloat16 product) is checked once per process on a small product; this checks it on the real shape,
        kernel and data. Raises BoundViolation (the caller then redoes the graph with float32 products)."""
        rng = np.random.default_rng(0)
        a = rng.integers(0, bits.shape[0], n_pairs)
        b = rng.integers(0, bits.shape[1], n_pairs)
        keep = a != b
        a, b = a[keep], b[keep]
        bounds = self.lower[bits[a, b].astype(np.int64) & 0xFFFF] - err_row[a]
        exact = np.empty(a.size)
        for s in range(0, a.size, 256):  # small pieces: two 42 MB float64 temporaries cost 0.2 s of fresh pages
            diff = self.E[self.at[a[s : s + 256]]].astype(np.float64) - self.E[self.at[b[s : s + 256]]]
            exact[s : s + 256] = np.einsum("ij,ij->i", diff, diff)
        exact = np.ldexp(exact, -2 * self.shift)  # in the products' scaled units
        if not np.all(bounds <= exact * (1.0 + _DIST_SLACK)):
            raise BoundViolation(
                f"{int(np.sum(bounds > exact))} of {a.size} sampled bfloat16 bounds exceed the distance"
            )

    def select(self, tile, vals, idx, row0, col0, err_row, err_col, rows, cols) -> None:
        bits = tile.view(torch.int16).numpy()
        kernels.select_tile(bits, self.lower, vals, idx, row0, col0, err_row, err_col, self.scale, *rows, *cols)


class BoundViolation(RuntimeError):
    """A bfloat16 lower bound above an exact distance: this machine's product breaks the error model."""


def _split_rows(kernel, args, n: int, threads: int) -> None:
    """Run kernel(*args(lo, hi)) over [0, n) split into `threads` contiguous parts, one per thread."""
    threads = max(1, min(int(threads), n // 1024 or 1))
    bounds = np.linspace(0, n, threads + 1).astype(np.int64)
    jobs = [args(int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:])]
    if threads == 1:
        kernel(*jobs[0])
        return
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(lambda job: kernel(*job), jobs))


_loading: dict[str, threading.Thread] = {}


def load_kernels_in_background(dtype: np.dtype) -> None:
    """Start loading the compiled kernels for rows of `dtype` on a background thread, once per process.

    Loading them from numba's cache costs about half a second of CPU in a new process, most of it numba's own
    set-up, which holds the GIL. Started before the input checks, it overlaps the work that comes before the
    first kernel (the checks, the locality order and the reordered copy run in numpy and
    torch, which release the GIL). Each kernel is called once on a tiny input; the graph's own calls wait on
    numba's lock until the loading is done. It changes the time only, never the graph.
    """
    key = np.dtype(dtype).str
    if key in _loading:
        return

    def load() -> None:
        E = np.zeros((2, 4), dtype=dtype)
        kernels.centre_and_round_bf16(E, np.arange(2, dtype=np.int64), np.zeros(4), 0, kernels.bf16_value_table(),
                                      np.zeros((2, 4), np.uint16), np.zeros(2), np.zeros(2), np.zeros(2), 0, 2)
        pool, two = np.array([[1], [0]], dtype=np.int64), np.arange(2, dtype=np.int64)
        kernels.rank_candidates(E, two, two, pool, two, 1, np.zeros((2, 1), np.int64), np.zeros((2, 1)), 0, 2,
                                *_NO_PRUNING)
        # The bfloat16 tile kernels, with the argument types of the graph's own calls (tile bits as int16).
        bits, lower = np.zeros((2, 2), np.int16), kernels.bf16_lower_table()
        vals, idx = _empty_pools(2, 1)
        kernels.fill_from_diagonal_bf16(bits, lower, vals, idx, 0, np.zeros(2), 0, 2)
        kernels.select_tile(bits, lower, vals, idx, 0, 0, np.zeros(2), np.zeros(2), 1.0, 0, 2, 0, 2)

    _loading[key] = threading.Thread(target=load, name="load-knn-kernels", daemon=True)
    _loading[key].start()


def _gather_rows(E: np.ndarray, rows: np.ndarray, threads: int) -> np.ndarray:
    """E[rows] as a new C-contiguous array, its parts copied on `threads` threads (numpy's take releases the GIL;
    most of the time is the first touch of the new pages)."""
    out = np.empty((rows.size, E.shape[1]), dtype=E.dtype)
    _split_rows(lambda lo, hi: np.take(E, rows[lo:hi], axis=0, out=out[lo:hi]), lambda lo, hi: (lo, hi),
                rows.size, threads)
    return out


def _row_order(at: np.ndarray | None, n: int) -> np.ndarray:
    """The kernels' `at` argument: row i is E[at[i]]; None is E's own order."""
    return np.arange(n, dtype=np.int64) if at is None else np.ascontiguousarray(at, dtype=np.int64)


def _empty_pools(n: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full((n, width), np.inf), np.full((n, width), -1, dtype=np.int64)


def _parts(n: int, parts: int) -> list[tuple[int, int]]:
    """[0, n) cut into `parts` contiguous ranges (some empty when n < parts)."""
    bounds = np.linspace(0, n, max(1, parts) + 1).astype(np.int64)
    return [(int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:])]


class _Workers:
    """Runs the selection kernels of one tile on `threads` threads (they release the GIL), or inline for one.

    Each job updates a disjoint set of heaps, and each heap gets its entries in the same order as from one
    call, so the pools do not depend on the number of threads."""

    def __init__(self, threads: int):
        self.threads = max(1, int(threads))
        self._pool = ThreadPoolExecutor(max_workers=self.threads) if self.threads > 1 else None

    def run(self, jobs: list) -> None:
        if self._pool is None or len(jobs) == 1:
            for job in jobs:
                job()
            return
        for future in [self._pool.submit(job) for job in jobs]:
            future.result()  # re-raises a job's exception here

    def __enter__(self) -> "_Workers":
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown()


def _symmetric_pools(
    products, n: int, width: int, block: int, threads: int, pipeline: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Per-row pools (lower bounds, indices) over all pairs, each pair of row blocks multiplied once.

    Each block's diagonal tile comes before every other tile of that block: it fills the block's pools, so that
    the off-diagonal tiles meet tight thresholds. With two threads or more and `pipeline`, the tiles go through
    `_pipelined_pools` (every thread multiplies tiles, one at a time selects from them in order). Otherwise the
    diagonal tiles come first, each tile's product and then its selection shared by the threads: thread t
    updates the heaps of the t-th part of the tile's rows and of the t-th part of its columns. Every way gives
    each heap the same entries in the same order, so the same pools.
    """
    vals, idx = _empty_pools(n, width)
    if pipeline and threads >= 2:
        _pipelined_pools(products, vals, idx, n, block, threads)
        return vals, idx
    starts = list(range(0, n, block))
    buffers: dict[tuple[int, int], torch.Tensor] = {}
    openblas = _uses_openblas(products)

    def tile(i0: int, i1: int, j0: int, j1: int) -> torch.Tensor:
        shape = (i1 - i0, j1 - j0)
        if shape not in buffers:
            buffers[shape] = torch.empty(shape, dtype=products.tile_dtype)
        with torch_threads(threads):
            return _multiply_tile(products, i0, i1, j0, j1, buffers[shape], openblas=openblas)

    with _blas_threads(1 if openblas else None), _Workers(threads) as workers:
        for i0 in starts:
            i1 = min(i0 + block, n)
            own = slice(i0, i1)
            t, err = tile(i0, i1, i0, i1), products.err(own, own)
            products.check(t, i0, err)
            workers.run([functools.partial(products.fill, t, vals, idx, i0, err, lo, hi)
                         for lo, hi in _parts(i1 - i0, workers.threads)])
        for i0, i1, j0, j1 in _off_diagonal_tiles(n, block):
            factor_rows, cols = slice(i0, i1), slice(j0, j1)
            t = tile(i0, i1, j0, j1)
            err_row, err_col = products.err(factor_rows, cols), products.err(cols, factor_rows)
            workers.run([
                functools.partial(products.select, t, vals, idx, i0, j0, err_row, err_col, rows, columns)
                for rows, columns in zip(_parts(i1 - i0, workers.threads), _parts(j1 - j0, workers.threads))
            ])
    return vals, idx


def _off_diagonal_tiles(n: int, block: int) -> list[tuple[int, int, int, int]]:
    """(i0, i1, j0, j1) of each pair of row blocks I < J, in the order the pools receive them (block rows first)."""
    starts = list(range(0, n, block))
    return [(i0, min(i0 + block, n), j0, min(j0 + block, n))
            for bi, i0 in enumerate(starts) for j0 in starts[bi + 1 :]]


def _tiles_by_column(n: int, block: int) -> list[tuple[int, int, int, int]]:
    """(i0, i1, j0, j1) of every tile I <= J, column by column: the diagonal tile (J, J), then (I, J) for I < J.

    Block K's heaps then receive (K, K), (0, K), ..., (K - 1, K), (K, K + 1), ..., (K, last): the order of the
    diagonal tiles first and the rest block row by block row, so both orders give the same pools."""
    starts = list(range(0, n, block))
    tiles = []
    for bj, j0 in enumerate(starts):
        j1 = min(j0 + block, n)
        tiles.append((j0, j1, j0, j1))
        tiles.extend((i0, min(i0 + block, n), j0, j1) for i0 in starts[:bj])
    return tiles


# A diagonal tile (a block with itself) is symmetric: it is multiplied in _DIAGONAL_PARTS x _DIAGONAL_PARTS parts,
# the parts above the diagonal and on it only, and the parts below are their transposes (10 products of 16 for
# 4 parts, where the whole tile took 16). At N = 30,000 in blocks of 4,096, the diagonal tiles are 23% of the
# products, so this saves 9% of them. Parts below _DIAGONAL_MIN_PART rows would multiply less efficiently.
_DIAGONAL_PARTS = 4
_DIAGONAL_MIN_PART = 512


def _multiply_tile(products, i0: int, i1: int, j0: int, j1: int, out: torch.Tensor,
                   openblas: bool = False) -> torch.Tensor:
    """The tile of row blocks [i0, i1) x [j0, j1) into `out`. A diagonal tile's entry (a, b) below the diagonal
    parts is the one computed for (b, a): the same pair, rounded along another path, within the same error bound
    (`err` is symmetric in the two rows and covers any row of the block).

    openblas: multiply with numpy (its OpenBLAS, on the caller's BLAS threads) instead of torch; float32 only."""
    factor, columns = products.factor(i0, i1), products.columns(j0, j1)
    m = i1 - i0
    part = -(-m // _DIAGONAL_PARTS)
    if i0 != j0 or part < _DIAGONAL_MIN_PART:
        if openblas:
            np.matmul(factor.numpy(), columns.numpy().T, out=out.numpy())
            return out
        return torch.mm(factor, columns.T, out=out)
    cuts = [(a, min(a + part, m)) for a in range(0, m, part)]
    for p, (a0, a1) in enumerate(cuts):
        for b0, b1 in cuts[p:]:
            if openblas:
                out.numpy()[a0:a1, b0:b1] = factor[a0:a1].numpy() @ columns[b0:b1].numpy().T
            else:
                out[a0:a1, b0:b1] = torch.mm(factor[a0:a1], columns[b0:b1].T)
            if b0 != a0:
                out[b0:b1, a0:a1] = out[a0:a1, b0:b1].T
    return out


# Tiles multiplied and not yet selected, at most, beyond one per thread: enough to keep every thread busy while
# one selects, few enough for memory (a tile is 32 MB in bfloat16, 64 MB in float32, at blocks of 4,096).
_TILES_AHEAD = 1


def _pipelined_pools(products, vals: np.ndarray, idx: np.ndarray, n: int, block: int, threads: int = 2) -> None:
    """The tiles of `_symmetric_pools` on `threads` threads, in `_tiles_by_column` order. Each thread takes the
    next job: a part of the diagonal tile being filled (its rows cut in `threads` parts, disjoint heaps); else the
    selection from the next tile in order, where that tile is made (the thread takes it, so one thread at a time
    starts a tile's selection); else the product of the next tile not yet claimed (one torch thread each). So every
    thread multiplies, and the selections run tile after tile, in order, a tile's only once the one before it is
    done. Every heap therefore receives the entries of `_symmetric_pools`' shared loop in the same order (a tile
    selected or filled in one call gives the pools of one in parts), and the pools are the same bit for bit,
    whatever the number of threads.

    Why: the products are most of the work, and their share depends on the CPU. With AMX (bfloat16 at about 1,250
    GFLOP/s on one thread) they took 1.3 s of CPU at N = 30,000, D = 1,280, against 1.3 s for the selections; on an
    AMD EPYC with AVX512-BF16 (about 180 GFLOP/s on one thread) they took 6.4 s against 1.4 s. The earlier
    pipeline (one thread multiplying, one selecting) left the second core idle most of the time there, and used
    two threads only, whatever `threads` was. Both threads on each product (OpenMP) ran at about 730 GFLOP/s in
    the graph against 1,250 on one thread alone with AMX (wake-ups and waits at every tile): each thread
    multiplies its own tile instead.
    Memory: at most `threads + _TILES_AHEAD` tiles at a time.
    Float32 tiles are multiplied by the library `products.library` names (`_uses_openblas`), bfloat16 ones by torch.
    An error on any thread stops them all and is raised here."""
    tiles = _tiles_by_column(n, block)
    openblas = _uses_openblas(products)
    made: dict[int, torch.Tensor] = {}
    spare: dict[tuple[int, int], list[torch.Tensor]] = {}
    # "fill": the diagonal tile being filled, its rows cut into parts that any thread may take (disjoint heaps)
    state: dict = {"claimed": 0, "selected": 0, "error": None, "fill": None}
    ahead = max(1, threads) + _TILES_AHEAD
    ready = threading.Condition()

    def next_job() -> tuple | None:
        with ready:
            while True:
                done = state["selected"]
                if state["error"] is not None or done >= len(tiles):
                    return None
                fill = state["fill"]
                if fill is not None and fill["next"] < len(fill["parts"]):
                    fill["next"] += 1
                    return "fill", done, fill["tile"], fill["parts"][fill["next"] - 1]
                if done in made:  # taken out of `made` (also while it is filled): one thread starts its selection
                    return "select", done, made.pop(done), None
                claimed = state["claimed"]
                if claimed < len(tiles) and claimed - done < ahead:
                    state["claimed"] = claimed + 1
                    i0, i1, j0, j1 = tiles[claimed]
                    buffers = spare.get((i1 - i0, j1 - j0))
                    return "multiply", claimed, buffers.pop() if buffers else None, None
                ready.wait()

    def selected(t: torch.Tensor) -> None:
        """Tile `state["selected"]` is done: the next one may be selected (called holding `ready`)."""
        spare.setdefault(tuple(t.shape), []).append(t)
        state["selected"] += 1
        state["fill"] = None
        ready.notify_all()

    def fill_part(t: torch.Tensor, i0: int, err: np.ndarray, lo: int, hi: int) -> None:
        products.fill(t, vals, idx, i0, err, lo, hi)
        with ready:
            state["fill"]["left"] -= 1
            if state["fill"]["left"] == 0:
                selected(t)

    def work() -> None:
        try:
            torch.set_num_threads(1)  # the caller's thread holds torch_threads(1) around all workers, and restores
            while (job := next_job()) is not None:
                kind, number, t, part = job
                i0, i1, j0, j1 = tiles[number]
                if kind == "multiply":
                    if t is None:
                        t = torch.empty((i1 - i0, j1 - j0), dtype=products.tile_dtype)
                    _multiply_tile(products, i0, i1, j0, j1, t, openblas=openblas)
                    with ready:
                        made[number] = t
                        ready.notify_all()
                elif kind == "fill":
                    fill_part(t, i0, *part)
                elif i0 == j0:  # a diagonal tile: its fill is shared, by rows, with the threads that are free
                    own = slice(i0, i1)
                    err = products.err(own, own)
                    products.check(t, i0, err)
                    parts = [(err, lo, hi) for lo, hi in _parts(i1 - i0, threads) if hi > lo]
                    with ready:
                        state["fill"] = {"tile": t, "parts": parts, "next": 1, "left": len(parts)}
                        ready.notify_all()
                    fill_part(t, i0, *parts[0])
                else:
                    rows, cols = slice(i0, i1), slice(j0, j1)
                    err_row, err_col = products.err(rows, cols), products.err(cols, rows)
                    products.select(t, vals, idx, i0, j0, err_row, err_col, (0, i1 - i0), (0, j1 - j0))
                    with ready:
                        selected(t)
        except BaseException as exc:  # noqa: BLE001 - re-raised by the caller's thread
            with ready:
                if state["error"] is None:
                    state["error"] = exc
                ready.notify_all()

    with torch_threads(1), _blas_threads(1 if openblas else None):
        helpers = [threading.Thread(target=work, name=f"knn-tiles-{i}", daemon=True) for i in range(1, threads)]
        for helper in helpers:
            helper.start()
        work()
        for helper in helpers:
            helper.join()
    if state["error"] is not None:
        raise state["error"]


def _uses_openblas(products) -> bool:
    """Whether the tiles of `products` are multiplied by numpy's OpenBLAS (float32 products on AMD CPUs), always on
    one BLAS thread per call: OpenBLAS's float32 results change with its thread count (torch's MKL's did not), and
    the pools must be the same bit for bit on any number of threads."""
    return getattr(products, "library", "torch") == "openblas" and products.tile_dtype == torch.float32


@contextlib.contextmanager
def _blas_threads(n: int | None):
    """numpy's BLAS on `n` threads inside the block (restored after); nothing when n is None. Each worker of the
    pipeline multiplies its own tile: OpenBLAS's own threads on top would only wait for each other."""
    if n is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=n, user_api="blas"):
        yield


def _query_pools(products: _Float32Products, queries: np.ndarray, width: int, block: int, threads: int):
    """Pools of the query rows against all rows (float32 products, one side only); rows of the result follow
    `queries`."""
    n = products.n
    vals, idx = _empty_pools(queries.size, width)
    everything = slice(0, n)
    with _Workers(threads) as workers:
        for q0 in range(0, queries.size, block):
            chosen = queries[q0 : q0 + block]
            factor = products.factor_of_rows(chosen)
            err_row = products.err(chosen, everything)
            for j0 in range(0, n, block):
                j1 = min(j0 + block, n)
                with torch_threads(threads):
                    t = torch.mm(factor, products.columns(j0, j1).T)
                _select_query_tile(t.numpy(), vals, idx, q0, j0, err_row, chosen, workers)
    return vals, idx


def _select_query_tile(tile, vals, idx, q0, j0, err_row, chosen, workers: _Workers) -> None:
    # The point itself is excluded by index: mask its entry out with +inf before the kernel sees the tile.
    local = np.flatnonzero((chosen >= j0) & (chosen < j0 + tile.shape[1]))
    if local.size:
        tile[local, chosen[local] - j0] = np.inf
    workers.run([
        functools.partial(kernels.select_tile, tile, None, vals, idx, q0, j0, err_row, err_row, 1.0, lo, hi, 0, 0)
        for lo, hi in _parts(tile.shape[0], workers.threads)
    ])


@functools.lru_cache(maxsize=1)
def bf16_accumulation_is_float32() -> bool:
    """True where torch's bfloat16 matrix product on this CPU keeps the model that the error bound assumes:
    exact products, float32 sums, one rounding to bfloat16 at the end (checked once per process)."""
    with ieee_float32(torch.device("cpu")):
        return product_keeps_bf16_model(torch.mm)


def product_keeps_bf16_model(matmul) -> bool:
    """True where `matmul` of two bfloat16 matrices keeps the bound's model, on a product with heavy
    cancellation, where a blocked sum with intermediate bfloat16 roundings shows errors far above the bound."""
    gen = torch.Generator().manual_seed(0)
    width = 1312
    a = torch.randn((256, width), generator=gen)
    b = torch.randn((256, width), generator=gen)
    # +10^6 in the first column and -10^6 in the last: they cancel, so a sum that rounds its partial sums to
    # bfloat16 anywhere between them loses about 2^-9 10^6, far above the float32 bound of the small result.
    a[:, 0], b[:, 0] = 1000.0, 1000.0
    a[:, -1], b[:, -1] = 1000.0, -1000.0
    ab, bb = a.to(torch.bfloat16), b.to(torch.bfloat16)
    got = matmul(ab, bb.T).to(torch.float64)
    exact = ab.to(torch.float64) @ bb.to(torch.float64).T
    terms = ab.to(torch.float64).abs() @ bb.to(torch.float64).abs().T
    gamma = width * _U32 / (1.0 - width * _U32)
    allowed = _U16 / (1.0 - _U16) * got.abs() + gamma * terms * (1.0 + _U16)
    return bool(((got - exact).abs() <= allowed).all())


@functools.lru_cache(maxsize=1)
def bf16_products_are_fast() -> bool:
    """True where this CPU multiplies bfloat16 in hardware (`hardware.bf16_products_are_native`: about 2.5x the
    float32 rate here) and its matrix product keeps the bound's model (`bf16_accumulation_is_float32`, a
    small product checked once per process)."""
    return hardware.bf16_products_are_native() and bf16_accumulation_is_float32()


def default_pool(k: int, precision: str) -> int:
    """Extra candidates kept beyond k before the exact re-rank (wider for the coarser bfloat16 bound)."""
    return max(16, k // 2) if precision in ("bfloat16", "auto-bfloat16") else max(8, k // 8)


# rank_candidates' pruning arguments when there is nothing to prune with (no bounds)
_NO_PRUNING = (np.zeros((0, 0)), np.zeros(0), 0.0, 0.0)


def rank_pools(E: np.ndarray, rows: np.ndarray, pool_idx: np.ndarray, names: np.ndarray, k: int, threads: int,
               bounds: tuple | None = None, at: np.ndarray | None = None):
    """The k nearest of each row's pool (negative entries = none) in float64, ties by name: (names of the
    neighbours, squared distances). Rows are shared between `threads` threads. Row r is E[at[r]] (default E[r]).

    bounds: (lower bounds of the pool's distances [rows, width], the rows' error bounds, rel, tiny), as
    `pool_bounds` gives them: the candidates whose lower bound exceeds the k-th smallest upper bound of their row
    are skipped (their distance is strictly larger than k others'), which changes nothing in the result."""
    out_idx = np.empty((rows.size, k), dtype=np.int64)
    out_sq = np.empty((rows.size, k), dtype=np.float64)
    E = np.ascontiguousarray(E)
    at = _row_order(at, E.shape[0])
    prune = _NO_PRUNING if bounds is None else bounds
    _split_rows(kernels.rank_candidates,
                lambda lo, hi: (E, at, rows, pool_idx, names, k, out_idx, out_sq, lo, hi, *prune), rows.size, threads)
    return out_idx, out_sq


def pool_bounds(products, vals: np.ndarray) -> tuple:
    """rank_pools' `bounds` for pools filled from these products' tiles: every entry's lower bound is its tile value
    (or the lower end of its rounding interval) minus an error bound at most the row's against all rows (`err`), and
    the value lies within the products' `value_rel` of the magnitude above that, plus `value_tiny`."""
    n = vals.shape[0]
    return vals, products.err(np.arange(n), slice(0, n)), products.value_rel, products.value_tiny


def uncertified(bound: np.ndarray, kth_sq: np.ndarray, shift: int, pool: np.ndarray, n: int) -> np.ndarray:
    """Rows whose pool bound (in the products' units, rows times 2^-shift) does not exceed the k-th exact squared
    distance (with rounding slack), unless the pool holds every one of the n - 1 other rows (nothing is
    outside it). An empty pool slot (-1) is never counted, and a k-th distance of +inf (fewer than k filled
    slots) is never certified."""
    certified = to_given_units(bound, shift) > kth_sq * (1.0 + _DIST_SLACK)
    certified &= np.isfinite(kth_sq)
    if pool.shape[1] >= n - 1:
        certified |= (pool >= 0).sum(axis=1) >= n - 1
    return np.flatnonzero(~certified)


# More uncertified rows than this (after the float32 pass) are settled by a float64 k-d tree where the rows have at
# most _TREE_MAX_DIM features: there they are data of few intrinsic dimensions (a line in 16-D left 6,977 of 8,000
# rows uncertified), which the brute force would settle in O(N^2).
_TREE_ROWS = 256
_TREE_MAX_DIM = 4096

# Up to this many uncertified rows go straight to the float64 brute force (about 25 ms a row per thread at
# N = 50,000, D = 1,280); more take the float32 pass against all rows first.
_BRUTE_FORCE_ROWS = 8


def graph_order(E: np.ndarray, block: int) -> np.ndarray | None:
    """The locality order that the graph of E's rows in blocks of `block` uses (None for a single block, where
    the rows stay as given). One thread: its products are small, and with two threads the waits cost more than
    they gain (measured at N = 30,000, D = 1,280 on 2 shared cores: 0.12 s of CPU on one thread, 0.58 s on
    two)."""
    n_blocks = -(-E.shape[0] // block)
    if n_blocks <= 1:
        return None
    with ieee_float32(torch.device("cpu")):
        return locality_order(E, min(256, 4 * n_blocks), 1)


def locality_order(E: np.ndarray, n_clusters: int, threads: int, seed: int = 0, iters: int = 4) -> np.ndarray:
    """A permutation of the rows that puts likely neighbours in the same block: rows sorted by their nearest
    k-means centre (a few Lloyd steps on a sample, float32). It changes only the speed, never the graph: with
    neighbours in the same block, the diagonal tiles fill the pools with near-final candidates, and later tiles
    have far fewer entries below the pools' thresholds (measured: 5x fewer heap updates at N = 50,000).
    """
    gen = torch.Generator().manual_seed(seed)
    n = E.shape[0]
    with torch_threads(threads):
        mean = torch.from_numpy(E.mean(axis=0, dtype=np.float64).astype(np.float32))
        sample_rows = torch.randperm(n, generator=gen)[: min(n, 160 * n_clusters)]
        sample = torch.from_numpy(np.ascontiguousarray(E[np.sort(sample_rows.numpy())], dtype=np.float32)) - mean
        centres = sample[torch.randperm(sample.shape[0], generator=gen)[:n_clusters]].clone()
        for _ in range(iters):
            labels = _nearest_centre(sample, centres, (centres * centres).sum(1))
            # Sums per centre as one small product with the one-hot matrix (index_add_ is slow on CPU).
            one_hot = torch.zeros((centres.shape[0], sample.shape[0])).scatter_(0, labels[None, :], 1.0)
            sums = one_hot @ sample
            counts = one_hot.sum(dim=1)
            filled = counts > 0
            centres[filled] = sums[filled] / counts[filled, None]
        # The rows themselves (no centred copy): |x - m - c|^2 = |x|^2 + |c|^2 + 2 m.c - 2 x.c, argmin over c.
        offset = (centres * centres).sum(1) + 2.0 * (centres @ mean)
        labels = torch.cat(
            [_nearest_centre(_as_float32(E[s : s + 8192]), centres, offset) for s in range(0, n, 8192)]
        )
    return np.argsort(labels.numpy(), kind="stable").astype(np.int64)


def _as_float32(rows: np.ndarray) -> torch.Tensor:
    """The rows as a float32 tensor (no copy when they are float32 and contiguous already)."""
    return torch.from_numpy(np.ascontiguousarray(rows, dtype=np.float32))


def _nearest_centre(rows: torch.Tensor, centres: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """Index of the nearest centre of each row: argmin over c of offset_c - 2 x.c (offset: |c|^2 for centred
    rows; |c|^2 + 2 m.c for rows x whose mean m the centres do not include)."""
    return torch.addmm(offset[None, :], rows, centres.T, alpha=-2.0).argmin(dim=1)


# "auto" keeps bfloat16 products only where a sample predicts at most this share of rows left uncertified:
# each of those costs a float32 pass against all rows, and at about a quarter of the rows bfloat16 stops paying.
_BF16_MAX_UNCERTIFIED = 0.1


def predicted_uncertified(
    products: "_Bfloat16Products", k: int, width: int, sample: int = 128, threads: int = 1
) -> float:
    """Share of rows whose bfloat16 pool of `width` would not certify their k nearest, predicted on a sample.

    One bfloat16 product of the sample rows with all rows: a row fails when its width-th smallest lower bound
    is not above its k-th smallest approximate value (a stand-in for the k-th exact distance). Clustered,
    low-dimensional data (hidden representations) pass; isotropic high-dimensional noise does not, because the
    bound's margin then holds hundreds of candidates.
    """
    n = products.rows.shape[0]
    rows = np.sort(np.random.default_rng(0).choice(n, size=min(sample, n), replace=False))

    def failures(part_rows: np.ndarray) -> int:
        factor = products.as_factor(products.rows[torch.from_numpy(part_rows)])
        bits = (factor @ products.rows.T).view(torch.int16).numpy().astype(np.int64) & 0xFFFF
        values = products.values[bits]
        bounds = products.lower[bits] - products.err(part_rows, slice(0, n))[:, None]
        values[np.arange(part_rows.size), part_rows] = np.inf  # the point itself
        bounds[np.arange(part_rows.size), part_rows] = np.inf
        kth_value = np.partition(values, k - 1, axis=1)[:, k - 1]
        wth_bound = np.partition(bounds, width - 1, axis=1)[:, width - 1]
        return int(np.sum(~(wth_bound > kth_value)))

    # 16 sample rows at a time ([16, N] float64 temporaries only), the parts on `threads` threads, each product on
    # its own thread: a [16, N] product is too small to share, and a second thread's wake-ups cost more.
    parts = [rows[start : start + 16] for start in range(0, rows.size, 16)]
    with torch_threads(1), ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        failed = sum(pool.map(failures, parts))
    return failed / rows.size


@ieee_float32(torch.device("cpu"))
def cpu_graph(
    E: np.ndarray,
    k: int,
    width: int,
    block: int,
    threads: int,
    precision: str,
    fallback_width: int | None = None,
    order: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Exact k nearest (local indices, float64 squared distances) of every row of E among the others.

    order: `graph_order(E, block)` where the caller has computed it already (it changes the speed only).

    precision: "bfloat16", "float32", or "auto-bfloat16" (bfloat16 unless a sample predicts that too many rows
    would need the float32 pass; then float32 with pools of `fallback_width`).
    Returns also what each stage did: {"rows", "float32_pass", "brute_force" (rows settled there), "precision"
    and "width" (of the pass that ran), "predicted_uncertified" (auto's sample), "bound_violation" (why a
    bfloat16 pass was abandoned for float32, or None)}.
    Runs with IEEE float32 products whatever the caller's torch settings (`ieee_float32`, entered at each call).
    """
    n = E.shape[0]
    E = np.ascontiguousarray(E)
    names = order if order is not None else graph_order(E, block)
    in_order = names is None  # a single block: the rows stay as given
    if in_order:
        names = np.arange(n, dtype=np.int64)

    # The rows in the locality order, as a copy, for the float32 products and the fallbacks only (made on first use):
    # the bfloat16 products and the re-rank read row i as E[names[i]] (a copy of 150 MB at N = 30,000, D = 1,280
    # costs about 0.4 s of a process, most of it fresh pages).
    @functools.cache
    def rows_in_order() -> np.ndarray:
        return E if in_order else _gather_rows(E, names, threads)

    products = None
    predicted = None
    if precision in ("bfloat16", "auto-bfloat16"):
        try:
            products = _Bfloat16Products(E, threads, at=names)
        except OverflowError:
            pass  # never for scaled rows (norms at most 1); float32 instead, never a wrong pool
        if products is not None and precision == "auto-bfloat16":
            predicted = predicted_uncertified(products, k, width, threads=threads)
            if predicted > _BF16_MAX_UNCERTIFIED:
                products = None
        if products is None:
            width = fallback_width or width
    precision = "bfloat16" if products is not None else "float32"
    bound_violation = None
    if products is not None:
        try:
            vals, pool = _symmetric_pools(products, n, width, block, threads)
        except BoundViolation as error:
            bound_violation = str(error)
            products, precision, width = None, "float32", fallback_width or width
    if products is None:
        products = _Float32Products(rows_in_order(), threads=threads)
        vals, pool = _symmetric_pools(products, n, width, block, threads)
    shift = products.shift
    bounds = pool_bounds(products, vals)
    del products
    # E re-ranked in place (row i is E[names[i]]), without the reordered copy
    idx, sq = rank_pools(E, np.arange(n, dtype=np.int64), pool, names, k, threads, bounds, at=names)
    del bounds
    stats = {"rows": n, "float32_pass": 0, "brute_force": 0, "precision": precision, "width": width,
             "predicted_uncertified": predicted, "bound_violation": bound_violation}
    unsure = uncertified(vals[:, 0], sq[:, k - 1], shift, pool, n)
    del vals, pool
    if unsure.size > _BRUTE_FORCE_ROWS and precision == "bfloat16":
        stats["float32_pass"] = int(unsure.size)
        Ep = rows_in_order()
        f32 = _Float32Products(Ep, lazy=True)
        q_vals, q_pool = _query_pools(f32, unsure, width, block, threads)
        q_shift = f32.shift
        del f32
        q_idx, q_sq = rank_pools(Ep, unsure, q_pool, names, k, threads)
        idx[unsure], sq[unsure] = q_idx, q_sq
        unsure = unsure[uncertified(q_vals[:, 0], q_sq[:, k - 1], q_shift, q_pool, n)]
    stats["brute_force"] = int(unsure.size)
    # Many rows uncertified by pools with room beyond k: data of few intrinsic dimensions, where a k-d tree is fast.
    # (Pools without that room certify nothing whatever the data: the brute force, as before.)
    if unsure.size > _TREE_ROWS and width > k and E.shape[1] <= _TREE_MAX_DIM:
        from ._knn_lowdim import tree_rows

        stats["tree"], stats["brute_force"] = int(unsure.size), 0
        idx[unsure], sq[unsure] = tree_rows(rows_in_order(), unsure, names, k, threads)
    elif unsure.size:
        idx[unsure], sq[unsure] = brute_force_rows(rows_in_order(), unsure, names, k, threads)
    out_idx = np.empty_like(idx)
    out_sq = np.empty_like(sq)
    out_idx[names], out_sq[names] = idx, sq
    if (out_idx < 0).any() or not np.isfinite(out_sq).all():
        raise OverflowError("a squared distance is not finite in float64")  # never silent
    return out_idx, out_sq, stats


def brute_force_rows(
    E: np.ndarray, queries: np.ndarray, names: np.ndarray, k: int, threads: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest (names, squared distances) of E[queries] among all rows, every distance in float64."""
    n = E.shape[0]
    out_idx = np.empty((queries.size, k), dtype=np.int64)
    out_sq = np.empty((queries.size, k), dtype=np.float64)
    chunk = 64
    for q0 in range(0, queries.size, chunk):
        part = queries[q0 : q0 + chunk]
        cols = np.broadcast_to(np.arange(n, dtype=np.int64), (part.size, n)).copy()
        cols[np.arange(part.size), part] = -1  # the point itself, by index
        out_idx[q0 : q0 + part.size], out_sq[q0 : q0 + part.size] = rank_pools(E, part, cols, names, k, threads)
    return out_idx, out_sq
