"""Anisotropy of a representation: how much of it lies along one direction.

- pc1_share: the share of the total variance of the centred rows on the first principal component
  (Razzhigaev et al. 2024); 1/D for isotropic data, near 1 when one direction dominates.
- mean_cosine: the mean cosine similarity between distinct rows (not centred), the usual "anisotropy" of
  contextual embeddings (Ethayarajh 2019); about 0 for isotropic data, near 1 when all rows point the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InputError
from ..io import Record
from .neighbours import validate_representation


@dataclass(frozen=True)
class Anisotropy(Record):
    """pc1_share in [0, 1] (NaN only when every row is identical), mean_cosine in [-1, 1]."""

    pc1_share: float
    mean_cosine: float
    n: int


def _second_moment(X: np.ndarray, mean: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """Scatter matrix of the centred rows in float64, on the smaller side (D x D, or the N x N Gram when N < D)."""
    n, d = X.shape
    if n < d:
        Xc = torch.from_numpy(X.astype(np.float64) - mean)
        return (Xc @ Xc.T).numpy()
    out = torch.zeros((d, d), dtype=torch.float64)
    mean_t = torch.from_numpy(mean)
    for start in range(0, n, chunk):
        part = torch.from_numpy(np.ascontiguousarray(X[start : start + chunk])).to(torch.float64) - mean_t
        out.addmm_(part.T, part)
    return out.numpy()


def _rows_and_norms(X: np.ndarray, measure: str) -> tuple[np.ndarray, np.ndarray]:
    """The validated rows and their float64 norms; InputError for fewer than 2 rows or an all-zero row (its cosine
    similarity is undefined)."""
    X = validate_representation(X)
    if X.shape[0] < 2:
        raise InputError(f"{measure} needs at least 2 rows, got {X.shape[0]}")
    norms = np.sqrt(np.einsum("ij,ij->i", X, X, dtype=np.float64))
    if np.any(norms == 0):
        raise InputError(f"row {int(np.flatnonzero(norms == 0)[0])} is all zeros: its cosine similarity is undefined")
    return X, norms


def anisotropy(X: np.ndarray) -> Anisotropy:
    """PC1 variance share of the centred rows and the mean pairwise cosine similarity of the rows."""
    X, norms = _rows_and_norms(X, "anisotropy")
    n = X.shape[0]
    mean = X.mean(axis=0, dtype=np.float64)
    scatter = _second_moment(X, mean)
    eigenvalues = np.linalg.eigvalsh(scatter)
    total = float(np.trace(scatter))
    pc1_share = float(eigenvalues[-1] / total) if total > 0 else float("nan")
    return Anisotropy(pc1_share=min(max(pc1_share, 0.0), 1.0) if total > 0 else pc1_share,
                      mean_cosine=_mean_cosine(X, norms), n=n)


def _mean_cosine(X: np.ndarray, norms: np.ndarray) -> float:
    n = X.shape[0]
    unit_sum = np.zeros(X.shape[1], dtype=np.float64)
    for start in range(0, n, 8192):
        unit_sum += (X[start : start + 8192] / norms[start : start + 8192, None]).sum(axis=0, dtype=np.float64)
    # Sum over ordered pairs i != j of cos = |sum of unit rows|^2 - n.
    return float((unit_sum @ unit_sum - n) / (n * (n - 1)))


def mean_cosine(X: np.ndarray) -> float:
    """Mean cosine similarity over all ordered pairs of distinct rows: the expected cosine of a random pair.

    Exact, in O(N D): no sampling of pairs. Raises InputError for fewer than 2 rows or an all-zero row.
    """
    X, norms = _rows_and_norms(X, "mean_cosine")
    return _mean_cosine(X, norms)
