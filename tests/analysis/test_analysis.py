"""hidden_geometry.analysis: the decisions of a layer and of a model's summary (the one-call path against the
workflow's scripts: tests/scripts/test_layers_command.py)."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from hidden_geometry import analysis
from hidden_geometry.data.items import ItemTable
from hidden_geometry.errors import InputError
from hidden_geometry.graph import UndefinedGraph

ROOT = Path(__file__).resolve().parents[2]


def test_distinct_k_counts_kept_distinct_rows() -> None:
    X = np.array([[0.0, 0], [0, 0], [1, 0], [2, 0], [-0.0, 0]])
    assert analysis.distinct_k(X, 10) == (2, 3)  # -0.0 equals 0.0
    assert analysis.distinct_k(X, 1) == (1, 3)
    assert analysis.distinct_k(X, 10, keep=np.array([True, True, False, False, True])) == (0, 1)


def test_finite_keep_mask_drops_and_names_nonfinite_rows(caplog) -> None:
    X = np.ones((4, 2))
    X[2, 1] = np.inf
    with caplog.at_level(logging.WARNING):
        keep = analysis.finite_keep_mask(X, np.array([True, True, True, False]), ids=["a", "b", "c", "d"])
    assert keep.tolist() == [True, True, False, False] and "c" in caplog.text
    with pytest.raises(InputError, match="3 rows for 4"):
        analysis.finite_keep_mask(X, np.ones(3, dtype=bool))


def test_layer_graph_is_undefined_with_a_reason_when_too_few_distinct_points() -> None:
    graph = analysis.layer_graph(np.ones((20, 3)), graph_k=8, layer="004")
    assert isinstance(graph, UndefinedGraph) and graph.n_points == 1
    assert graph.reason.startswith("layer 004: 1 distinct")
    measures = analysis.measure_layer(np.ones((20, 3)), labels=["a", "b"] * 10, layer="004")
    assert measures.undefined_reason == graph.reason and measures.twonn is None
    assert set(measures.to_dict()) == {"n_points", "exclude_groups", "label_reason", "undefined_reason"}


def test_measure_layer_uses_groups_and_lowers_k() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 4))
    labels = np.array([str(i % 2) for i in range(30)])
    groups = np.array([f"g{i // 3}" for i in range(30)])
    with_groups = analysis.measure_layer(X, labels=labels, groups=groups, graph_k=64, k=10, decimation_repeats=3)
    without = analysis.measure_layer(X, labels=labels, graph_k=64, k=10, decimation_repeats=3)
    assert with_groups.graph_k == 29 and with_groups.k == 10 and with_groups.exclude_groups
    assert not without.exclude_groups and with_groups.label_overlap != without.label_overlap


def test_identical_inputs_and_identical_rows_masks() -> None:
    items = ItemTable(ids=["a", "b", "c"], columns={"text": ["x", "y", "x"]})
    assert analysis.identical_input_mask(items).tolist() == [True, True, False]
    assert analysis.identical_input_mask(items, deduplicate=False).tolist() == [True, True, True]
    no_input = ItemTable(ids=["a", "b"], columns={"label": ["0", "1"]})
    with pytest.raises(InputError, match="pixels"):
        analysis.identical_input_mask(no_input)
    one, two = np.array([[1.0], [1.0], [2.0]]), np.array([[5.0], [6.0], [7.0]])
    assert analysis.identical_rows_mask([one]).tolist() == [True, False, True]
    assert analysis.identical_rows_mask([one, two]).tolist() == [True, True, True]  # differ in layer 2


def row(layer: int, gride: float, twonn: float, acc: float) -> dict:
    return {"layer": layer, "relative_depth": layer / 4, "id_gride": gride, "id_twonn": twonn, "probe_acc": acc}


def test_layer_choice_falls_back_from_gride_to_twonn_then_to_no_choice() -> None:
    ids = [4.0, 9.0, 12.0, 7.0, 6.5]
    rows = [row(i, v, v + 1, 0.5 + 0.1 * i) for i, v in enumerate(ids)]
    assert analysis.choose_model_layer(rows)["id_measure"] == "id_gride"
    rows[1]["id_gride"] = math.nan
    choice = analysis.choose_model_layer(rows)
    assert choice["id_measure"] == "id_twonn" and choice["evidence"].peak_layer == 2
    assert choice["probe_best_layer"] == 4 and choice["probe_acc_at_best"] == pytest.approx(0.9)
    rows[3]["id_twonn"] = math.nan
    choice = analysis.choose_model_layer(rows)
    assert choice["chosen_layer"] is None and "undefined" in choice["evidence"]["reason"]
    assert choice["probe_acc_at_chosen"] is None


def test_schema_defaults_are_the_analysis_defaults() -> None:
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    geometry = {k: v["default"] for k, v in schema["properties"]["geometry"]["properties"].items()}
    probe = {k: v["default"] for k, v in schema["properties"]["probe"]["properties"].items()}
    from hidden_geometry.analysis import defaults, layer

    assert (geometry["graph_k"], geometry["k"], geometry["metric"]) == (defaults.GRAPH_K, defaults.K, defaults.METRIC)
    assert (geometry["twonn_fraction"], geometry["decimation_repeats"]) == (defaults.TWONN_FRACTION,
                                                                         defaults.DECIMATION_REPEATS)
    assert (probe["folds"], probe["max_items"], schema["properties"]["seed"]["default"]) == (
        defaults.FOLDS, defaults.MAX_ITEMS, defaults.SEED)
    assert (layer.GRAPH_K, layer.K, layer.FOLDS) == (defaults.GRAPH_K, defaults.K, defaults.FOLDS)  # one home
