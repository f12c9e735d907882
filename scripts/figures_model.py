"""Rule figures_model: Gride ID against scale per layer, probe accuracy against ID (chosen layer marked), and the
overlap matrix chi(l, m) between every pair of layers."""

from typing import Any

import numpy as np
from _wf import logged

from hidden_geometry import geometry, plots
from hidden_geometry.io import read_json, read_table_columns


def gride_curves(measure_files: list[str]) -> list[dict]:
    """Per-layer Gride curves from the measures JSON (layers whose graph is undefined are skipped); the circled
    point of each is the model's one rank n2 (`geometry.common_gride_rank`, as in layers.tsv)."""
    curves = []
    for path in measure_files:
        measures = read_json(path)
        if measures.get("undefined_reason") is None:
            curves.append({"layer": measures["layer"], "scales": measures["gride"]["scales"]})
    if curves:
        n2 = geometry.common_gride_rank([curve["scales"] for curve in curves]).n2
        for curve in curves:
            curve["chosen_index"] = [int(s["n2"]) for s in curve["scales"]].index(n2)
    return sorted(curves, key=lambda curve: curve["layer"])


def read_overlap_matrix(path: str) -> np.ndarray:
    """overlap_matrix.tsv (written by summarize_model) as a float64 [L, L] array, NaN where NA."""
    return np.column_stack(list(read_table_columns(path).values())[1:])


def main(snakemake: Any) -> None:
    with logged(snakemake) as log:
        dataset = snakemake.wildcards.dataset
        choice = read_json(snakemake.input.choice)
        profile = plots.LayerProfile(
            label=snakemake.params.label,
            columns=plots.read_layers_table(snakemake.input.table),
            chosen_layer=choice["chosen_layer"],
        )
        curves = gride_curves(list(snakemake.input.measures))
        log.info("%d layers with Gride curves", len(curves))
        outputs = dict(snakemake.output.items())
        plots.save_figure(plots.gride_scale_figure(curves, snakemake.params.label, dataset),
                          [p for n, p in outputs.items() if n.startswith("gride_scale_")], dpi=snakemake.params.dpi)
        plots.save_figure(plots.probe_vs_id_figure(profile, dataset, choice["probe_best_layer"]),
                          [p for n, p in outputs.items() if n.startswith("probe_vs_id_")], dpi=snakemake.params.dpi)
        matrix = read_overlap_matrix(snakemake.input.overlap_matrix)
        plots.save_figure(plots.overlap_matrix_figure(matrix, snakemake.params.label, dataset, snakemake.params.k),
                          [p for n, p in outputs.items() if n.startswith("overlap_matrix_")], dpi=snakemake.params.dpi)


if __name__ == "__main__":
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
