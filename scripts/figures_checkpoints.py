"""Rule figures_checkpoints: the paper's Fig. 3, a model's ID profile across its training checkpoints."""

from pathlib import Path
from typing import Any

from _wf import logged

from hidden_geometry import plots
from hidden_geometry.io import read_json


def main(snakemake: Any) -> None:
    with logged(snakemake) as log:
        tables = list(snakemake.input.checkpoints) + [snakemake.input.final]
        profiles = []
        for table in tables:
            run = Path(table).parent.name
            choice = read_json(Path(table).with_name("layer_choice.json"))
            profiles.append(plots.LayerProfile(label=snakemake.params.labels[run],
                                               columns=plots.read_layers_table(table),
                                               chosen_layer=choice["chosen_layer"]))
        log.info("%d checkpoints of %s", len(profiles), snakemake.wildcards.model)
        figure = plots.checkpoints_figure(profiles, snakemake.wildcards.dataset, snakemake.wildcards.model)
        plots.save_figure(figure, list(snakemake.output), dpi=snakemake.params.dpi)


if __name__ == "__main__":
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
