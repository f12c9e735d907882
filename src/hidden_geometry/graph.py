"""The neighbour graph of a layer as plain data: `NeighbourGraph` (the exact k nearest neighbours of its points) or
`UndefinedGraph` (why the layer has none).

numpy only, so that `io` (the graph files) and every workflow environment can import it; the graph itself is built
by `geometry.neighbours.knn_graph`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InputError

METRICS = ("euclidean", "cosine")


def check_k(k: int | None, available: int, what: str) -> int:
    """Return `k` (default `available`) after checking 1 <= k <= available."""
    if k is None:
        return int(available)
    if isinstance(k, bool) or int(k) != k or k < 1:
        raise InputError(f"k must be a positive integer, got {k!r}")
    if k > available:
        raise InputError(f"k={k} is larger than the {available} neighbours stored in the {what}")
    return int(k)


@dataclass(frozen=True, eq=False)
class NeighbourGraph:
    """The exact k nearest neighbours of the points kept.

    rows: int64 [M], original row numbers of the points kept (keep-mask and duplicate removal applied).
    indices: int64 [M, k], neighbours in ORIGINAL row numbering, self excluded, ascending distance, ties by index.
    distances: float64 [M, k], exact (Euclidean distance, or cosine distance 1 - cos).
    n_duplicates: rows removed because they repeat an earlier kept row exactly.
    n_input: number of rows of the input array (labels indexed by original row number have this length).
    """

    rows: np.ndarray
    indices: np.ndarray
    distances: np.ndarray
    n_duplicates: int
    k: int
    metric: str
    n_input: int = -1

    @property
    def n_points(self) -> int:
        """Number of points in the graph (M)."""
        return int(self.rows.shape[0])

    def truncated(self, k: int) -> "NeighbourGraph":
        """The same graph keeping only the first `k` neighbours of each point."""
        k = check_k(k, self.k, "graph")
        return NeighbourGraph(
            self.rows, self.indices[:, :k], self.distances[:, :k], self.n_duplicates, k, self.metric, self.n_input
        )

    def to_dict(self) -> dict[str, Any]:
        """A summary, not the record of the fields: the arrays are left out (a graph file holds them) and the
        number of points is added."""
        return {
            "n_points": self.n_points,
            "n_input": int(self.n_input),
            "n_duplicates": int(self.n_duplicates),
            "k": int(self.k),
            "metric": self.metric,
        }


@dataclass(frozen=True)
class UndefinedGraph:
    """A layer without a neighbour graph: why, and how many distinct points it had."""

    reason: str
    n_points: int
