"""Rule summarize_model: layers.tsv (one row per layer, the issue's columns) and layer_choice.json.

overlap_next of layer l is the neighbourhood overlap chi_k between the graphs of layers l and l + 1 (NA for the
last layer). The layer choice runs on the Gride ID profile (TwoNN where Gride is undefined) and is compared with
the linear probe's best layer.
"""

import math
from typing import Any, Sequence

import numpy as np
from _wf import layer_number, logged, read_json, write_json, write_tsv

from hidden_geometry import geometry

LAYER_COLUMNS = ("layer", "relative_depth", "id_twonn", "id_twonn_err", "id_gride", "id_gride_err", "gride_scale",
                 "overlap_next", "label_overlap", "anisotropy", "probe_acc", "probe_acc_std", "n_points")
NAN = float("nan")


def _number(value: Any) -> float:
    return NAN if value is None else float(value)


def chosen_gride(gride: dict) -> dict:
    """The Gride scale the engine chose (its id, err and scale)."""
    return gride["scales"][gride["chosen_index"]]


def layer_row(measures: dict, probe: dict, n_layers: int) -> dict[str, Any]:
    """One row of layers.tsv from a layer's measures and probe JSON (NaN where undefined)."""
    layer = int(measures["layer"])
    row: dict[str, Any] = {column: NAN for column in LAYER_COLUMNS}
    row.update(layer=layer, relative_depth=layer / max(1, n_layers - 1), n_points=int(measures["n_points"]))
    if measures.get("undefined_reason") is None:
        gride = chosen_gride(measures["gride"])
        row.update(id_twonn=_number(measures["twonn"]["id"]), id_twonn_err=_number(measures["twonn_decimation"]["err"]),
                   id_gride=_number(gride["id"]), id_gride_err=_number(gride["err"]), gride_scale=_number(gride["scale"]),
                   anisotropy=_number(measures["anisotropy"]["pc1_share"]))
        if "label_overlap" in measures:
            row["label_overlap"] = _number(measures["label_overlap"])
    row.update(probe_acc=_number(probe["probe"]["mean"]), probe_acc_std=_number(probe["probe"]["std"]))
    return row


def consecutive_overlaps(graph_paths: Sequence[str], k: int) -> list[float]:
    """chi_k between each layer's graph and the next one's; NaN where either graph is undefined."""
    graphs = []
    for path in graph_paths:
        with np.load(path, allow_pickle=False) as data:
            defined = "undefined_reason" not in data.files
        graphs.append(geometry.load_graph(path) if defined else None)
    overlaps = []
    for current, following in zip(graphs[:-1], graphs[1:]):
        if current is None or following is None:
            overlaps.append(NAN)
        else:
            overlaps.append(float(geometry.neighbourhood_overlap(current, following, k=min(k, current.k, following.k))))
    return overlaps + [NAN]


def best_probe_layer(rows: Sequence[dict]) -> int | None:
    """Layer of the highest probe accuracy (the first on ties); None when no layer has one."""
    scored = [(row["probe_acc"], -row["layer"]) for row in rows if not math.isnan(row["probe_acc"])]
    return -max(scored)[1] if scored else None


def layer_choice(rows: Sequence[dict], params: Any, wildcards: Any) -> dict[str, Any]:
    """The unsupervised choice on the ID profile, with its evidence and the probe's best layer."""
    use_gride = not any(math.isnan(row["id_gride"]) for row in rows)
    measure = "id_gride" if use_gride else "id_twonn"
    profile = [row[measure] for row in rows]
    depths = [row["relative_depth"] for row in rows]
    choice: dict[str, Any] = {"dataset": wildcards.dataset, "model": wildcards.model, "model_label": params.model_label,
                              "untrained": bool(params.untrained), "n_layers": len(rows), "id_measure": measure}
    if any(math.isnan(value) for value in profile):
        choice.update(chosen_layer=None, chosen_relative_depth=None,
                      evidence={"reason": "the ID is undefined in some layer (see measures/)"})
    else:
        evidence = geometry.choose_layer(profile, relative_depths=depths)
        chosen = int(evidence.chosen_layer)
        choice.update(chosen_layer=chosen, chosen_relative_depth=depths[chosen], evidence=evidence)
    best = best_probe_layer(rows)
    by_layer = {row["layer"]: row for row in rows}
    choice.update(
        probe_best_layer=best,
        probe_best_relative_depth=None if best is None else depths[best],
        probe_acc_at_best=None if best is None else by_layer[best]["probe_acc"],
        probe_acc_at_chosen=None if choice["chosen_layer"] is None else by_layer[choice["chosen_layer"]]["probe_acc"],
    )
    return choice


def main(snakemake: Any) -> None:
    with logged(snakemake) as log:
        measures = sorted((read_json(path) for path in snakemake.input.measures), key=lambda m: m["layer"])
        probes = {int(p["layer"]): p for p in map(read_json, snakemake.input.probes)}
        graphs = sorted(snakemake.input.graphs, key=layer_number)
        n_layers = len(measures)
        rows = [layer_row(m, probes[int(m["layer"])], n_layers) for m in measures]
        for row, overlap in zip(rows, consecutive_overlaps(graphs, snakemake.params.k)):
            row["overlap_next"] = overlap
        choice = layer_choice(rows, snakemake.params, snakemake.wildcards)
        log.info("%d layers; chosen layer %s, probe's best layer %s", n_layers, choice["chosen_layer"],
                 choice["probe_best_layer"])
        write_tsv(snakemake.output.layers, LAYER_COLUMNS, rows)
        write_json(snakemake.output.choice, choice)


if __name__ == "__main__":
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
