"""Studies across models: associations against independent computations (scipy), scores table errors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from hidden_geometry.errors import InputError
from hidden_geometry.studies import (
    associate,
    loo_rmse,
    measures_vs_score,
    read_scores,
    summarise_profile,
)


def test_associate_matches_scipy_and_a_perfect_line():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(9)
    y = 2.0 * x + rng.standard_normal(9) * 0.5
    y[3] = y[5]  # a tie in the ranks
    result = associate(x, y, n_boot=500, seed=1)
    assert result.pearson_r == pytest.approx(stats.pearsonr(x, y)[0], rel=1e-12)
    assert result.spearman_rho == pytest.approx(stats.spearmanr(x, y)[0], rel=1e-12)
    assert result.pearson_ci_low <= result.pearson_r <= result.pearson_ci_high
    assert result.pearson_ci_high <= 1.0
    line = associate([1.0, 2.0, 3.0, 4.0, 5.0], [3.0, 5.0, 7.0, 9.0, 11.0])
    assert line.pearson_r == pytest.approx(1.0) and line.spearman_rho == pytest.approx(1.0)
    assert line.loo_rmse == pytest.approx(0.0, abs=1e-9)
    assert (line.slope, line.intercept) == (pytest.approx(2.0), pytest.approx(1.0))
    assert line.pearson_ci_low == pytest.approx(1.0)


def test_loo_rmse_by_hand():
    x, y = np.array([0.0, 1.0, 2.0, 3.0]), np.array([0.0, 1.0, 2.0, 5.0])
    errors = []
    for i in range(4):
        keep = np.arange(4) != i
        fit = stats.linregress(x[keep], y[keep])
        errors.append(y[i] - (fit.slope * x[i] + fit.intercept))
    assert loo_rmse(x, y) == pytest.approx(np.sqrt(np.mean(np.square(errors))), rel=1e-12)


def test_fewer_than_four_models_is_an_error():
    with pytest.raises(InputError, match="at least 4 models"):
        associate([1.0, 2.0, 3.0], [1.0, 2.0, 4.0])
    profiles = {m: {"isoscore": [0.1, 0.2]} for m in ("a", "b", "c")}
    with pytest.raises(InputError, match="at least 4 models"):
        measures_vs_score(profiles, {m: 1 for m in profiles}, {m: 1.0 for m in profiles}, ["isoscore"])


def test_undefined_and_constant_measures_are_marked():
    result = associate([1.0, float("nan"), 2.0, 3.0], [1.0, 2.0, 3.0, 4.0])
    assert np.isnan(result.pearson_r) and "undefined" in result.reason
    assert result.to_dict()["pearson_r"] is None
    assert "same for every model" in associate([1.0] * 4, [1.0, 2.0, 3.0, 4.0]).reason


def test_summaries_and_table():
    assert summarise_profile([1.0, 2.0, 6.0], 1) == {"chosen": 2.0, "last": 6.0, "mean": 3.0}
    assert np.isnan(summarise_profile([1.0, 2.0], None)["chosen"])
    profiles = {f"m{i}": {"pr": [i, 2.0 * i, 3.0 * i]} for i in range(1, 6)}
    scores = {f"m{i}": 10.0 * i for i in range(1, 6)}
    rows = measures_vs_score(profiles, {m: 0 for m in profiles}, scores, ["pr"], n_boot=100)
    assert [(r.measure, r.summary) for r in rows] == [("pr", "chosen"), ("pr", "last"), ("pr", "mean")]
    assert all(r.pearson_r == pytest.approx(1.0) and r.n_models == 5 for r in rows)
    with pytest.raises(InputError, match="no external score for model"):
        measures_vs_score(profiles, {}, {"m1": 1.0}, ["pr"])


def test_read_scores(tmp_path):
    good = tmp_path / "scores.tsv"
    good.write_text("# average GLUE\nmodel\tscore\tsource\nbert\t80.5\tpaper\nrandom\t40\tours\n", encoding="utf-8")
    assert read_scores(good) == {"bert": 80.5, "random": 40.0}
    bad = tmp_path / "bad.tsv"
    bad.write_text("model\tscore\nbert\thigh\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"bad.tsv, line 2: score 'high' is not a number"):
        read_scores(bad)
    twice = tmp_path / "twice.tsv"
    twice.write_text("model\tscore\nbert\t1\nbert\t2\n", encoding="utf-8")
    with pytest.raises(InputError, match="appears twice"):
        read_scores(twice)
    nocol = tmp_path / "nocol.tsv"
    nocol.write_text("name\tscore\nbert\t1\n", encoding="utf-8")
    with pytest.raises(InputError, match="no 'model' column"):
        read_scores(nocol)


def test_study_config_checks(tmp_path):
    from pathlib import Path

    from hidden_geometry import config as hg_config
    from hidden_geometry.config import check_studies

    root = Path(__file__).resolve().parents[1]
    schema = root / "workflow" / "schemas" / "config.schema.yaml"
    demo = hg_config.load_yaml(root / "config" / "demo.yaml")
    scores = tmp_path / "scores.tsv"
    scores.write_text("model\tscore\n", encoding="utf-8")
    demo["studies"] = {
        "glue": {"dataset": "demo_text", "models": ["minilm", "minilm@init", "a"], "scores": str(scores)}
    }
    config = hg_config.prepare_config(demo, schema, base_dir=root)
    assert config["studies"]["glue"]["bootstrap"] == 2000 and config["studies"]["glue"]["score_name"] == "score"
    with pytest.raises(InputError, match=r"studies.glue.models': a study needs at least 4 models, got 3"):
        check_studies(config)
    config["studies"]["glue"]["models"] = ["minilm", "minilm@init", "esm2_t6_random", "igpt_tiny_random"]
    with pytest.raises(InputError, match="not analysed on dataset 'demo_text'"):
        check_studies(config)
