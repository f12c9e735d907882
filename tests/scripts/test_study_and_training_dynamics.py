"""scripts/study.py and scripts/training_dynamics.py on layers tables written here with known values."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hidden_geometry.errors import InputError
from hidden_geometry.studies import STUDY_COLUMNS, STUDY_MEASURES

from .conftest import Named, fake_snakemake

COLUMNS = ["layer", "relative_depth", "id_twonn", "id_gride", "overlap_next", "label_overlap", "anisotropy",
           "probe_acc", *STUDY_MEASURES[5:]]


def write_model(folder: Path, values: dict[str, list[float]], chosen: int) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    n = len(values["layer"])
    lines = ["\t".join(COLUMNS)] + ["\t".join(str(values[c][i]) for c in COLUMNS) for i in range(n)]
    (folder / "layers.tsv").write_text("\n".join(lines) + "\n")
    (folder / "layer_choice.json").write_text(json.dumps({"chosen_layer": chosen}))
    return str(folder / "layers.tsv")


def profile(scale: float, n: int = 4) -> dict[str, list[float]]:
    base = np.arange(n, dtype=float)
    values = {c: list(scale * (base + 1) / 10) for c in COLUMNS}
    values["layer"], values["relative_depth"] = list(base), list(base / (n - 1))
    values["mean_cosine"] = [0.3] * n  # the same for every model: undefined association
    return values


def test_study_table_and_figures(script, tmp_path: Path) -> None:
    models = ["m1", "m2", "m3", "m4", "m5"]
    tables = [write_model(tmp_path / m, profile(s), chosen=1) for m, s in zip(models, (1.0, 2.0, 3.0, 4.0, 5.5))]
    scores = tmp_path / "scores.tsv"
    scores.write_text("model\tscore\n" + "".join(f"{m}\t{10 * s}\n" for m, s in zip(models, (1, 2, 3, 4, 5))))
    out = {"table": str(tmp_path / "out" / "measures_vs_score.tsv")}
    out.update({f"fig_{m}_png": str(tmp_path / "out" / f"{m}.png") for m in STUDY_MEASURES})
    script("study").main(fake_snakemake(
        input=Named(tables=tables, scores=str(scores)), output=Named(**out),
        params={"study": "s", "models": models, "score_name": "GLUE", "n_boot": 200, "seed": 0, "dpi": 40},
        log=[str(tmp_path / "log.txt")]))
    lines = Path(out["table"]).read_text().splitlines()
    header = lines[0].split("\t")
    assert header == list(STUDY_COLUMNS)
    rows = {(r["measure"], r["summary"]): r for r in (dict(zip(header, line.split("\t"))) for line in lines[1:])}
    assert len(rows) == 3 * len(STUDY_MEASURES)
    isoscore_last = rows[("isoscore", "last")]
    expected = np.corrcoef([1.0, 2.0, 3.0, 4.0, 5.5], [1, 2, 3, 4, 5])[0, 1]
    assert float(isoscore_last["pearson_r"]) == pytest.approx(expected, abs=1e-5)
    assert float(isoscore_last["spearman_rho"]) == pytest.approx(1.0) and isoscore_last["n_models"] == "5"
    assert rows[("mean_cosine", "mean")]["pearson_r"] == "NA" and "same for every model" in \
        rows[("mean_cosine", "mean")]["reason"]
    for m in STUDY_MEASURES:
        assert Path(out[f"fig_{m}_png"]).read_bytes()[:4] == b"\x89PNG"
    # Three models: a one-line error.
    with pytest.raises(InputError, match="at least 4 models"):
        script("study").main(fake_snakemake(
            input=Named(tables=tables[:3], scores=str(scores)), output=Named(**out),
            params={"study": "s", "models": models[:3], "score_name": "GLUE", "n_boot": 200, "seed": 0, "dpi": 40},
            log=[str(tmp_path / "log2.txt")]))


def test_training_table_and_figure(script, tmp_path: Path) -> None:
    steps = [0, 50, 10, 200]
    tables = [write_model(tmp_path / f"s{s}", profile(1.0 + s / 100), chosen=2) for s in steps]
    out = {"table": str(tmp_path / "training.tsv"), "fig_png": str(tmp_path / "training_dynamics.png")}
    script("training_dynamics").main(fake_snakemake(
        input=Named(tables=tables), output=Named(**out),
        params={"steps": steps, "label": "tiny", "dataset": "d", "dpi": 40}, log=[str(tmp_path / "log.txt")]))
    lines = Path(out["table"]).read_text().splitlines()
    header = lines[0].split("\t")
    assert header == ["step", *COLUMNS]
    rows = [dict(zip(header, line.split("\t"))) for line in lines[1:]]
    assert [int(r["step"]) for r in rows] == [0] * 4 + [10] * 4 + [50] * 4 + [200] * 4
    assert float(rows[-1]["id_gride"]) == pytest.approx(3.0 * 4 / 10)  # step 200: scale 3, layer 3
    assert Path(out["fig_png"]).read_bytes()[:4] == b"\x89PNG"
