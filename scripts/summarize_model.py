"""Rule summarize_model: layers.tsv (one row per layer) and layer_choice.json, by
`hidden_geometry.analysis.summarize_layers` from the per-layer measures, probes and graphs, and overlap_matrix.tsv
(chi_k between every pair of layers, `analysis.overlap_matrix_of`)."""

from pathlib import Path
from typing import Any, Sequence

import numpy as np
from _wf import layer_number, logged

from hidden_geometry import analysis
from hidden_geometry.io import read_graph_file, read_json, write_json, write_table


def write_overlap_matrix(path: str, matrix: np.ndarray, layers: Sequence[int]) -> None:
    """overlap_matrix.tsv: one row per layer l, one column per layer m, chi_k(l, m) (NA where undefined)."""
    columns = ["layer"] + [str(m) for m in layers]
    rows = [
        {"layer": layer, **{str(m): float(matrix[i, j]) for j, m in enumerate(layers)}}
        for i, layer in enumerate(layers)
    ]
    write_table(path, rows, columns)


def main(snakemake: Any) -> None:
    with logged(snakemake) as log:
        graphs = [read_graph_file(path) for path in sorted(snakemake.input.graphs, key=layer_number)]
        rows, choice = analysis.summarize_layers([read_json(path) for path in snakemake.input.measures],
                                                 [read_json(path) for path in snakemake.input.probes], graphs,
                                                 snakemake.params.k)
        wildcards, params = snakemake.wildcards, snakemake.params
        manifest = read_json(Path(snakemake.input.embeddings) / "manifest.json")
        # The whole run's unknown-token share (0 for inputs without a tokenizer, e.g. images), from the manifest.
        choice.update(dataset=wildcards.dataset, model=wildcards.model, model_label=params.model_label,
                      untrained=bool(params.untrained), unknown_share=float(manifest.get("unknown_share", 0.0)),
                      role=manifest.get("role"),  # encoder/decoder; None for folders extracted before roles
                      dtype=manifest.get("dtype"))  # the forward pass's precision (fp32, bf16, fp16)
        log.info("%d layers; chosen layer %s, probe's best layer %s", len(rows), choice["chosen_layer"],
                 choice["probe_best_layer"])
        write_table(snakemake.output.layers, rows, analysis.LAYER_COLUMNS)
        write_json(snakemake.output.choice, choice)
        matrix = analysis.overlap_matrix_of(graphs, int(snakemake.params.k))
        write_overlap_matrix(snakemake.output.overlap_matrix, matrix, [int(row["layer"]) for row in rows])


if __name__ == "__main__":
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
