"""The demo run's outputs (config/demo.yaml, run once per session by the `demo_run` fixture): every file the issue
names exists and holds what it should (columns, ranges, no NaN where defined), figures are valid, the report
builds, every job logged, and the untrained models are marked."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from hidden_geometry.config import analyses, load_yaml, prepare_config
from hidden_geometry.data.items import read_items

from .conftest import DEMO_CONFIG, ROOT, run_snakemake

pytestmark = pytest.mark.slow

LAYER_COLUMNS = ["layer", "relative_depth", "id_twonn", "id_twonn_err", "id_gride", "id_gride_err", "gride_scale",
                 "gride_n2", "overlap_next", "label_overlap", "anisotropy", "probe_acc", "probe_acc_std", "n_points",
                 "cell_density", "isoscore", "participation_ratio", "mean_cosine", "token_anisotropy"]
TRAINED_STEPS = {"tiny_gpt@step0": 0, "tiny_gpt@step20": 20, "tiny_gpt@step60": 60, "tiny_gpt": 150}
EXPECTED_LAYERS = {"minilm": 7, "minilm@init": 7, "esm2_t6_random": 7, "igpt_tiny_random": 5, "tiny_bert": 3,
                   **{run: 3 for run in TRAINED_STEPS}}
UNTRAINED = {"minilm": False, "minilm@init": True, "esm2_t6_random": True, "igpt_tiny_random": True,
             "tiny_bert": False, **{run: step == 0 for run, step in TRAINED_STEPS.items()}}
DECODERS = {"igpt_tiny_random", *TRAINED_STEPS}


@pytest.fixture(scope="module")
def demo_config() -> dict:
    return prepare_config(load_yaml(DEMO_CONFIG), ROOT / "workflow" / "schemas" / "config.schema.yaml", ROOT)


@pytest.fixture(scope="module")
def pairs(demo_config: dict) -> list[tuple[str, str]]:
    return [(a.dataset, a.model) for a in analyses(demo_config)]


def read_table(path: Path) -> tuple[list[str], list[dict[str, float]]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    rows = [{k: (math.nan if v == "NA" else float(v)) for k, v in zip(header, line.split("\t"))} for line in lines[1:]]
    return header, rows


def test_every_analysis_has_its_tables(demo_run: Path, pairs: list) -> None:
    assert sorted(model for _, model in pairs) == sorted(EXPECTED_LAYERS)
    for dataset, model in pairs:
        assert (demo_run / dataset / model / "layers.tsv").is_file()
        assert (demo_run / dataset / model / "layer_choice.json").is_file()


def test_layers_tables_have_exactly_the_issue_columns_and_sane_values(demo_run: Path, pairs: list) -> None:
    for dataset, model in pairs:
        header, rows = read_table(demo_run / dataset / model / "layers.tsv")
        assert header == LAYER_COLUMNS
        assert [int(r["layer"]) for r in rows] == list(range(EXPECTED_LAYERS[model]))
        assert rows[0]["relative_depth"] == 0.0 and rows[-1]["relative_depth"] == 1.0
        n_items = len(read_items(demo_run / dataset / "items.tsv").ids)
        for row in rows:
            for column in LAYER_COLUMNS:
                if column != "overlap_next" or row["layer"] < len(rows) - 1:
                    assert math.isfinite(row[column]), (dataset, model, column, row)
            assert 0 < row["id_twonn"] < 200 and 0 < row["id_gride"] < 200
            assert row["id_twonn_err"] >= 0 and row["id_gride_err"] >= 0 and row["gride_scale"] > 0
            assert 0 <= row["overlap_next"] <= 1 if row["layer"] < len(rows) - 1 else math.isnan(row["overlap_next"])
            assert 0 <= row["label_overlap"] <= 1 and 0 <= row["anisotropy"] <= 1
            assert 0 <= row["probe_acc"] <= 1 and row["probe_acc_std"] >= 0
            assert 10 < row["n_points"] <= n_items
            # The measures of docs/measures.md, in their ranges (every demo model keeps a token sample).
            # cell_density (Marbut et al.'s patchiness, 4 blocks x 256 cells of the 2000-token sample): at least
            # 1 - 256 / (4 x 2000) (equal counts), below 1 + 255 / 16 (every token in one cell of each block).
            assert 1 - 256 / (4 * 2000) - 1e-9 <= row["cell_density"] < 1 + 255 / 16 and 0 <= row["isoscore"] <= 1
            assert 1 <= row["participation_ratio"] <= row["n_points"] and -1 <= row["mean_cosine"] <= 1
            assert 0 < row["token_anisotropy"] <= 1
        # Token states are not the pooled vectors: the two anisotropies differ somewhere in depth.
        assert any(abs(r["token_anisotropy"] - r["anisotropy"]) > 1e-3 for r in rows), (dataset, model)
        assert len({row["gride_n2"] for row in rows}) == 1, (dataset, model)  # one Gride rank per model
        choice = json.loads((demo_run / dataset / model / "layer_choice.json").read_text())
        assert choice["gride_rank"]["n2"] == rows[0]["gride_n2"] and "every layer" in choice["id_profile"]
        assert all(p["phase"] in ("expansion", "contraction", "plateau", "second_peak") for p in choice["phases"])
        matrix = read_table(demo_run / dataset / model / "overlap_matrix.tsv")[1]
        assert len(matrix) == len(rows) and all(m[str(int(m["layer"]))] == 1.0 for m in matrix)


def test_trained_text_model_separates_topics_better_than_its_initialisation(demo_run: Path) -> None:
    """A content check: MiniLM's last layers overlap with the topic labels far more than random BERT's."""
    _, trained = read_table(demo_run / "demo_text" / "minilm" / "layers.tsv")
    _, untrained = read_table(demo_run / "demo_text" / "minilm@init" / "layers.tsv")
    assert trained[-1]["label_overlap"] > untrained[-1]["label_overlap"] + 0.1
    assert trained[-1]["label_overlap"] > 0.5


def test_layer_choice_holds_the_choice_its_evidence_and_the_probe(demo_run: Path, pairs: list) -> None:
    for dataset, model in pairs:
        choice = json.loads((demo_run / dataset / model / "layer_choice.json").read_text())
        _, rows = read_table(demo_run / dataset / model / "layers.tsv")
        assert choice["dataset"] == dataset and choice["model"] == model
        assert choice["untrained"] is UNTRAINED[model]
        assert ("(untrained)" in choice["model_label"]) is UNTRAINED[model]
        chosen, best = choice["chosen_layer"], choice["probe_best_layer"]
        assert 0 <= chosen < len(rows) and 0 <= best < len(rows)
        assert choice["chosen_relative_depth"] == pytest.approx(rows[chosen]["relative_depth"])
        assert choice["probe_acc_at_best"] == pytest.approx(max(r["probe_acc"] for r in rows), abs=1e-6)
        assert choice["probe_acc_at_chosen"] == pytest.approx(rows[chosen]["probe_acc"], abs=1e-6)
        assert choice["evidence"]  # the rule's evidence (profile, peak, ...) is recorded
        # ImageGPT and the tiny causal LM are decoders; MiniLM, the tiny masked LM (BERT) and ESM-2 are encoders.
        assert choice["role"] == ("decoder" if model in DECODERS else "encoder")


def test_summary_table_marks_untrained_models(demo_run: Path, pairs: list) -> None:
    lines = (demo_run / "summary.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    rows = [dict(zip(header, line.split("\t"))) for line in lines[1:]]
    assert sorted((r["dataset"], r["model"]) for r in rows) == sorted(pairs)
    for row in rows:
        assert row["untrained"] == ("true" if UNTRAINED[row["model"]] else "false")
        # the run's unknown-token share, carried from the extraction manifest (the demo's tokenizers read everything)
        manifest = json.loads((demo_run / row["dataset"] / row["model"] / "embeddings" / "manifest.json").read_text())
        assert float(row["unknown_share"]) == pytest.approx(manifest["unknown_share"]) == 0.0
        assert manifest["n_tokens"] > 0


def test_dataset_outputs(demo_run: Path) -> None:
    for dataset in ("demo_text", "demo_proteins", "demo_digits"):
        summary = json.loads((demo_run / dataset / "dataset.json").read_text())
        items = read_items(demo_run / dataset / "items.tsv")
        assert summary["n_items"] == len(items.ids) > 100
        keep = np.load(demo_run / dataset / "keep.npy")
        assert keep.dtype == bool and keep.shape == (len(items.ids),) and keep.sum() > 100
    images = np.load(demo_run / "demo_digits" / "images.npy")
    assert images.dtype == np.uint8 and images.shape[1:] == (16, 16, 3)
    assert "superfamily" in read_items(demo_run / "demo_proteins" / "items.tsv").columns


def test_embeddings_are_gathered_in_input_order(demo_run: Path) -> None:
    folder = demo_run / "demo_proteins" / "esm2_t6_random"
    ids = (folder / "embeddings" / "ids.txt").read_text().splitlines()
    assert ids == read_items(demo_run / "demo_proteins" / "items.tsv").ids
    manifest = json.loads((folder / "embeddings" / "manifest.json").read_text())
    assert manifest["n_layers"] == 7 and manifest["untrained"] is True
    shards = sorted(p.name for p in (folder / "shards").iterdir())
    assert len(shards) >= 2, "the demo must exercise several extraction shards"
    layer = np.load(folder / "embeddings" / "layer_003.npy")
    assert layer.shape == (len(ids), 320) and np.isfinite(layer).all()


def test_per_layer_files_exist(demo_run: Path, pairs: list) -> None:
    for dataset, model in pairs:
        base = demo_run / dataset / model
        for layer in range(EXPECTED_LAYERS[model]):
            assert (base / "graphs" / f"layer_{layer:03d}.npz").is_file()
            measures = json.loads((base / "measures" / f"layer_{layer:03d}.json").read_text())
            assert measures["layer"] == layer and measures["undefined_reason"] is None
            assert [s["n2"] for s in measures["gride"]["scales"]][:3] == [2, 4, 8]
            assert (base / "probe" / f"layer_{layer:03d}.json").is_file()


def test_figures_are_valid_png_and_pdf(demo_run: Path) -> None:
    figures = demo_run / "figures"
    expected = [figures / d / f"{fig}.{ext}" for d in ("demo_text", "demo_proteins", "demo_digits")
                for fig in ("fig1_id_depth", "fig2_overlap_next", "fig4_label_overlap", "anisotropy_depth")
                for ext in ("png", "pdf")]
    expected += [figures / "demo_text" / "minilm" / f"fig3_id_checkpoints.{ext}" for ext in ("png", "pdf")]
    expected += [figures / d / m / f"{fig}.{ext}" for d, m in (("demo_text", "minilm"), ("demo_text", "minilm@init"),
                 ("demo_proteins", "esm2_t6_random"), ("demo_digits", "igpt_tiny_random"))
                 for fig in ("gride_scale", "probe_vs_id", "overlap_matrix") for ext in ("png", "pdf")]
    for path in expected:
        data = path.read_bytes()
        if path.suffix == ".png":
            assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5000, path
        else:
            assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF"), path


def test_every_job_wrote_its_log_and_heavy_jobs_a_benchmark(demo_run: Path) -> None:
    logs = demo_run / "logs"
    for rule in ("prepare_dataset", "build_random_model", "input_keep_mask", "extract_shard", "gather_embeddings",
                 "layer_geometry", "linear_probe", "summarize_model", "figures_dataset",
                 "figures_model", "figures_checkpoints", "summary_table"):
        files = list((logs / rule).rglob("*.log")) if rule != "summary_table" else [logs / "summary_table.log"]
        assert files and all(f.is_file() for f in files), rule
    extract_log = next((logs / "extract_shard").rglob("*.log")).read_text()
    assert "items/s" in extract_log  # the extraction's progress and speed are in the job's log
    for rule in ("extract_shard", "layer_geometry", "linear_probe"):
        assert list((demo_run / "benchmarks" / rule).rglob("*.tsv")), rule


def test_no_temporary_or_partial_files_left(demo_run: Path) -> None:
    leftovers = [p for p in demo_run.rglob("*") if ".tmp" in p.name or p.name.endswith((".partial", ".building"))]
    assert not leftovers


def test_report_builds_with_every_figure(demo_run: Path, tmp_path: Path) -> None:
    workdir = demo_run.parent
    report = workdir / "report.html"
    run = run_snakemake(workdir, "--report", str(report), timeout=600)
    assert run.returncode == 0, run.output[-3000:]
    html = report.read_text(encoding="utf-8", errors="replace")
    assert len(html) > 100_000
    for name in ("fig1_id_depth", "fig2_overlap_next", "fig3_id_checkpoints", "fig4_label_overlap", "gride_scale",
                 "probe_vs_id", "overlap_matrix", "anisotropy_depth", "layers.tsv", "summary.tsv"):
        assert name in html, name


def test_training_run_and_its_dynamics(demo_run: Path) -> None:
    """The tiny causal LM was really trained (logged loss falls) and training.tsv holds every step x layer."""
    header, rows = read_table(demo_run / "demo_text" / "tiny_gpt" / "training.tsv")
    assert header == ["step", *LAYER_COLUMNS]
    assert sorted({int(r["step"]) for r in rows}) == [0, 20, 60, 150]
    for step in (0, 20, 60, 150):
        run = "tiny_gpt" if step == 150 else f"tiny_gpt@step{step}"
        _, per_layer = read_table(demo_run / "demo_text" / run / "layers.tsv")
        mine = [r for r in rows if int(r["step"]) == step]
        assert [r["id_twonn"] for r in mine] == [r["id_twonn"] for r in per_layer]
    # Training changes the geometry: the last layer's label overlap at step 150 differs from the initialisation's.
    last = {int(r["step"]): r for r in rows if int(r["layer"]) == 2}
    assert last[150]["label_overlap"] != last[0]["label_overlap"]
    loss_log = (demo_run / "logs" / "train_model" / "tiny_gpt.log").read_text()
    losses = [float(line.rsplit("loss ", 1)[1].split()[0]) for line in loss_log.splitlines() if ": loss " in line]
    assert len(losses) >= 5 and losses[-1] < 0.7 * losses[0]
    for ext in ("png", "pdf"):
        assert (demo_run / "figures" / "demo_text" / "tiny_gpt" / f"training_dynamics.{ext}").stat().st_size > 1000


def test_study_over_the_causal_lm_checkpoints_and_their_heldout_loss(demo_run: Path) -> None:
    """The demo's study: the four tiny_gpt runs against their held-out loss (rule train_model's heldout_loss.tsv)."""
    from hidden_geometry.studies import STUDY_COLUMNS, STUDY_MEASURES, read_scores

    scores = read_scores(demo_run / "training" / "tiny_gpt" / "heldout_loss.tsv")
    assert sorted(scores) == sorted(TRAINED_STEPS)
    by_step = [scores[run] for run, _ in sorted(TRAINED_STEPS.items(), key=lambda item: item[1])]
    assert by_step[-1] < by_step[0] and all(math.isfinite(s) and s > 0 for s in by_step)  # it generalises
    lines = (demo_run / "studies" / "heldout" / "measures_vs_score.tsv").read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    assert tuple(header) == STUDY_COLUMNS
    rows = [dict(zip(header, line.split("\t"))) for line in lines[1:]]
    assert sorted((r["measure"], r["summary"]) for r in rows) == sorted(
        (m, s) for m in STUDY_MEASURES for s in ("chosen", "last", "mean"))  # one row per measure and summary
    defined = 0
    for row in rows:
        assert int(row["n_models"]) == len(TRAINED_STEPS)
        if row["pearson_r"] == "NA":
            assert row["reason"] not in ("", "NA"), row
            continue
        defined += 1
        r, low, high = float(row["pearson_r"]), float(row["pearson_ci_low"]), float(row["pearson_ci_high"])
        assert -1 <= r <= 1 and -1 <= float(row["spearman_rho"]) <= 1
        assert -1 <= low <= r + 1e-9 <= high + 2e-9 <= 1 + 2e-9, row  # the interval holds the estimate
        assert float(row["loo_rmse"]) >= 0
    assert defined >= len(STUDY_MEASURES)
    for measure in STUDY_MEASURES:
        for ext in ("png", "pdf"):
            assert (demo_run / "figures" / "studies" / "heldout" / f"{measure}.{ext}").stat().st_size > 1000
