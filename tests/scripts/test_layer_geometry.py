"""scripts/layer_geometry.py and scripts/linear_probe.py on small synthetic layers: graph saved once, measures
JSON complete, undefined layers reported (not crashed), non-finite rows excluded and named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hidden_geometry.data.items import ItemTable, write_items
from hidden_geometry.geometry import (
    cell_density,
    isoscore,
    load_graph,
    mean_cosine,
    participation_ratio,
    token_anisotropy,
)

from .conftest import fake_snakemake

N, D = 120, 8


def make_layer(tmp_path: Path, X: np.ndarray, labels: list[str], groups: list[str] | None = None) -> dict:
    """An embeddings folder with one layer, an items table and a keep-mask, as the workflow would have them."""
    emb = tmp_path / "embeddings"
    emb.mkdir()
    np.save(emb / "layer_000.npy", X.astype(np.float32))
    ids = [f"item{i}" for i in range(len(X))]
    (emb / "ids.txt").write_text("\n".join(ids) + "\n")
    columns = {"label": labels, "group": groups or [""] * len(X), "text": [f"t{i}" for i in range(len(X))]}
    write_items(ItemTable(ids=ids, columns=columns), tmp_path / "items.tsv")
    np.save(tmp_path / "keep.npy", np.ones(len(X), dtype=bool))
    return {"table": str(tmp_path / "items.tsv"), "embeddings": str(emb), "keep": str(tmp_path / "keep.npy")}


def run_geometry(script, tmp_path: Path, inputs: dict, graph_k: int = 16) -> dict:
    outputs = {"graph": str(tmp_path / "graphs" / "layer_000.npz"), "measures": str(tmp_path / "layer_000.json")}
    params = {"graph_k": graph_k, "k": 5, "metric": "euclidean", "twonn_fraction": 0.9, "decimation_repeats": 3,
              "exclude_groups": True, "label_column": "label", "seed": 0}
    script("layer_geometry").main(fake_snakemake(input=inputs, output=outputs, params=params, threads=1,
                                                 wildcards={"layer": "000"}, log=[str(tmp_path / "log.txt")]))
    return json.loads(Path(outputs["measures"]).read_text())


def test_measures_of_a_clustered_layer(script, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    labels = [str(i % 3) for i in range(N)]
    centres = rng.normal(size=(3, D)) * 10
    X = centres[[i % 3 for i in range(N)]] + rng.normal(size=(N, D))
    measures = run_geometry(script, tmp_path, make_layer(tmp_path, X, labels))
    assert measures["undefined_reason"] is None and measures["n_points"] == N
    assert 3 < measures["twonn"]["id"] < 14 and measures["twonn_decimation"]["err"] > 0
    assert [s["n2"] for s in measures["gride"]["scales"]] == [2, 4, 8, 16]
    assert measures["label_overlap"] > 0.95 and measures["knn_probe"]["mean"] > 0.95  # well separated clusters
    assert 0 < measures["anisotropy"]["pc1_share"] < 1
    graph = load_graph(tmp_path / "graphs" / "layer_000.npz")
    assert graph.k == 16 and len(graph.rows) == N
    # The new measures of the same rows; no token sample in this folder: token_anisotropy NaN with the reason.
    extra, X32 = measures["measures"], X.astype(np.float32)  # JSON keeps 6 significant digits
    assert extra["isoscore"] == pytest.approx(isoscore(X32), rel=1e-5)
    assert extra["participation_ratio"] == pytest.approx(participation_ratio(X32), rel=1e-5)
    assert extra["mean_cosine"] == pytest.approx(mean_cosine(X32), rel=1e-5)
    assert extra["token_anisotropy"] is None and "no token sample" in extra["token_reason"]
    assert extra["cell_density"] is None and "no token sample" in extra["cell_reason"]  # it quantizes token states


def test_token_anisotropy_from_the_token_sample(script, tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    X = rng.normal(size=(N, D))
    inputs = make_layer(tmp_path, X, [str(i % 2) for i in range(N)])
    tokens = rng.normal(size=(300, D)) * np.r_[4.0, np.ones(D - 1)]
    np.save(Path(inputs["embeddings"]) / "tokens_000.npy", tokens.astype(np.float32))
    extra = run_geometry(script, tmp_path, inputs)["measures"]
    assert extra["n_tokens"] == 300 and extra["token_reason"] is None
    assert extra["token_anisotropy"] == pytest.approx(token_anisotropy(tokens.astype(np.float32)), rel=1e-5)
    assert extra["token_anisotropy"] > 0.5  # one axis has 16x the variance of the other 7
    # Marbut et al.'s cell density of the same tokens (256 cells in each of 4 blocks; seed of the run: 0)
    assert extra["cell_density"] == pytest.approx(cell_density(tokens.astype(np.float32), seed=0), rel=1e-5)
    assert extra["cell_reason"] is None


def test_nonfinite_rows_are_excluded_and_named(script, tmp_path: Path) -> None:
    X = np.random.default_rng(1).normal(size=(N, D))
    X[[5, 17]] = np.nan
    measures = run_geometry(script, tmp_path, make_layer(tmp_path, X, ["a", "b"] * (N // 2)))
    assert measures["n_points"] == N - 2
    assert 5 not in load_graph(tmp_path / "graphs" / "layer_000.npz").rows
    assert "item5, item17" in (tmp_path / "log.txt").read_text()


def test_identical_rows_make_an_undefined_layer_not_a_crash(script, tmp_path: Path) -> None:
    X = np.ones((N, D))
    measures = run_geometry(script, tmp_path, make_layer(tmp_path, X, ["a", "b"] * (N // 2)))
    assert measures["undefined_reason"] and "too few" in measures["undefined_reason"]
    assert measures["n_points"] == 1
    with np.load(tmp_path / "graphs" / "layer_000.npz") as data:
        assert "undefined_reason" in data.files


def test_fewer_points_than_k_lowers_k(script, tmp_path: Path) -> None:
    X = np.random.default_rng(2).normal(size=(12, D))
    measures = run_geometry(script, tmp_path, make_layer(tmp_path, X, ["a", "b"] * 6), graph_k=32)
    assert measures["graph_k"] == 11 and measures["undefined_reason"] is None
    assert "k lowered from 32 to 11" in (tmp_path / "log.txt").read_text()


def test_unlabelled_dataset_has_no_label_measures_with_a_reason(script, tmp_path: Path) -> None:
    X = np.random.default_rng(3).normal(size=(N, D))
    measures = run_geometry(script, tmp_path, make_layer(tmp_path, X, [""] * N))
    assert "label_overlap" not in measures and "no 'label' labels" in measures["label_reason"]


def run_probe(script, tmp_path: Path, inputs: dict, max_items=None) -> dict:
    output = tmp_path / "probe.json"
    params = {"folds": 3, "max_items": max_items, "label_column": "label", "seed": 0}
    script("linear_probe").main(fake_snakemake(input=inputs, output={"probe": str(output)}, params=params,
                                               wildcards={"layer": "000"}, log=[str(tmp_path / "probe.log")]))
    return json.loads(output.read_text())


def test_linear_probe_accuracy_and_single_class_reason(script, tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    y = np.arange(N) % 2
    X = rng.normal(size=(N, D)) + 3 * y[:, None]
    result = run_probe(script, tmp_path, make_layer(tmp_path, X, [str(v) for v in y]), max_items=60)
    assert result["n_items"] == 60 and result["probe"]["mean"] > 0.9 and result["probe"]["n_folds"] == 3
    single = tmp_path / "single"
    single.mkdir()
    result = run_probe(script, single, make_layer(single, X, ["same"] * N))
    assert result["probe"]["mean"] is None and result["probe"]["reason"]


def test_missing_label_column_is_a_one_line_error(script, tmp_path: Path) -> None:
    from hidden_geometry.errors import InputError

    inputs = make_layer(tmp_path, np.zeros((N, D)), ["a"] * N)
    with pytest.raises(InputError, match="label_column 'superfamily'"):
        script("linear_probe").main(fake_snakemake(
            input=inputs, output={"probe": str(tmp_path / "p.json")},
            params={"folds": 3, "max_items": None, "label_column": "superfamily", "seed": 0},
            wildcards={"layer": "000"}, log=[str(tmp_path / "p.log")]))
    assert not (tmp_path / "p.json").exists()


def test_too_few_points_for_the_error_bar_keep_the_id(script, tmp_path: Path) -> None:
    X = np.random.default_rng(5).normal(size=(5, D))
    measures = run_geometry(script, tmp_path, make_layer(tmp_path, X, ["a", "b", "a", "b", "a"]))
    assert measures["undefined_reason"] is None and measures["twonn"]["id"] > 0
    assert measures["twonn_decimation"]["err"] is None and "too small" in measures["twonn_decimation"]["reason"]
