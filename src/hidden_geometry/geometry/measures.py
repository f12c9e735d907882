"""Global measures of one representation, beyond the neighbour graph (docs/measures.md has the definitions).

- `participation_ratio(X)`: (sum of covariance eigenvalues)^2 / sum of squared eigenvalues; 1 when one direction
  carries all variance, D when the variance is spread equally over D directions.
- `isoscore(X)`: IsoScore (Rudman et al. 2022) from the covariance eigenvalues; 0 for variance along one direction,
  1 for isotropic variance in all D ambient dimensions.
- `mean_cosine(X)`: the expected cosine similarity of a uniformly random pair of distinct rows, computed exactly.
- `token_anisotropy(T)`: the anisotropy of Razzhigaev et al. 2024 (share of the centred variance on the first
  principal component) applied to a sample of token-level hidden states.
- `cell_density(X, n_components, bins)`: quantized cell density (after Marbut et al. 2024): the mean number of
  points per occupied cell of a regular grid over the leading principal coordinates (our operational choice,
  documented in docs/measures.md).

Every function takes the rows (float32 or float64 [N, D]) and returns a float; statistics run in float64.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .anisotropy import _second_moment, anisotropy, mean_cosine
from .neighbours import validate_representation

__all__ = ["LAYER_MEASURES", "cell_density", "covariance_eigenvalues", "isoscore", "layer_measures", "mean_cosine",
           "participation_ratio",
           "token_anisotropy"]


def _rows(X: np.ndarray, name: str, minimum: int = 2) -> np.ndarray:
    X = validate_representation(X, name=name)
    if X.shape[0] < minimum:
        raise InputError(f"{name}: needs at least {minimum} rows, got {X.shape[0]}")
    return X


def covariance_eigenvalues(X: np.ndarray) -> np.ndarray:
    """The D eigenvalues of the sample covariance of the rows (divisor N - 1), descending, clipped at 0.

    When N < D the nonzero ones come from the N x N Gram matrix and the rest are exact zeros.
    """
    X = _rows(X, "covariance")
    n, d = X.shape
    mean = X.mean(axis=0, dtype=np.float64)
    values = np.linalg.eigvalsh(_second_moment(X, mean)) / (n - 1)
    values = np.clip(values[::-1], 0.0, None)
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


def cell_indices(X: np.ndarray, n_components: int = 3, bins: int = 4) -> np.ndarray:
    """The grid cell of each row: int64 [N, m], m = min(n_components, D, N - 1) leading principal coordinates.

    Each principal coordinate is cut into `bins` equal-width intervals between its minimum and maximum (the
    maximum belongs to the last interval); a coordinate with zero range puts every row in interval 0.
    """
    if isinstance(n_components, bool) or int(n_components) != n_components or n_components < 1:
        raise InputError(f"cell_density: n_components must be a positive integer, got {n_components!r}")
    if isinstance(bins, bool) or int(bins) != bins or bins < 1:
        raise InputError(f"cell_density: bins must be a positive integer, got {bins!r}")
    X = _rows(X, "cell_density")
    Xc = X.astype(np.float64) - X.mean(axis=0, dtype=np.float64)
    m = min(int(n_components), X.shape[1], X.shape[0] - 1)
    # Right singular vectors of the centred rows = principal axes; the sign of an axis never changes the cells
    # occupied (equal-width bins between min and max are mirrored by a sign flip).
    _, _, vt = np.linalg.svd(Xc, full_matrices=False)
    coords = Xc @ vt[:m].T
    low, high = coords.min(axis=0), coords.max(axis=0)
    width = np.where(high > low, (high - low) / int(bins), 1.0)
    cells = np.floor((coords - low) / width).astype(np.int64)
    return np.clip(cells, 0, int(bins) - 1)


def cell_density(X: np.ndarray, n_components: int = 3, bins: int = 4) -> float:
    """Mean number of points per occupied cell of the grid of `cell_indices` (N / number of occupied cells).

    1 when every point has a cell of its own (spread-out data); N when all points share one cell (one patch).
    """
    cells = cell_indices(X, n_components=n_components, bins=bins)
    occupied = np.unique(cells, axis=0).shape[0]
    return float(cells.shape[0] / occupied)


LAYER_MEASURES = ("cell_density", "isoscore", "participation_ratio", "mean_cosine", "token_anisotropy")


def layer_measures(rows: np.ndarray, tokens: np.ndarray | None = None, cell_components: int = 3,
                   cell_bins: int = 4) -> dict[str, float | str | None]:
    """The five measures of one layer (LAYER_MEASURES) from its pooled rows and its token sample.

    `token_anisotropy` is NaN with `token_reason` set when there is no token sample (or fewer than 2 tokens).
    """
    result: dict[str, float | str | None] = {
        "cell_density": cell_density(rows, n_components=cell_components, bins=cell_bins),
        "isoscore": isoscore(rows),
        "participation_ratio": participation_ratio(rows),
        "mean_cosine": mean_cosine(rows),
        "token_anisotropy": float("nan"),
        "token_reason": None,
        "n_tokens": 0,
    }
    if tokens is None:
        result["token_reason"] = "no token sample was kept at extraction"
    elif tokens.shape[0] < 2:
        result["token_reason"] = f"the token sample has {tokens.shape[0]} token(s), fewer than 2"
        result["n_tokens"] = int(tokens.shape[0])
    else:
        result["token_anisotropy"] = token_anisotropy(tokens)
        result["n_tokens"] = int(tokens.shape[0])
    return result
