"""Rule summary_table: results/summary.tsv, one row per analysed (dataset, model), from the layer choices."""

from typing import Any

from _wf import logged

from hidden_geometry.io import read_json, write_table

SUMMARY_COLUMNS = ("dataset", "model", "model_label", "untrained", "n_layers", "id_measure", "chosen_layer",
                   "chosen_relative_depth", "probe_best_layer", "probe_best_relative_depth", "probe_acc_at_chosen",
                   "probe_acc_at_best", "unknown_share")


def main(snakemake: Any) -> None:
    with logged(snakemake) as log:
        rows = sorted((read_json(path) for path in snakemake.input.choices), key=lambda c: (c["dataset"], c["model"]))
        log.info("%d analyses", len(rows))
        write_table(snakemake.output[0], rows, SUMMARY_COLUMNS)


if __name__ == "__main__":
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
