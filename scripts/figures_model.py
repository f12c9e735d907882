"""Rule figures_model: Gride ID against scale per layer, and probe accuracy against ID (chosen layer marked)."""

from typing import Any

from _wf import logged

from hidden_geometry import plots
from hidden_geometry.io import read_json


def gride_curves(measure_files: list[str]) -> list[dict]:
    """Per-layer Gride curves from the measures JSON (layers whose graph is undefined are skipped)."""
    curves = []
    for path in measure_files:
        measures = read_json(path)
        if measures.get("undefined_reason") is None:
            gride = measures["gride"]
            curves.append({"layer": measures["layer"], "scales": gride["scales"], "chosen_index": gride["chosen_index"]})
    return sorted(curves, key=lambda curve: curve["layer"])


def main(snakemake: Any) -> None:
    with logged(snakemake) as log:
        dataset = snakemake.wildcards.dataset
        choice = read_json(snakemake.input.choice)
        profile = plots.LayerProfile(label=snakemake.params.label, columns=plots.read_layers_table(snakemake.input.table),
                                     chosen_layer=choice["chosen_layer"])
        curves = gride_curves(list(snakemake.input.measures))
        log.info("%d layers with Gride curves", len(curves))
        outputs = dict(snakemake.output.items())
        plots.save_figure(plots.gride_scale_figure(curves, snakemake.params.label, dataset),
                          [p for n, p in outputs.items() if n.startswith("gride_scale_")], dpi=snakemake.params.dpi)
        plots.save_figure(plots.probe_vs_id_figure(profile, dataset, choice["probe_best_layer"]),
                          [p for n, p in outputs.items() if n.startswith("probe_vs_id_")], dpi=snakemake.params.dpi)


if __name__ == "__main__":
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
