"""Rule layer_graph: the exact k-nearest-neighbour graph of one layer, computed once and reused by every measure.

Rows kept: the dataset's keep-mask (identical inputs once) minus items whose representation is not finite (named
in the log). A layer with too few distinct points gets an 'undefined' graph file with the reason, which the
measures report as NaN instead of failing the run.
"""

from pathlib import Path
from typing import Any

import numpy as np
from _wf import logged, read_json

from hidden_geometry.atomic import atomic_path
from hidden_geometry.errors import InputError
from hidden_geometry.geometry import find_duplicates, knn_graph, save_graph


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


def main(snakemake: Any) -> None:
    with logged(snakemake) as log:
        import torch

        torch.set_num_threads(max(1, int(snakemake.threads)))
        layer = snakemake.wildcards.layer
        X = layer_rows(snakemake.input.embeddings, layer)
        ids = (Path(snakemake.input.embeddings) / "ids.txt").read_text(encoding="utf-8").splitlines()
        keep = np.load(snakemake.input.keep)
        if keep.shape[0] != X.shape[0]:
            raise InputError(f"{snakemake.input.keep}: {keep.shape[0]} rows for {X.shape[0]} representations")
        keep = finite_keep_mask(X, keep, ids, log)
        X = np.where(keep[:, None], X, 0.0).astype(X.dtype, copy=False)  # rows left out must not carry NaN either
        n_kept = int(find_duplicates(X[keep]).sum())  # distinct representations: what the graph can use
        k = min(int(snakemake.params.k), n_kept - 1)
        if k < int(snakemake.params.k):
            log.warning("only %d distinct points kept: k lowered from %d to %d", n_kept, snakemake.params.k, k)
        try:
            if k < 2:
                raise InputError(f"layer {layer}: {n_kept} distinct points kept, too few for a neighbour graph "
                                 "(ID undefined)")
            graph = knn_graph(X, k, metric=snakemake.params.metric, keep=keep, seed=snakemake.params.seed)
        except InputError as error:
            log.warning("layer %s: graph undefined: %s", layer, error)
            write_undefined_graph(snakemake.output.graph, str(error), n_kept)
            return
        log.info("layer %s: %d points, k=%d, %d duplicate rows removed", layer, len(graph.rows), graph.k,
                 graph.n_duplicates)
        save_graph(graph, snakemake.output.graph)


if __name__ == "__main__":
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
