"""Rule training_dynamics: training.tsv (step, layer, every layers.tsv column) over a model's checkpoints with a
step, and the figure of ID, anisotropy and label overlap over step x layer and at the final model's chosen layer."""

from pathlib import Path
from typing import Any

from _wf import logged

from hidden_geometry import dynamics, plots, plots_measures
from hidden_geometry.io import read_json, write_table

FIGURE_MEASURES = ("id_gride", "anisotropy", "token_anisotropy", "label_overlap")


def main(snakemake: Any) -> None:
    with logged(snakemake) as log:
        params = snakemake.params
        tables = {
            int(step): plots.read_layers_table(table) for step, table in zip(params.steps, snakemake.input.tables)
        }
        columns, rows = dynamics.training_rows(tables)
        write_table(snakemake.output.table, rows, columns)
        final = Path(snakemake.input.tables[list(params.steps).index(max(params.steps))])
        chosen = read_json(final.with_name("layer_choice.json"))["chosen_layer"]
        values = {}
        for measure in FIGURE_MEASURES:
            steps, values[measure] = dynamics.step_layer_grid(rows, measure)
        log.info("%s: %d steps x %d layers, chosen layer %s", params.label, len(steps), len(rows) // len(steps), chosen)
        figure = plots_measures.training_dynamics_figure(steps, values, chosen, params.label, params.dataset)
        plots.save_figure(
            figure, [p for name, p in snakemake.output.items() if name.startswith("fig_")], dpi=params.dpi
        )


if __name__ == "__main__":
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
