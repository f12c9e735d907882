"""Rule linear_probe: one layer's linear-probe accuracy (`hidden_geometry.analysis.probe_layer`)."""

from pathlib import Path
from typing import Any

import numpy as np
from _wf import logged

from hidden_geometry import analysis
from hidden_geometry.data.items import read_items
from hidden_geometry.errors import InputError
from hidden_geometry.io import write_json


def main(snakemake: Any) -> None:
    with logged(snakemake) as log:
        import torch

        torch.set_num_threads(max(1, int(snakemake.threads)))  # the rule's threads, not every core
        layer, params = int(snakemake.wildcards.layer), snakemake.params
        items = read_items(snakemake.input.table)
        if params.label_column not in items.columns:
            raise InputError(f"analyses: label_column {params.label_column!r} is not a column of "
                             f"{snakemake.input.table}")
        X = np.load(Path(snakemake.input.embeddings) / f"layer_{layer:03d}.npy", mmap_mode="r")
        keep = np.load(snakemake.input.keep)
        labels = items.columns[params.label_column]
        out = analysis.probe_layer(X, labels, keep, folds=params.folds, max_items=params.max_items, seed=params.seed,
                                   label_column=params.label_column)
        log.info("layer %d: linear probe on %d items: %s", layer, out["n_items"], out["probe"])
        write_json(snakemake.output.probe, {"layer": layer, "label_column": params.label_column, **out})


if __name__ == "__main__":
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
