"""Neighbourhood overlap chi_k between two representations, and with labels (Doimo et al. 2020).

- `neighbourhood_overlap(a, b, k)`: mean over the points present in both graphs of |N_a(i) & N_b(i)| / k, where
  N(i) are the first k neighbours (original row numbers). Build both graphs with the same keep-mask so that they
  hold the same points; identical representations give 1, independent ones about k / N.
- `overlap_matrix(graphs, k)`: chi_k between every pair of layers (the paper's full matrix chi(l, m)); NaN where
  a layer has no graph.
- `label_overlap(graph, labels, k)`: mean over points of the fraction of their first k neighbours that share the
  point's label (unweighted as in the paper; `class_balanced=True` averages the per-class means instead). With
  `exclude_groups` (e.g. the SCOPe family of each row), neighbours in the point's own group are skipped and the
  next ones taken, for remote homology; an empty group ("" or None) excludes nothing. An unlabelled point
  (`hidden_geometry.data.labels.is_unlabelled`: empty, blank, None or NaN) is not scored, and an unlabelled
  neighbour is skipped like an excluded one: a missing label is never one more class.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..errors import InputError
from ..io import RECORD_KEY, Record
from .neighbours import NeighbourGraph, check_k


def _row_positions(graph: NeighbourGraph, rows: np.ndarray) -> np.ndarray:
    """Positions of original row numbers `rows` in the graph (all must be present)."""
    order = np.argsort(graph.rows, kind="stable")
    pos = np.searchsorted(graph.rows, rows, sorter=order)
    return order[pos]


def shared_counts(a: np.ndarray, b: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Per row, how many values the int arrays a[i] and b[i] share (values within one row are distinct).

    Rows are processed a few thousand at a time: the temporaries stay in cache (5x faster at N = 50,000).
    """
    out = np.empty(a.shape[0], dtype=np.int64)
    for start in range(0, a.shape[0], chunk):
        both = np.sort(np.concatenate([a[start : start + chunk], b[start : start + chunk]], axis=1), axis=1)
        out[start : start + chunk] = np.count_nonzero(both[:, 1:] == both[:, :-1], axis=1)
    return out


def neighbourhood_overlap_per_point(
    graph_a: NeighbourGraph, graph_b: NeighbourGraph, k: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(rows present in both graphs, fraction of shared first-k neighbours of each)."""
    k = check_k(k, min(graph_a.k, graph_b.k), "graphs") if k is not None else min(graph_a.k, graph_b.k)
    common = np.intersect1d(graph_a.rows, graph_b.rows)
    if common.size == 0:
        raise InputError("the two graphs share no rows: build them from the same inputs (same keep-mask)")
    ia = _row_positions(graph_a, common)
    ib = _row_positions(graph_b, common)
    shared = shared_counts(graph_a.indices[ia, :k], graph_b.indices[ib, :k])
    return common, shared / k


def neighbourhood_overlap(graph_a: NeighbourGraph, graph_b: NeighbourGraph, k: int | None = None) -> float:
    """chi_k: mean fraction of shared first-k neighbours over the rows present in both graphs."""
    _, fractions = neighbourhood_overlap_per_point(graph_a, graph_b, k)
    return float(np.mean(fractions))


def overlap_matrix(graphs: Sequence[NeighbourGraph | None], k: int) -> np.ndarray:
    """chi_k(l, m) for every pair of layers: float64 [L, L], symmetric, 1 on the diagonal of defined layers.

    k is lowered to the smaller graph's k for a pair where a graph holds fewer neighbours; a layer given as None
    (no graph: too few distinct points) has NaN in its row and column.
    """
    n = len(graphs)
    out = np.full((n, n), np.nan)
    for i, a in enumerate(graphs):
        if a is None:
            continue
        out[i, i] = 1.0
        for j in range(i + 1, n):
            b = graphs[j]
            if b is not None:
                out[i, j] = out[j, i] = neighbourhood_overlap(a, b, k=min(int(k), a.k, b.k))
    return out


@dataclass(frozen=True)
class LabelOverlap(Record):
    """Label overlap with its evidence: points used, points with fewer than k eligible neighbours in the graph."""

    value: float = field(metadata={RECORD_KEY: "overlap"})
    k: int
    n_points: int
    n_short: int
    n_without_neighbours: int
    class_balanced: bool
    excluded_groups: bool
    n_unlabelled: int = 0
    reason: str = ""


def _codes(values: Sequence[Any] | np.ndarray, graph: NeighbourGraph, what: str) -> np.ndarray:
    """Integer codes of per-row values indexed by original row number (length n_input)."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise InputError(f"{what} must be one value per row, got shape {arr.shape}")
    needed = graph.n_input if graph.n_input > 0 else int(graph.rows.max()) + 1
    if arr.shape[0] != needed and not (graph.n_input <= 0 and arr.shape[0] >= needed):
        raise InputError(f"{what}: {arr.shape[0]} values for {needed} rows (indexed by original row number)")
    _, codes = np.unique(arr.astype(str) if arr.dtype == object else arr, return_inverse=True)
    return codes.reshape(-1)


def _empty_group_mask(groups: Sequence[Any] | np.ndarray) -> np.ndarray:
    arr = np.asarray(groups, dtype=object)
    return np.array([g is None or (isinstance(g, str) and g == "") for g in arr], dtype=bool)


def _label_within_group(codes: np.ndarray, group_codes: np.ndarray, no_group: np.ndarray) -> str:
    """Why label overlap with group exclusion is 0 by construction, or "": every labelled point has a group and
    each label class lies within one group (the label is the group, e.g. `family` with SCOPe's family groups)."""
    if codes.size == 0 or no_group.any():
        return ""
    pairs = np.unique(np.stack([codes, group_codes]), axis=1).shape[1]
    if pairs != np.unique(codes).size:
        return ""
    return ("undefined: each label lies within one exclusion group, so every same-label neighbour is excluded "
            "(0 by construction); label by another column or do not exclude groups")


def label_overlap_details(
    graph: NeighbourGraph,
    labels: Sequence[Any] | np.ndarray,
    k: int | None = None,
    exclude_groups: Sequence[Any] | np.ndarray | None = None,
    class_balanced: bool = False,
) -> LabelOverlap:
    """Label overlap chi_k^gt with its evidence (see the module docstring)."""
    from ..data.labels import unlabelled_mask

    k = check_k(k, graph.k, "graph")
    codes = _codes(labels, graph, "labels")
    unlabelled = unlabelled_mask(np.asarray(labels))
    neighbours = graph.indices
    if exclude_groups is not None or unlabelled.any():
        eligible = ~unlabelled[neighbours]
        if exclude_groups is not None:
            group_codes = _codes(exclude_groups, graph, "exclude_groups")
            no_group = _empty_group_mask(exclude_groups)
            own = group_codes[graph.rows][:, None]
            eligible &= ~((group_codes[neighbours] == own) & ~no_group[graph.rows][:, None])
        rank = np.cumsum(eligible, axis=1)
        used = eligible & (rank <= k)
    else:
        used = np.zeros(neighbours.shape, dtype=bool)
        used[:, :k] = True
    scored = ~unlabelled[graph.rows]
    if exclude_groups is not None:
        reason = _label_within_group(codes[graph.rows][scored], group_codes[graph.rows][scored],
                                     no_group[graph.rows][scored])
        if reason:
            return LabelOverlap(float("nan"), k, 0, 0, 0, class_balanced, True, int(np.sum(~scored)), reason)
    n_used = np.where(scored, used.sum(axis=1), 0)
    same = (codes[neighbours] == codes[graph.rows][:, None]) & used
    has = n_used > 0
    per_point = same.sum(axis=1)[has] / n_used[has]
    if per_point.size == 0:
        if not scored.any():
            raise InputError("label overlap: every point is unlabelled")
        raise InputError("label overlap: no point has an eligible neighbour (all neighbours excluded or unlabelled)")
    if class_balanced:
        point_classes = codes[graph.rows][has]
        means = [per_point[point_classes == c].mean() for c in np.unique(point_classes)]
        value = float(np.mean(means))
    else:
        value = float(np.mean(per_point))
    return LabelOverlap(
        value=value,
        k=k,
        n_points=int(has.sum()),
        n_short=int(np.sum(n_used[scored] < k)),
        n_without_neighbours=int(np.sum(~has & scored)),
        class_balanced=class_balanced,
        excluded_groups=exclude_groups is not None,
        n_unlabelled=int(np.sum(~scored)),
    )


def label_overlap(
    graph: NeighbourGraph,
    labels: Sequence[Any] | np.ndarray,
    k: int | None = None,
    exclude_groups: Sequence[Any] | np.ndarray | None = None,
    class_balanced: bool = False,
) -> float:
    """chi_k^gt: mean fraction of each point's first k (eligible) neighbours that share its label.

    labels (and exclude_groups) are indexed by ORIGINAL row number. With exclusion, a point whose graph list has
    fewer than k eligible neighbours uses those it has (see `label_overlap_details` for the counts); build the
    graph with k larger than the biggest group to avoid that.
    """
    return label_overlap_details(graph, labels, k, exclude_groups, class_balanced).value
