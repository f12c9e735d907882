"""Global measures of one representation, beyond the neighbour graph (docs/measures.md has the definitions).

- `participation_ratio(X)`: (sum of covariance eigenvalues)^2 / sum of squared eigenvalues; 1 when one direction
  carries all variance, D when the variance is spread equally over D directions.
- `isoscore(X)`: IsoScore (Rudman et al. 2022) from the covariance eigenvalues; 0 for variance along one direction,
  1 for isotropic variance in all D ambient dimensions.
- `mean_cosine(X)`: the expected cosine similarity of a uniformly random pair of distinct rows, computed exactly.
- `token_anisotropy(T)`: the anisotropy of Razzhigaev et al. 2024 (share of the centred variance on the first
  principal component) applied to a sample of token-level hidden states.
- `cell_density(X, subspaces, cells)`: quantized cell density ("point patchiness", Marbut et al. 2024): product
  quantization of the rows (k-means with `cells` cells in each of `subspaces` blocks of coordinates) and Lloyd's
  index of patchiness of the points-per-cell counts, as the authors compute it (docs/measures.md).

Every function takes the rows (float32 or float64 [N, D]) and returns a float; statistics run in float64.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .anisotropy import _second_moment, anisotropy, mean_cosine
from .neighbours import validate_representation

__all__ = ["LAYER_MEASURES", "cell_counts", "cell_density", "covariance_eigenvalues", "isoscore", "kmeans_cells",
           "kmeans_seeds", "layer_measures", "mean_cosine", "participation_ratio", "patchiness",
           "product_quantizer_codes", "token_anisotropy"]


def _rows(X: np.ndarray, name: str, minimum: int = 2) -> np.ndarray:
    X = validate_representation(X, name=name)
    if X.shape[0] < minimum:
        raise InputError(f"{name}: needs at least {minimum} rows, got {X.shape[0]}")
    return X


def covariance_eigenvalues(X: np.ndarray) -> np.ndarray:
    """The D eigenvalues of the sample covariance of the rows (divisor N - 1), descending, clipped at 0.

    When N < D the nonzero ones come from the N x N Gram matrix and the rest are exact zeros. The centred rows span
    at most N - 1 directions, so every eigenvalue after the first N - 1 is an exact zero too (the Gram matrix's
    eigenvalue along the centring's null vector is rounding noise of either sign, about 1e-16 of the largest).
    """
    X = _rows(X, "covariance")
    n, d = X.shape
    mean = X.mean(axis=0, dtype=np.float64)
    values = np.linalg.eigvalsh(_second_moment(X, mean)) / (n - 1)
    values = np.clip(values[::-1], 0.0, None)
    values[n - 1 :] = 0.0  # n >= 2 (`_rows`)
    if values.size < d:
        values = np.concatenate([values, np.zeros(d - values.size)])
    return values


def participation_ratio(X: np.ndarray) -> float:
    """(sum lambda)^2 / sum lambda^2 of the covariance eigenvalues; NaN when every row is identical."""
    values = covariance_eigenvalues(X)
    squares = float(np.sum(values**2))
    return float(np.sum(values) ** 2 / squares) if squares > 0 else float("nan")


def isoscore(X: np.ndarray) -> float:
    """IsoScore of the rows (Rudman et al. 2022), in [0, 1]; NaN when every row is identical.

    With lambda the D covariance eigenvalues (the variances along the principal axes), the normalised variance
    vector is v = sqrt(D) lambda / |lambda|; the isotropy defect is delta = |v - 1| / sqrt(2 (D - sqrt D)); the
    number of dimensions used is k = (D - delta^2 (D - sqrt D))^2 / D, in [1, D]; IsoScore = (k - 1) / (D - 1).
    """
    values = covariance_eigenvalues(X)
    d = values.size
    norm = float(np.linalg.norm(values))
    if norm == 0:
        return float("nan")
    if d == 1:
        return 1.0
    v = np.sqrt(d) * values / norm
    defect = np.linalg.norm(v - 1.0) / np.sqrt(2.0 * (d - np.sqrt(d)))
    k = (d - defect**2 * (d - np.sqrt(d))) ** 2 / d
    return float(min(max((k - 1.0) / (d - 1.0), 0.0), 1.0))


def token_anisotropy(tokens: np.ndarray) -> float:
    """Share of the centred variance of token-level states on their first principal component (Razzhigaev et al.)."""
    return float(anisotropy(_rows(tokens, "token sample")).pc1_share)


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"cell_density: {name} must be a positive integer, got {value!r}")
    return int(value)


def _squared_distances(Y: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """[N, k] squared Euclidean distances in float64 (clipped at 0 against rounding).

    float64, not float32 as faiss computes them: k-means assignments flip on near-ties, and float32 products from
    OpenBLAS change with the thread count (on an AMD EPYC with AVX2, 1 and 2 threads gave cell densities 1.75501
    and 1.75394 for the same 2,000 tokens), so a layer's value would depend on how many cores its job got.
    """
    Y64, c64 = np.asarray(Y, dtype=np.float64), np.asarray(centroids, dtype=np.float64)
    d2 = (Y64 * Y64).sum(axis=1)[:, None] - 2.0 * (Y64 @ c64.T) + (c64 * c64).sum(axis=1)[None, :]
    return np.maximum(d2, 0.0)


def kmeans_seeds(Y: np.ndarray, cells: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ initial centroids (Arthur and Vassilvitskii 2007): each next seed is a row drawn with probability
    proportional to its squared distance to the nearest seed so far; uniform when every row is already a seed."""
    n = Y.shape[0]
    chosen = [int(rng.integers(n))]
    nearest = ((Y - Y[chosen[0]]) ** 2).sum(axis=1)
    for _ in range(1, cells):
        cumulative = np.cumsum(nearest)
        total = float(cumulative[-1])
        if total > 0:
            index = min(int(np.searchsorted(cumulative, rng.random() * total, side="right")), n - 1)
        else:
            index = int(rng.integers(n))
        chosen.append(index)
        nearest = np.minimum(nearest, ((Y - Y[index]) ** 2).sum(axis=1))
    return Y[chosen].copy()


def kmeans_cells(Y: np.ndarray, cells: int, iterations: int = 25, seed: int = 0,
                 init: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means of the rows of Y into `cells` cells: (cell of each row int64 [N], centroids [cells, d]).

    Seeds from `kmeans_seeds` (or `init`), at most `iterations` rounds of assign-then-average, stopping when no
    row changes cell; the returned cells are the nearest centroid of each row (ties: the lowest cell). A cell left
    empty takes the row farthest from its centroid (rows taken in order of decreasing distance).
    """
    rng = np.random.default_rng(seed)
    centroids = kmeans_seeds(Y, cells, rng) if init is None else np.array(init, dtype=np.float64)
    labels = None
    for _ in range(iterations):
        d2 = _squared_distances(Y, centroids)
        new = d2.argmin(axis=1)
        if labels is not None and np.array_equal(new, labels):
            break
        labels = new
        counts = np.bincount(labels, minlength=cells)
        sums = np.zeros_like(centroids)
        np.add.at(sums, labels, Y)
        occupied = counts > 0
        centroids[occupied] = sums[occupied] / counts[occupied, None]
        empty = np.flatnonzero(~occupied)
        if empty.size:
            far = np.argsort(-d2[np.arange(Y.shape[0]), labels], kind="stable")[: empty.size]
            centroids[empty[: far.size]] = Y[far]
    labels = _squared_distances(Y, centroids).argmin(axis=1)
    return labels.astype(np.int64), centroids


def product_quantizer_codes(X: np.ndarray, subspaces: int = 4, cells: int = 256, iterations: int = 25,
                            seed: int = 0) -> np.ndarray:
    """Product quantization of the rows: int64 codes [N, subspaces], the cell of each row in each subspace.

    The D coordinates are cut into `subspaces` contiguous blocks (sizes differ by at most one when D is not a
    multiple) and each block is quantized on its own by `kmeans_cells` with `cells` cells (seed `seed` + block).
    """
    subspaces = _positive_int(subspaces, "subspaces")
    cells = _positive_int(cells, "cells")
    iterations = _positive_int(iterations, "iterations")
    X = _rows(X, "cell_density")
    n, d = X.shape
    if subspaces > d:
        raise InputError(f"cell_density: {subspaces} subspaces need at least {subspaces} dimensions, got {d}")
    if cells > n:
        raise InputError(f"cell_density: {cells} cells need at least {cells} rows, got {n}")
    Y = np.asarray(X, dtype=np.float64)
    blocks = np.array_split(np.arange(d), subspaces)
    return np.stack([kmeans_cells(Y[:, block], cells, iterations=iterations, seed=int(seed) + j)[0]
                     for j, block in enumerate(blocks)], axis=1)


def patchiness(counts: np.ndarray) -> float:
    """Lloyd's index of patchiness as Marbut et al. compute it from cell counts [subspaces, cells].

    m = (sum of all counts) / cells (the points per cell summed over the subspaces), V = the population variance
    of all subspaces x cells counts, mean crowding m* = m + V / m - 1; patchiness = m* / m.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 2 or counts.size == 0 or np.any(counts < 0):
        raise InputError("cell_density: counts must be a non-empty [subspaces, cells] array of counts >= 0")
    m = counts.sum() / counts.shape[1]
    if m <= 0:
        raise InputError("cell_density: every cell is empty")
    return float((m + counts.var() / m - 1.0) / m)


def cell_counts(codes: np.ndarray, cells: int) -> np.ndarray:
    """Points per cell of each subspace: int64 [subspaces, cells] from codes [N, subspaces]."""
    return np.stack([np.bincount(column, minlength=cells) for column in np.asarray(codes).T])


def cell_density(X: np.ndarray, subspaces: int = 4, cells: int = 256, iterations: int = 25, seed: int = 0) -> float:
    """Quantized cell density ("point patchiness", Marbut et al. 2024) of the rows; docs/measures.md.

    Product-quantize the rows (`product_quantizer_codes`: `subspaces` blocks of coordinates, k-means with `cells`
    cells in each), count the points per cell, and return Lloyd's patchiness index of the counts (`patchiness`).
    1 - cells / (subspaces N) when every cell holds the same number of points; larger when points crowd into
    fewer cells.
    """
    cells = _positive_int(cells, "cells")
    codes = product_quantizer_codes(X, subspaces=subspaces, cells=cells, iterations=iterations, seed=seed)
    return patchiness(cell_counts(codes, cells))


LAYER_MEASURES = ("cell_density", "isoscore", "participation_ratio", "mean_cosine", "token_anisotropy")


def layer_measures(rows: np.ndarray, tokens: np.ndarray | None = None, cells: int = 256,
                   subspaces: int = 4, seed: int = 0) -> dict[str, float | str | None]:
    """The five measures of one layer (LAYER_MEASURES) from its pooled rows and its token sample.

    `isoscore`, `participation_ratio` and `mean_cosine` use the pooled rows; `token_anisotropy` and `cell_density`
    the token states (Marbut et al. quantize token states). Without a token sample (or with fewer than 2 tokens)
    both are NaN and `token_reason` says why; `cell_density` is also NaN, with `cell_reason`, when the sample has
    fewer tokens than `cells`.
    """
    result: dict[str, float | str | None] = {
        "cell_density": float("nan"),
        "isoscore": isoscore(rows),
        "participation_ratio": participation_ratio(rows),
        "mean_cosine": mean_cosine(rows),
        "token_anisotropy": float("nan"),
        "token_reason": None,
        "cell_reason": None,
        "n_tokens": 0,
    }
    if tokens is None:
        result["token_reason"] = result["cell_reason"] = "no token sample was kept at extraction"
    elif tokens.shape[0] < 2:
        result["token_reason"] = result["cell_reason"] = (
            f"the token sample has {tokens.shape[0]} token(s), fewer than 2")
        result["n_tokens"] = int(tokens.shape[0])
    else:
        result["token_anisotropy"] = token_anisotropy(tokens)
        result["n_tokens"] = int(tokens.shape[0])
        if tokens.shape[0] < cells:
            result["cell_reason"] = f"the token sample has {tokens.shape[0]} tokens, fewer than the {cells} cells"
        else:
            result["cell_density"] = cell_density(tokens, subspaces=subspaces, cells=cells, seed=seed)
    return result
