"""Rule layer_geometry: one layer's exact neighbour graph, computed once and saved, then every measure from it.

The graph (graphs/layer_XXX.npz) keeps the dataset's keep-mask rows (identical inputs once) minus items whose
representation is not finite (named in the log); the summary reuses it for the overlap between consecutive layers.
A layer with too few distinct points gets an 'undefined' graph file with the reason, and its measures are NaN
with that reason instead of failing the run.
Measures (measures/layer_XXX.json): TwoNN with a decimation error bar, the Gride ID-versus-scale curve and its
chosen scale, label overlap (the `group` column, e.g. the SCOPe family, as exclusion group), anisotropy and the
kNN probe.
"""

from pathlib import Path
from typing import Any

import numpy as np
from _wf import logged, write_json

from hidden_geometry import geometry, probes
from hidden_geometry.atomic import atomic_path
from hidden_geometry.data.items import read_items
from hidden_geometry.errors import InputError


def layer_rows(embeddings: str | Path, layer: str) -> np.ndarray:
    """The layer's representations, memory-mapped (float32 [N, D])."""
    return np.load(Path(embeddings) / f"layer_{layer}.npy", mmap_mode="r")


def finite_keep_mask(X: np.ndarray, keep: np.ndarray, ids: list[str], log: Any) -> np.ndarray:
    """`keep` minus rows with NaN or inf (named in the log: fp16 overflow that extraction could not repair)."""
    finite = np.isfinite(X).all(axis=1)
    bad = np.flatnonzero(keep & ~finite)
    if bad.size:
        log.warning("excluding %d items with non-finite values: %s", bad.size, ", ".join(ids[i] for i in bad[:20]))
    return keep & finite


def write_undefined_graph(path: str | Path, reason: str, n_points: int) -> None:
    """A graph file that says why this layer has no graph (the measures then report NaN with the reason)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, undefined_reason=np.array(reason), n_points=np.array(n_points, dtype=np.int64))


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
        "twonn_decimation": decimation(graph, X, params),
        "gride": geometry.gride(graph),
        "anisotropy": geometry.anisotropy(rows),
    }
    if labels is not None:
        result["label_overlap"] = geometry.label_overlap(graph, labels, k=k, exclude_groups=groups)
        result["knn_probe"] = probes.knn_probe(graph, labels, k=k)
    return result


def decimation(graph: Any, X: np.ndarray, params: Any) -> Any:
    """TwoNN over random half-subsets (the error bar); with too few points, no error bar and the reason."""
    try:
        return geometry.twonn_decimation(graph, X=X, n_iter=params.decimation_repeats, fraction=params.twonn_fraction,
                                         seed=params.seed)
    except InputError as error:
        return {"id": None, "err": None, "reason": str(error)}


def build_graph(X: np.ndarray, keep: np.ndarray, ids: list[str], params: Any, layer: str, log: Any) -> Any:
    """The layer's graph over kept, finite, distinct rows, or (None, reason, n_points) when it is undefined."""
    keep = finite_keep_mask(X, keep, ids, log)  # knn_graph checks only the kept rows, so NaN rows may stay in X
    n_kept = int(geometry.find_duplicates(X[keep]).sum())  # distinct representations: what the graph can use
    k = min(int(params.graph_k), n_kept - 1)
    if k < int(params.graph_k):
        log.warning("only %d distinct points kept: graph k lowered from %d to %d", n_kept, params.graph_k, k)
    if k < 2:
        return None, f"layer {layer}: {n_kept} distinct points kept, too few for a neighbour graph (ID undefined)", n_kept
    try:
        return geometry.knn_graph(X, k, metric=params.metric, keep=keep, seed=params.seed), None, n_kept
    except InputError as error:
        return None, str(error), n_kept


def main(snakemake: Any) -> None:
    with logged(snakemake) as log:
        import torch

        torch.set_num_threads(max(1, int(snakemake.threads)))
        layer = snakemake.wildcards.layer
        params = snakemake.params
        X = layer_rows(snakemake.input.embeddings, layer)
        ids = (Path(snakemake.input.embeddings) / "ids.txt").read_text(encoding="utf-8").splitlines()
        keep = np.load(snakemake.input.keep)
        if keep.shape[0] != X.shape[0]:
            raise InputError(f"{snakemake.input.keep}: {keep.shape[0]} rows for {X.shape[0]} representations")
        items = read_items(snakemake.input.table)
        labels, label_reason = labels_of(items, params.label_column)
        groups = groups_of(items, params.exclude_groups)
        graph, reason, n_points = build_graph(X, keep, ids, params, layer, log)
        out: dict[str, Any] = {"layer": int(layer), "label_column": params.label_column,
                               "label_reason": label_reason, "exclude_groups": groups is not None}
        if graph is None:
            log.warning("layer %s: graph undefined: %s", layer, reason)
            write_undefined_graph(snakemake.output.graph, reason, n_points)
            out.update(undefined_reason=reason, n_points=n_points)
        else:
            log.info("layer %s: %d points, k=%d, %d duplicate rows removed", layer, len(graph.rows), graph.k,
                     graph.n_duplicates)
            measures = measure_layer(graph, X, labels, groups, params)
            geometry.save_graph(graph, snakemake.output.graph)
            out.update(measures, undefined_reason=None)
            log.info("layer %s: TwoNN %.3f, Gride %.3f", layer, out["twonn"].id, out["gride"].id)
        write_json(snakemake.output.measures, out)


if __name__ == "__main__":
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
