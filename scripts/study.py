"""Rule study: every measure of layers.tsv (chosen layer, last layer, mean over layers) against an external score
per model: measures_vs_score.tsv (Pearson r, Spearman rho, bootstrap 95% interval of r, leave-one-out RMSE of a
linear fit) and one figure per measure (three panels: chosen, last, mean)."""

from pathlib import Path
from typing import Any

from _wf import logged

from hidden_geometry import plots, plots_measures, studies
from hidden_geometry.io import read_json, write_table


def main(snakemake: Any) -> None:
    with logged(snakemake) as log:
        params = snakemake.params
        scores = studies.read_scores(snakemake.input.scores)
        profiles, chosen = {}, {}
        for model, table in zip(params.models, snakemake.input.tables):
            columns = plots.read_layers_table(table)
            profiles[model] = {m: columns[m] for m in studies.STUDY_MEASURES if m in columns}
            chosen[model] = read_json(Path(table).with_name("layer_choice.json"))["chosen_layer"]
        measures = [m for m in studies.STUDY_MEASURES if all(m in p for p in profiles.values())]
        rows = studies.measures_vs_score(profiles, chosen, scores, measures, n_boot=params.n_boot, seed=params.seed)
        log.info("study %s: %d models, %d measures", params.study, len(profiles), len(measures))
        write_table(snakemake.output.table, [row.to_dict() for row in rows], studies.STUDY_COLUMNS)
        models = sorted(profiles)
        y = [scores[m] for m in models]
        for measure in studies.STUDY_MEASURES:
            paths = [p for name, p in snakemake.output.items() if name.startswith(f"fig_{measure}_")]
            if measure not in measures:
                raise RuntimeError(f"study {params.study}: measure {measure} missing from some layers.tsv")
            points = {s: [studies.summarise_profile(profiles[m][measure], chosen[m])[s] for m in models]
                      for s in studies.SUMMARIES}
            found = {r.summary: r.to_dict() for r in rows if r.measure == measure}
            figure = plots_measures.study_figure(points, y, models, measure, found, score_name=params.score_name)
            plots.save_figure(figure, paths, dpi=params.dpi)


if __name__ == "__main__":
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
