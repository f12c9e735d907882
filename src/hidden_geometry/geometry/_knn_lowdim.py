"""Exact k nearest neighbours of low-dimensional rows (at most `LOW_DIM` features) with a k-d tree.

Why: the blocked engine (`_knn_cpu`) certifies its candidate pools with a bound on the rounding error of float32
or bfloat16 dot products, an error that scales with the squared norms. With one or two features, neighbours are
far closer than the norms (spacing ~ 1/N on a line), the bound certifies almost no row, and every row went to the
float64 brute force: quadratic (136 s for N = 32,000 x 1). A k-d tree in float64 finds candidates in
O(N log N); the same float64 re-rank (`_knn_cpu.rank_pools`: exact squared distances, ties by index) orders them,
and a row whose pool cannot be certified (ties at the pool's edge) takes every point within its k-th distance from
the tree instead, so the result is the same exact graph as the other engines give.
The same happens to data of few intrinsic dimensions in a wider space (a line in 16-D: 6,977 of 8,000 rows were
uncertified): `_knn_cpu.cpu_graph` sends many uncertified rows to `tree_rows` instead of the brute force.
"""

from __future__ import annotations

import numpy as np

from ._knn_cpu import _DIST_SLACK, default_pool, rank_pools

LOW_DIM = 3


def tree_graph(E: np.ndarray, k: int, threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(indices [n, k], float64 squared distances [n, k]) of every row of E among the others (rows distinct)."""
    n = E.shape[0]
    return tree_rows(E, np.arange(n, dtype=np.int64), np.arange(n, dtype=np.int64), k, threads)


def tree_rows(E: np.ndarray, queries: np.ndarray, names: np.ndarray, k: int,
              threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest (names of the neighbours, float64 squared distances) of the rows E[queries] among all rows
    (self excluded; rows distinct), ties by name, like `_knn_cpu.brute_force_rows` but in about O(log N) a row
    where the data has few intrinsic dimensions (a k-d tree prunes by coordinates)."""
    from scipy.spatial import cKDTree

    n = E.shape[0]
    points = np.asarray(E, dtype=np.float64)
    tree = cKDTree(points)
    width = min(n - 1, k + default_pool(k, "float32"))
    dist, pool = tree.query(points[queries], k=width + 1, workers=max(1, threads))
    pool = np.asarray(pool, dtype=np.int64).reshape(queries.size, width + 1)
    dist = np.asarray(dist, dtype=np.float64).reshape(queries.size, width + 1)
    pool[pool == queries[:, None]] = -1  # the point itself (its only copy: duplicates were removed)
    idx, sq = rank_pools(E, queries, pool, names, k, threads)
    if width >= n - 1:
        return idx, sq  # every other point was in the pool
    edge = dist[:, width] ** 2  # no point outside the pool is closer than this
    unsure = np.flatnonzero(~(edge > sq[:, k - 1] * (1.0 + _DIST_SLACK)))
    if unsure.size:
        rows = queries[unsure]
        radius = np.sqrt(sq[unsure, k - 1] * (1.0 + 2 * _DIST_SLACK)) * (1.0 + 1e-12)
        balls = tree.query_ball_point(points[rows], radius, workers=max(1, threads))
        widest = max(len(ball) for ball in balls)
        wide = np.full((rows.size, widest), -1, dtype=np.int64)
        for i, ball in enumerate(balls):
            wide[i, : len(ball)] = ball
        wide[wide == rows[:, None]] = -1
        idx[unsure], sq[unsure] = rank_pools(E, rows, wide, names, k, threads)
    return idx, sq
