"""Rule linear_probe: logistic-regression accuracy of one layer's representations (stratified k-fold)."""

from pathlib import Path
from typing import Any

import numpy as np
from _wf import logged, write_json

from hidden_geometry.data.items import read_items
from hidden_geometry.errors import InputError
from hidden_geometry.probes import linear_probe


def probe_rows(keep: np.ndarray, X: np.ndarray, max_items: int | None, seed: int) -> np.ndarray:
    """Indices of the rows probed: kept and finite, optionally a seeded subsample (sorted, input order)."""
    rows = np.flatnonzero(keep & np.isfinite(X).all(axis=1))
    if max_items is not None and rows.size > max_items:
        rows = np.sort(np.random.default_rng(seed).choice(rows, size=max_items, replace=False))
    return rows


def main(snakemake: Any) -> None:
    with logged(snakemake) as log:
        layer = int(snakemake.wildcards.layer)
        items = read_items(snakemake.input.table)
        column = snakemake.params.label_column
        if column not in items.columns:
            raise InputError(f"analyses: label_column {column!r} is not a column of {snakemake.input.table}")
        X = np.load(Path(snakemake.input.embeddings) / f"layer_{layer:03d}.npy", mmap_mode="r")
        keep = np.load(snakemake.input.keep)
        rows = probe_rows(keep, X, snakemake.params.max_items, snakemake.params.seed)
        labels = np.asarray(items.columns[column], dtype=object)[rows]
        if all(label == "" for label in labels):
            out = {"mean": None, "std": None, "n_folds": 0, "reason": f"the dataset has no '{column}' labels"}
        else:
            out = linear_probe(np.asarray(X[rows], dtype=np.float64), labels, folds=snakemake.params.folds,
                               seed=snakemake.params.seed)
        log.info("layer %d: linear probe on %d items: %s", layer, rows.size, out)
        write_json(snakemake.output.probe, {"layer": layer, "n_items": int(rows.size), "label_column": column,
                                            "probe": out})


if __name__ == "__main__":
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
