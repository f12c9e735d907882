"""A study whose scores a rule writes: a small causal LM trained here, its checkpoints scored on held-out texts
(rule train_model's heldout_loss.tsv), and the study table over those checkpoints (a small Snakemake run)."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest
import yaml

from hidden_geometry.studies import STUDY_COLUMNS, STUDY_MEASURES, read_scores

from .conftest import run_snakemake

pytestmark = pytest.mark.slow

RUNS = ["tiny@step0", "tiny@step10", "tiny@step30", "tiny"]
STEPS = {"tiny@step0": 0, "tiny@step10": 10, "tiny@step30": 30, "tiny": 80}


def small_config() -> dict:
    return {
        "results_dir": "results", "cache_dir": "resources", "seed": 0,
        "datasets": {"text": {"kind": "synthetic_text", "n_per_class": 15}},
        "models": {"tiny": {"kind": "text", "backend": "transformers",
                            "train": {"dataset": "text", "objective": "causal", "steps": 80,
                                      "checkpoint_steps": [0, 10, 30], "num_layers": 1, "hidden_size": 32,
                                      "attention_heads": 2, "learning_rate": 0.003, "heldout_fraction": 0.2}}},
        "analyses": [{"dataset": "text", "models": ["tiny"]}],
        "studies": {"heldout": {"dataset": "text", "models": RUNS, "score_name": "heldout_loss", "bootstrap": 200,
                                "scores": "results/training/tiny/heldout_loss.tsv"}},
        "extraction": {"shard_size": 100, "token_budget": 2048, "device": "cpu", "progress": False},
        "geometry": {"graph_k": 16, "k": 5, "decimation_repeats": 2},
        "probe": {"folds": 3},
        "figures": {"formats": ["png"], "dpi": 40},
    }


@pytest.fixture(scope="module")
def study_run(tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp("study_heldout")
    configfile = workdir / "config.yaml"
    configfile.write_text(yaml.safe_dump(small_config()), encoding="utf-8")
    run = run_snakemake(workdir, "results/studies/heldout/measures_vs_score.tsv", "--configfile", str(configfile),
                        configfile=None, timeout=900)
    assert run.returncode == 0, run.output[-4000:]
    return run


def test_heldout_scores_are_written_by_the_training_rule_and_fall(study_run) -> None:
    path = study_run.results / "training" / "tiny" / "heldout_loss.tsv"
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0].split("\t") == ["model", "step", "score"]
    scores = read_scores(path)
    assert sorted(scores) == sorted(RUNS)
    assert {line.split("\t")[0]: int(line.split("\t")[1]) for line in lines[1:]} == STEPS
    assert all(math.isfinite(s) and s > 0 for s in scores.values())
    # Training lowers the loss on texts it never saw, step after step (measured: 5.77, 5.45, 5.06, 4.33).
    by_step = [scores[run] for run in RUNS]
    assert all(later < earlier for earlier, later in pairwise(by_step)), by_step
    assert scores["tiny"] < 0.85 * scores["tiny@step0"]
    # The checkpoints' training.json hold the same numbers; the held-out texts were not trained on.
    import json

    for run, step in STEPS.items():
        info = json.loads((study_run.workdir / "resources" / "trained_models" / "tiny" / f"step_{step:06d}"
                           / "training.json").read_text())
        assert info["heldout_loss"] == pytest.approx(scores[run], rel=1e-5)
        assert info["n_texts"] == 48 and info["n_heldout_texts"] == 12


def test_study_over_heldout_loss_has_every_measure_and_sane_values(study_run) -> None:
    lines = (study_run.results / "studies" / "heldout" / "measures_vs_score.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    assert tuple(header) == STUDY_COLUMNS
    rows = [dict(zip(header, line.split("\t"))) for line in lines[1:]]
    assert sorted((r["measure"], r["summary"]) for r in rows) == sorted(
        (m, s) for m in STUDY_MEASURES for s in ("chosen", "last", "mean"))
    defined = 0
    for row in rows:
        assert int(row["n_models"]) == 4
        if row["pearson_r"] == "NA":
            assert row["reason"] not in ("", "NA")
            continue
        defined += 1
        r, low, high = float(row["pearson_r"]), float(row["pearson_ci_low"]), float(row["pearson_ci_high"])
        assert -1 <= r <= 1 and -1 <= float(row["spearman_rho"]) <= 1
        assert -1 <= low <= r + 1e-9 and r - 1e-9 <= high <= 1
        assert float(row["loo_rmse"]) >= 0
    assert defined >= len(STUDY_MEASURES)
    for measure in STUDY_MEASURES:
        assert (study_run.results / "figures" / "studies" / "heldout" / f"{measure}.png").stat().st_size > 0
