"""Rule figures_dataset: the paper's Figs. 1, 2 and 4 for every model analysed on one dataset, and anisotropy
against depth (pooled and token-level; encoders solid, decoders dashed)."""

from pathlib import Path
from typing import Any

from _wf import logged

from hidden_geometry import plots, plots_measures
from hidden_geometry.io import read_json


def load_profile(table: str, label: str) -> plots.LayerProfile:
    """A model's layers.tsv plus the chosen layer from the layer_choice.json beside it."""
    choice = read_json(Path(table).with_name("layer_choice.json"))
    return plots.LayerProfile(label=label, columns=plots.read_layers_table(table), chosen_layer=choice["chosen_layer"])


def outputs_of(snakemake: Any, figure: str) -> list[str]:
    return [path for name, path in snakemake.output.items() if name.startswith(figure + "_")]


def main(snakemake: Any) -> None:
    with logged(snakemake) as log:
        params = snakemake.params
        profiles = [
            load_profile(table, params.labels[model]) for model, table in zip(params.models, snakemake.input.tables)
        ]
        log.info("%d models on %s", len(profiles), params.dataset)
        figures = {
            "fig1_id_depth": plots.id_depth_figure(profiles, params.dataset),
            "fig2_overlap_next": plots.overlap_next_figure(profiles, params.dataset, params.k),
            "fig4_label_overlap": plots.label_overlap_figure(profiles, params.dataset, params.k),
        }
        for name, figure in figures.items():
            plots.save_figure(figure, outputs_of(snakemake, name), dpi=params.dpi)
        if outputs_of(snakemake, "anisotropy_depth"):
            roles = [
                read_json(Path(t).with_name("layer_choice.json")).get("role") or "unknown"
                for t in snakemake.input.tables
            ]
            figure = plots_measures.anisotropy_depth_figure(profiles, roles, params.dataset)
            plots.save_figure(figure, outputs_of(snakemake, "anisotropy_depth"), dpi=params.dpi)


if __name__ == "__main__":
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
