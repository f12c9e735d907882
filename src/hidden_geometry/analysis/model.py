"""A model's layers: the `layers.tsv` rows, the overlap between consecutive layers, and the layer choice.

- A row of `layers.tsv` is built from the layer's measures and probe in their JSON-ready form (floats with
  `io.FLOAT_DIGITS` significant digits, as the workflow stores them), so that the workflow (which reads them back
  from its per-layer files) and one in-memory call (`analyse_layers`) give the same bytes.
- `overlap_next` of layer l is chi_k between the graphs of layers l and l + 1 (NaN for the last layer and where
  either graph is undefined), with k = min(k, both graphs' k).
- Gride is read at one neighbour rank n2 for every layer of the model (`geometry.common_gride_rank`, chosen from
  all layers' ID-versus-scale curves; column `gride_n2`, the same in every row).
- `overlap_matrix_of` gives chi_k between every pair of layers (the workflow's overlap_matrix.tsv).
- The layer choice runs on the Gride ID profile; where Gride is undefined in some layer, on the TwoNN profile
  (`id_measure` says which, `id_profile` in words, `gride_rank` the rank and its rule), with the profile's
  phases (`phases`, `second_peak_layer`); where that is undefined too, no layer is chosen and the evidence says why.
  It is compared with the linear probe's best layer (the first on ties).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .. import geometry
from ..graph import UndefinedGraph
from ..io import FLOAT_DIGITS, json_ready
from . import layer as layer_measures

LAYER_COLUMNS = ("layer", "relative_depth", "id_twonn", "id_twonn_err", "id_gride", "id_gride_err", "gride_scale",
                 "gride_n2", "overlap_next", "label_overlap", "anisotropy", "probe_acc", "probe_acc_std", "n_points",
                 *geometry.LAYER_MEASURES)
NAN = float("nan")


def _number(value: Any) -> float:
    return NAN if value is None else float(value)


def common_rank(measures: Sequence[Mapping[str, Any]]) -> Any:
    """The model's one Gride rank pair (`geometry.CommonGrideRank`) from the curves of the layers whose graph is
    defined; None when no layer has one."""
    curves = [m["gride"] for m in measures if m.get("undefined_reason") is None]
    return geometry.common_gride_rank(curves) if curves else None


def layer_row(measures: Mapping[str, Any], probe: Mapping[str, Any], n_layers: int,
              gride_n2: int | None = None) -> dict[str, Any]:
    """One row of layers.tsv (without `overlap_next`) from a layer's JSON-ready measures and probe; NaN where
    undefined. The Gride columns are those of rank `gride_n2` (the model's one rank; None: the layer's own
    flattest scale, for a layer read alone)."""
    layer = int(measures["layer"])
    row: dict[str, Any] = {column: NAN for column in LAYER_COLUMNS}
    row.update(layer=layer, relative_depth=layer / max(1, n_layers - 1), n_points=int(measures["n_points"]))
    if measures.get("undefined_reason") is None:
        if gride_n2 is None:
            gride = measures["gride"]["scales"][measures["gride"]["chosen_index"]]
        else:
            gride = geometry.gride_at_rank(measures["gride"], gride_n2)
        row.update(gride_n2=int(gride["n2"]), id_twonn=_number(measures["twonn"]["id"]),
                   id_twonn_err=_number(measures["twonn_decimation"]["err"]),
                   id_gride=_number(gride["id"]), id_gride_err=_number(gride["err"]),
                   gride_scale=_number(gride["scale"]), anisotropy=_number(measures["anisotropy"]["pc1_share"]))
        if "label_overlap" in measures:
            row["label_overlap"] = _number(measures["label_overlap"])
        for name in geometry.LAYER_MEASURES:
            row[name] = _number((measures.get("measures") or {}).get(name))
    row.update(probe_acc=_number(probe["probe"]["mean"]), probe_acc_std=_number(probe["probe"]["std"]))
    return row


def overlap_between(current: Any, following: Any, k: int) -> float:
    """chi_k between two consecutive layers' graphs; NaN where either is undefined (None or `UndefinedGraph`)."""
    if current is None or following is None or isinstance(current, UndefinedGraph) \
            or isinstance(following, UndefinedGraph):
        return NAN
    return float(geometry.neighbourhood_overlap(current, following, k=min(k, current.k, following.k)))


def consecutive_overlaps(graphs: Iterable[Any], k: int) -> list[float]:
    """`overlap_between` each graph and the next one, then NaN for the last layer (one graph held at a time)."""
    overlaps: list[float] = []
    previous = None
    for index, graph in enumerate(graphs):
        if index:
            overlaps.append(overlap_between(previous, graph, k))
        previous = graph
    return overlaps + [NAN]


def overlap_matrix_of(graphs: Iterable[Any], k: int) -> np.ndarray:
    """chi_k(l, m) between every pair of layers' graphs in layer order (`NeighbourGraph`, `UndefinedGraph` or None;
    NaN rows and columns for undefined ones): float64 [L, L]."""
    defined = [None if g is None or isinstance(g, UndefinedGraph) else g for g in graphs]
    return geometry.overlap_matrix(defined, k)


def best_probe_layer(rows: Sequence[Mapping[str, Any]]) -> int | None:
    """Layer of the highest probe accuracy (the first on ties); None when no layer has one."""
    scored = [(row["probe_acc"], -row["layer"]) for row in rows if not math.isnan(row["probe_acc"])]
    return -max(scored)[1] if scored else None


def choose_model_layer(rows: Sequence[Mapping[str, Any]], rank: Any = None) -> dict[str, Any]:
    """The unsupervised choice on the ID profile of the rows (Gride, else TwoNN), its evidence, and the probe's
    best layer: n_layers, id_measure, chosen_layer, chosen_relative_depth, evidence, probe_best_layer,
    probe_best_relative_depth, probe_acc_at_best, probe_acc_at_chosen (None where undefined)."""
    measure = "id_gride" if not any(math.isnan(row["id_gride"]) for row in rows) else "id_twonn"
    profile = [row[measure] for row in rows]
    depths = [row["relative_depth"] for row in rows]
    if measure == "id_gride" and rank is not None:
        described = f"Gride at neighbour ranks n1={rank.n1}, n2={rank.n2}, the same in every layer ({rank.rule})"
    elif measure == "id_gride":
        described = "Gride at each layer's own flattest scale"
    else:
        described = "TwoNN (linear fit), because Gride is undefined in some layer"
    choice: dict[str, Any] = {"n_layers": len(rows), "id_measure": measure, "id_profile": described,
                              "gride_rank": None if rank is None else rank.to_dict()}
    if any(math.isnan(value) for value in profile):
        choice.update(chosen_layer=None, chosen_relative_depth=None, phases=[], second_peak_layer=None,
                      evidence={"reason": "the ID is undefined in some layer (see measures/)"})
    else:
        evidence = geometry.choose_layer(profile, relative_depths=depths)
        chosen = int(evidence.chosen_layer)
        choice.update(chosen_layer=chosen, chosen_relative_depth=depths[chosen], phases=evidence.phases,
                      second_peak_layer=evidence.second_peak_layer, evidence=evidence)
    best = best_probe_layer(rows)
    by_layer = {row["layer"]: row for row in rows}
    choice.update(
        probe_best_layer=best,
        probe_best_relative_depth=None if best is None else depths[best],
        probe_acc_at_best=None if best is None else by_layer[best]["probe_acc"],
        probe_acc_at_chosen=None if choice["chosen_layer"] is None else by_layer[choice["chosen_layer"]]["probe_acc"],
    )
    return choice


def summarize_layers(measures: Sequence[Mapping[str, Any]], probes: Sequence[Mapping[str, Any]],
                     graphs: Iterable[Any], k: int = layer_measures.K) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(rows of layers.tsv, layer choice) from the JSON-ready measures and probes of every layer (any order, matched
    by their `layer`) and the layers' graphs in layer order (`NeighbourGraph`, `UndefinedGraph` or None)."""
    rank = common_rank(measures)
    rows = table_rows(measures, probes, consecutive_overlaps(graphs, k), rank)
    return rows, choose_model_layer(rows, rank)


def table_rows(measures: Sequence[Mapping[str, Any]], probes: Sequence[Mapping[str, Any]],
               overlaps: Sequence[float], rank: Any = None) -> list[dict[str, Any]]:
    """The rows of layers.tsv in layer order: `layer_row` of each layer (Gride at `rank`, the model's
    `common_rank`) with its `overlap_next`."""
    ordered = sorted(measures, key=lambda m: int(m["layer"]))
    by_layer = {int(p["layer"]): p for p in probes}
    n2 = None if rank is None else rank.n2
    rows = [layer_row(m, by_layer[int(m["layer"])], len(ordered), n2) for m in ordered]
    if len(overlaps) != len(rows):
        raise ValueError(f"{len(overlaps)} overlaps for {len(rows)} layers")
    for row, overlap in zip(rows, overlaps):
        row["overlap_next"] = overlap
    return rows


@dataclass(frozen=True)
class ModelAnalysis:
    """Everything `analyse_layers` measured: the table rows, the layer choice, and each layer's JSON-ready measures
    and probe (as the workflow's measures/ and probe/ files hold them)."""

    rows: list[dict[str, Any]]
    choice: dict[str, Any]
    measures: list[dict[str, Any]] = field(default_factory=list)
    probes: list[dict[str, Any]] = field(default_factory=list)


def analyse_layers(layers: Sequence[np.ndarray], keep: np.ndarray | None = None, labels: Sequence[Any] | None = None,
                   groups: Sequence[Any] | None = None, *, graph_k: int = layer_measures.GRAPH_K,
                   k: int = layer_measures.K, metric: str = layer_measures.METRIC,
                   twonn_fraction: float = layer_measures.TWONN_FRACTION,
                   decimation_repeats: int = layer_measures.DECIMATION_REPEATS, folds: int = layer_measures.FOLDS,
                   max_items: int | None = layer_measures.MAX_ITEMS, seed: int = layer_measures.SEED,
                   ids: Sequence[str] | None = None, label_column: str = "label",
                   label_reason: str | None = None,
                   tokens: Sequence[np.ndarray | None] | None = None) -> ModelAnalysis:
    """One call for a model: every layer's measures and linear probe, then the table rows and the layer choice,
    exactly as the workflow computes them (its rules `layer_geometry`, `linear_probe`, `summarize_model`).

    `layers` are the representations [N, D] of each layer in layer order (rows = items, the same in every layer);
    `keep` the items measured (see `identical_input_mask`); `labels`/`groups` as in `measure_layer` (labels None:
    no label measures and no probe, `label_reason` says why); `tokens` each layer's token sample
    (`hidden_geometry.embeddings.load_token_sample`) for token_anisotropy, or None.
    """
    measures, probes = [], []

    def graphs() -> Iterable[Any]:
        for index, X in enumerate(layers):
            result = layer_measures.measure_layer(
                X, keep, labels, groups, graph_k=graph_k, k=k, metric=metric, twonn_fraction=twonn_fraction,
                decimation_repeats=decimation_repeats, seed=seed, ids=ids, layer=f"{index:03d}",
                label_reason=label_reason, tokens=None if tokens is None else tokens[index])
            measures.append(json_ready({"layer": index, "label_column": label_column, **result.to_dict()},
                                       FLOAT_DIGITS))
            probe = layer_measures.probe_layer(X, labels, keep, folds=folds, max_items=max_items, seed=seed,
                                               label_column=label_column)
            probes.append(json_ready({"layer": index, "label_column": label_column, **probe}, FLOAT_DIGITS))
            yield result.graph

    overlaps = consecutive_overlaps(graphs(), k)
    rank = common_rank(measures)
    rows = table_rows(measures, probes, overlaps, rank)
    return ModelAnalysis(rows, choose_model_layer(rows, rank), measures, probes)
