"""Small generators of data with a known intrinsic dimension, embedded by a fixed random rotation."""

from __future__ import annotations

import numpy as np


def embed(Z: np.ndarray, dim: int, rng: np.random.Generator) -> np.ndarray:
    """Z [n, d] placed in `dim` >= d dimensions by a random rotation."""
    q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    padded = np.zeros((Z.shape[0], dim))
    padded[:, : Z.shape[1]] = Z
    return padded @ q.T


def hypercube(n: int, d: int, dim: int, seed: int = 0) -> np.ndarray:
    """Uniform points of the unit d-cube in `dim` dimensions (ID d)."""
    rng = np.random.default_rng(seed)
    return embed(rng.uniform(size=(n, d)), dim, rng)


def gaussian(n: int, d: int, dim: int, seed: int = 0) -> np.ndarray:
    """Standard normal points of a d-dimensional subspace of `dim` dimensions (ID d)."""
    rng = np.random.default_rng(seed)
    return embed(rng.standard_normal((n, d)), dim, rng)


def sphere(n: int, d: int, dim: int, seed: int = 0) -> np.ndarray:
    """Uniform points of the d-sphere (in R^(d+1)) in `dim` dimensions (ID d)."""
    rng = np.random.default_rng(seed)
    g = rng.standard_normal((n, d + 1))
    return embed(g / np.linalg.norm(g, axis=1, keepdims=True), dim, rng)


def swiss_roll(n: int, seed: int = 0) -> np.ndarray:
    """The swiss roll in 3 dimensions (ID 2)."""
    rng = np.random.default_rng(seed)
    t = 1.5 * np.pi * (1 + 2 * rng.uniform(size=n))
    h = 21.0 * rng.uniform(size=n)
    return np.column_stack([t * np.cos(t), h, t * np.sin(t)])


def brute_force_knn(X: np.ndarray, k: int, metric: str = "euclidean") -> tuple[np.ndarray, np.ndarray]:
    """Reference k nearest neighbours by the full float64 distance matrix: (indices, distances), ties by index."""
    E = np.asarray(X, dtype=np.float64)
    if metric == "cosine":
        E = E / np.linalg.norm(E, axis=1, keepdims=True)
    sq = ((E[:, None, :] - E[None, :, :]) ** 2).sum(axis=2)
    np.fill_diagonal(sq, np.inf)
    n = E.shape[0]
    order = np.lexsort((np.broadcast_to(np.arange(n), (n, n)), sq), axis=-1)[:, :k]
    d = np.sqrt(np.take_along_axis(sq, order, axis=1))
    return order, (0.5 * d**2 if metric == "cosine" else d)
