"""One layer: which rows are measured, its neighbour graph (or why it has none), every measure, the linear probe.

The decisions of a layer live here, so that a notebook reproduces a row of the workflow's `layers.tsv` with
library calls alone:
- rows measured: the keep-mask (identical inputs once, see `inputs.identical_input_mask`) minus rows that are not
  finite (fp16 overflow that extraction could not repair; named in a warning);
- graph k: `graph_k` lowered to the distinct points minus one (`distinct_k`, with a warning); under 2 neighbours,
  or when the graph cannot be built, the layer is undefined (`UndefinedGraph` with the reason) and its measures are
  NaN with that reason instead of failing;
- every measure comes from the one graph: TwoNN, its decimation error bar (None with the reason when the layer is
  too small for half-subsets), the Gride curve, label overlap and the kNN probe with k = min(k, graph k); the
  anisotropy from the measured rows;
- the linear probe runs on the kept, finite rows (a seeded subsample of `max_items`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .. import geometry, probes
from ..data.labels import is_unlabelled
from ..errors import InputError
from ..graph import UndefinedGraph
from .defaults import (  # noqa: F401 - the config's defaults, keyword defaults here and re-exported
    DECIMATION_REPEATS,
    FOLDS,
    GRAPH_K,
    MAX_ITEMS,
    METRIC,
    SEED,
    TWONN_FRACTION,
    K,
)

log = logging.getLogger(__name__)


def distinct_k(X: np.ndarray, k: int, keep: np.ndarray | None = None) -> tuple[int, int]:
    """(k lowered to the distinct kept rows minus one, number of distinct kept rows).

    The graph drops exact duplicates, so at most (distinct rows - 1) neighbours exist for a point.
    """
    rows = np.asarray(X) if keep is None else np.asarray(X)[np.asarray(keep, dtype=bool)]
    n_distinct = int(geometry.find_duplicates(rows).sum()) if len(rows) else 0
    return min(int(k), n_distinct - 1), n_distinct


def finite_keep_mask(X: np.ndarray, keep: np.ndarray | None = None, ids: Sequence[str] | None = None) -> np.ndarray:
    """`keep` (all rows when None) minus rows holding NaN or inf; the rows dropped are named in a warning."""
    keep = np.ones(X.shape[0], dtype=bool) if keep is None else np.asarray(keep, dtype=bool)
    if keep.shape != (X.shape[0],):
        raise InputError(f"keep-mask: {keep.shape[0]} rows for {X.shape[0]} representations")
    finite = np.isfinite(X).all(axis=1)
    bad = np.flatnonzero(keep & ~finite)
    if bad.size:
        names = [ids[i] if ids is not None else str(i) for i in bad[:20]]
        log.warning("excluding %d items with non-finite values: %s", bad.size, ", ".join(names))
    return keep & finite


def layer_graph(X: np.ndarray, keep: np.ndarray | None = None, *, graph_k: int = GRAPH_K, metric: str = METRIC,
                seed: int = SEED, ids: Sequence[str] | None = None, layer: int | str = 0) -> Any:
    """The layer's exact neighbour graph over its kept, finite, distinct rows, or an `UndefinedGraph` saying why."""
    keep = finite_keep_mask(X, keep, ids)  # knn_graph checks only the kept rows, so NaN rows may stay in X
    k, n_kept = distinct_k(X, graph_k, keep)
    if k < int(graph_k):
        log.warning("only %d distinct points kept: graph k lowered from %d to %d", n_kept, graph_k, k)
    if k < 2:
        return UndefinedGraph(f"layer {layer}: {n_kept} distinct points kept, too few for a neighbour graph "
                              "(ID undefined)", n_kept)
    try:
        return geometry.knn_graph(X, k, metric=metric, keep=keep, seed=seed)
    except InputError as error:
        return UndefinedGraph(str(error), n_kept)


@dataclass(frozen=True)
class LayerMeasures:
    """Every measure of one layer. `graph` is the layer's `NeighbourGraph` or `UndefinedGraph` (not in `to_dict`);
    the measures are None when the graph is undefined (`undefined_reason`) and the label measures are None when
    there are no labels (`label_reason`)."""

    graph: Any
    n_points: int
    exclude_groups: bool
    label_reason: str | None = None
    undefined_reason: str | None = None
    n_duplicates: int | None = None
    graph_k: int | None = None
    k: int | None = None
    twonn: Any = None
    twonn_decimation: Any = None
    gride: Any = None
    anisotropy: Any = None
    label_overlap: float | None = None
    knn_probe: Any = None
    measures: Any = None  # geometry.layer_measures: the five measures of docs/measures.md

    def to_dict(self) -> dict[str, Any]:
        """The measures JSON of the workflow (measures/layer_XXX.json, less `layer` and `label_column`). Not the
        record of the fields (`io.as_record`): the graph is left out, and so are the measures an undefined layer or an
        unlabelled dataset does not have."""
        out: dict[str, Any] = {"n_points": self.n_points, "exclude_groups": self.exclude_groups,
                               "label_reason": self.label_reason, "undefined_reason": self.undefined_reason}
        if self.undefined_reason is None:
            out.update(n_duplicates=self.n_duplicates, graph_k=self.graph_k, k=self.k, twonn=self.twonn,
                       twonn_decimation=self.twonn_decimation, gride=self.gride, anisotropy=self.anisotropy,
                       measures=self.measures)
            if self.label_overlap is not None:
                out.update(label_overlap=self.label_overlap, knn_probe=self.knn_probe)
        return out


def decimation(graph: Any, X: np.ndarray, *, decimation_repeats: int, twonn_fraction: float, seed: int) -> Any:
    """TwoNN over random half-subsets (the error bar); with too few points, no error bar and the reason."""
    try:
        return geometry.twonn_decimation(graph, X=X, n_iter=decimation_repeats, fraction=twonn_fraction, seed=seed)
    except InputError as error:
        return {"id": None, "err": None, "reason": str(error)}


def measure_layer(X: np.ndarray, keep: np.ndarray | None = None, labels: Sequence[Any] | None = None,
                  groups: Sequence[Any] | None = None, *, graph_k: int = GRAPH_K, k: int = K, metric: str = METRIC,
                  twonn_fraction: float = TWONN_FRACTION, decimation_repeats: int = DECIMATION_REPEATS,
                  seed: int = SEED, ids: Sequence[str] | None = None, layer: int | str = 0,
                  label_reason: str | None = None, tokens: np.ndarray | None = None) -> LayerMeasures:
    """Every measure of one layer from its rows X [N, D] (row order of the items; `keep` selects the rows used).

    `labels` (one per row, or None: no label measures, `label_reason` says why) and `groups` (exclusion groups of
    the label overlap, or None) follow the rows of X. The graph is the only neighbour search. `tokens`: the layer's
    token sample (models.token_sample) for token_anisotropy, or None (then NaN with the reason).
    """
    graph = layer_graph(X, keep, graph_k=graph_k, metric=metric, seed=seed, ids=ids, layer=layer)
    exclude = groups is not None
    if isinstance(graph, UndefinedGraph):
        log.warning("layer %s: graph undefined: %s", layer, graph.reason)
        return LayerMeasures(graph, graph.n_points, exclude, label_reason, undefined_reason=graph.reason)
    log.info("layer %s: %d points, k=%d, %d duplicate rows removed", layer, len(graph.rows), graph.k,
             graph.n_duplicates)
    rows = np.asarray(X[np.sort(graph.rows)], dtype=np.float64)
    k_used = min(int(k), graph.k)
    measures: dict[str, Any] = {}
    if labels is not None:
        labels = np.asarray(labels, dtype=object)
        groups = None if groups is None else np.asarray(groups, dtype=object)
        measures.update(label_overlap=geometry.label_overlap(graph, labels, k=k_used, exclude_groups=groups),
                        knn_probe=probes.knn_probe(graph, labels, k=k_used))
    result = LayerMeasures(
        graph, len(graph.rows), exclude, label_reason, None, int(graph.n_duplicates), int(graph.k), k_used,
        twonn=geometry.twonn(graph, fraction=twonn_fraction),
        twonn_decimation=decimation(graph, X, decimation_repeats=decimation_repeats, twonn_fraction=twonn_fraction,
                                    seed=seed),
        gride=geometry.gride(graph), anisotropy=geometry.anisotropy(rows),
        measures=geometry.layer_measures(rows, tokens=tokens, seed=seed), **measures)
    log.info("layer %s: TwoNN %.3f, Gride %.3f", layer, result.twonn.id, result.gride.id)
    return result


def probe_rows(X: np.ndarray, keep: np.ndarray | None = None, max_items: int | None = MAX_ITEMS,
               seed: int = SEED) -> np.ndarray:
    """Indices of the rows probed: kept and finite, optionally a seeded subsample (sorted, input order)."""
    keep = np.ones(X.shape[0], dtype=bool) if keep is None else np.asarray(keep, dtype=bool)
    rows = np.flatnonzero(keep & np.isfinite(X).all(axis=1))
    if max_items is not None and rows.size > max_items:
        rows = np.sort(np.random.default_rng(seed).choice(rows, size=max_items, replace=False))
    return rows


def probe_layer(X: np.ndarray, labels: Sequence[Any] | None, keep: np.ndarray | None = None, *, folds: int = FOLDS,
                max_items: int | None = MAX_ITEMS, seed: int = SEED, label_column: str = "label") -> dict[str, Any]:
    """The linear probe of one layer: {"n_items", "probe"} where probe is a `ProbeResult`, or mean None with the
    reason when the probed items have no `label_column` labels."""
    rows = probe_rows(X, keep, max_items, seed)
    chosen = None if labels is None else np.asarray(labels, dtype=object)[rows]
    if chosen is None or all(is_unlabelled(label) for label in chosen):
        out: Any = {"mean": None, "std": None, "n_folds": 0, "reason": f"the dataset has no '{label_column}' labels"}
    else:
        out = probes.linear_probe(np.asarray(X[rows], dtype=np.float64), chosen, folds=folds, seed=seed)
    return {"n_items": int(rows.size), "probe": out}
