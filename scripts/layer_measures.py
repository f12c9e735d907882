"""Rule layer_measures: every measure of one layer from its neighbour graph (and, for anisotropy, its rows).

TwoNN (with a decimation error bar), the Gride ID-versus-scale curve and its chosen scale, label overlap (with
the SCOPe family as exclusion group when the items have groups), anisotropy and the kNN probe.
"""

from pathlib import Path
from typing import Any

import numpy as np
from _wf import logged, write_json

from hidden_geometry import geometry, probes
from hidden_geometry.data.items import read_items
from hidden_geometry.errors import InputError


def read_graph(path: str | Path) -> tuple[Any | None, str | None, int]:
    """(graph, None, n_points), or (None, reason, n_points) for a layer whose graph is undefined."""
    with np.load(path, allow_pickle=False) as data:
        if "undefined_reason" in data.files:
            return None, str(data["undefined_reason"]), int(data["n_points"])
    graph = geometry.load_graph(path)
    return graph, None, len(graph.rows)


def labels_of(items: Any, column: str) -> tuple[np.ndarray | None, str | None]:
    """The label of each item (ORIGINAL row order), or None with the reason when the dataset has none."""
    if column not in items.columns:
        raise InputError(f"analyses: label_column {column!r} is not a column of the items table "
                         f"(columns: {', '.join(sorted(items.columns))})")
    labels = np.asarray(items.columns[column], dtype=object)
    if all(label == "" for label in labels):
        return None, f"the dataset has no '{column}' labels"
    return labels, None


def groups_of(items: Any, enabled: bool) -> np.ndarray | None:
    """Exclusion groups (SCOPe family) when enabled and present."""
    if not enabled or "group" not in items.columns or all(g == "" for g in items.columns["group"]):
        return None
    return np.asarray(items.columns["group"], dtype=object)


def measure_layer(graph: Any, X: np.ndarray, labels: np.ndarray | None, groups: np.ndarray | None,
                  params: Any) -> dict[str, Any]:
    """Every measure of one layer (the graph is the only neighbour search)."""
    rows = np.asarray(X[np.sort(graph.rows)], dtype=np.float64)
    k = min(int(params.k), graph.k)
    result: dict[str, Any] = {
        "n_points": len(graph.rows),
        "n_duplicates": int(graph.n_duplicates),
        "graph_k": int(graph.k),
        "k": k,
        "twonn": geometry.twonn(graph, fraction=params.twonn_fraction),
        "twonn_decimation": geometry.twonn_decimation(graph, X=X, n_iter=params.decimation_repeats,
                                                      fraction=params.twonn_fraction, seed=params.seed),
        "gride": geometry.gride(graph),
        "anisotropy": geometry.anisotropy(rows),
    }
    if labels is not None:
        result["label_overlap"] = geometry.label_overlap(graph, labels, k=k, exclude_groups=groups)
        result["knn_probe"] = probes.knn_probe(graph, labels, k=k)
    return result


def main(snakemake: Any) -> None:
    with logged(snakemake) as log:
        layer = int(snakemake.wildcards.layer)
        items = read_items(snakemake.input.table)
        labels, label_reason = labels_of(items, snakemake.params.label_column)
        groups = groups_of(items, snakemake.params.exclude_groups)
        graph, reason, n_points = read_graph(snakemake.input.graph)
        out: dict[str, Any] = {"layer": layer, "label_column": snakemake.params.label_column,
                               "label_reason": label_reason, "exclude_groups": groups is not None}
        if graph is None:
            log.warning("layer %d undefined: %s", layer, reason)
            out.update(undefined_reason=reason, n_points=n_points)
        else:
            X = np.load(Path(snakemake.input.embeddings) / f"layer_{layer:03d}.npy")
            out.update(measure_layer(graph, X, labels, groups, snakemake.params), undefined_reason=None)
            log.info("layer %d: TwoNN %.3f, n=%d", layer, out["twonn"].id, out["n_points"])
        write_json(snakemake.output.measures, out)


if __name__ == "__main__":
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
