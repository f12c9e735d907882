"""Rule layer_geometry: one layer's graph (graphs/layer_XXX.npz) and measures (measures/layer_XXX.json).

Every decision (rows measured, graph k, undefined layers, the measures) is `hidden_geometry.analysis.measure_layer`.
"""

from pathlib import Path
from typing import Any

import numpy as np
from _wf import logged

from hidden_geometry import analysis
from hidden_geometry.data.items import read_items
from hidden_geometry.embeddings import load_token_sample
from hidden_geometry.errors import InputError
from hidden_geometry.io import write_graph_file, write_json


def main(snakemake: Any) -> None:
    with logged(snakemake):
        import torch

        torch.set_num_threads(max(1, int(snakemake.threads)))
        layer, params = snakemake.wildcards.layer, snakemake.params
        X = np.load(Path(snakemake.input.embeddings) / f"layer_{layer}.npy", mmap_mode="r")
        ids = (Path(snakemake.input.embeddings) / "ids.txt").read_text(encoding="utf-8").splitlines()
        keep = np.load(snakemake.input.keep)
        if keep.shape[0] != X.shape[0]:
            raise InputError(f"{snakemake.input.keep}: {keep.shape[0]} rows for {X.shape[0]} representations")
        items = read_items(snakemake.input.table)
        labels, label_reason = analysis.item_labels(items, params.label_column)
        measures = analysis.measure_layer(
            X, keep, labels, analysis.item_groups(items, params.exclude_groups), graph_k=params.graph_k, k=params.k,
            metric=params.metric, twonn_fraction=params.twonn_fraction, decimation_repeats=params.decimation_repeats,
            seed=params.seed, ids=ids, layer=layer, label_reason=label_reason,
            tokens=load_token_sample(snakemake.input.embeddings, int(layer)))
        write_graph_file(snakemake.output.graph, measures.graph)
        write_json(snakemake.output.measures, {"layer": int(layer), "label_column": params.label_column,
                                               **measures.to_dict()})


if __name__ == "__main__":
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
