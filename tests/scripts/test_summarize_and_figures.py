"""scripts/summarize_model.py, summary_table.py and the figure scripts, on per-layer files made here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from hidden_geometry.geometry import knn_graph, save_graph

from .conftest import Named, fake_snakemake

COLUMNS = ["layer", "relative_depth", "id_twonn", "id_twonn_err", "id_gride", "id_gride_err", "gride_scale",
           "gride_n2", "overlap_next", "label_overlap", "anisotropy", "probe_acc", "probe_acc_std", "n_points",
           "cell_density", "isoscore", "participation_ratio", "mean_cosine", "token_anisotropy"]
IDS = [4.0, 9.0, 12.0, 7.0, 6.5, 6.4]  # a peak at layer 2, then a descent: the rule picks a layer after it
ACCS = [0.5, 0.6, 0.7, 0.9, 0.8, 0.8]


def layer_files(tmp_path: Path) -> dict[str, list[str]]:
    """Measures, probe and graph files of a 6-layer model, with known values."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 5))
    measures, probes, graphs = [], [], []
    for layer, (id_value, acc) in enumerate(zip(IDS, ACCS)):
        scales = [{"n1": 2**j, "n2": 2 ** (j + 1), "scale": 0.1 * 2**j, "id": id_value + 0.1 * j, "err": 0.2, "n": 60}
                  for j in range(3)]
        m = {"layer": layer, "n_points": 60, "undefined_reason": None, "label_overlap": 0.1 * layer,
             "twonn": {"id": id_value + 0.5}, "twonn_decimation": {"err": 0.3},
             "gride": {"scales": scales, "chosen_index": 1}, "anisotropy": {"pc1_share": 0.25},
             "measures": {"cell_density": 1.0 + layer, "isoscore": 0.1 * layer, "participation_ratio": 2.0 + layer,
                          "mean_cosine": 0.05 * layer, "token_anisotropy": None if layer == 0 else 0.2}}
        path = tmp_path / f"measures/layer_{layer:03d}.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(m))
        measures.append(str(path))
        p = tmp_path / f"probe/layer_{layer:03d}.json"
        p.parent.mkdir(exist_ok=True)
        p.write_text(json.dumps({"layer": layer, "probe": {"mean": acc, "std": 0.05}}))
        probes.append(str(p))
        g = tmp_path / f"graphs/layer_{layer:03d}.npz"
        # layers 0-2 share one representation (overlap 1), later layers are new random points
        save_graph(knn_graph(X if layer < 3 else rng.normal(size=(60, 5)), 8), g)
        graphs.append(str(g))
    return {"measures": measures[::-1], "probes": probes, "graphs": graphs[::-1]}  # any order in


def summarize(script, tmp_path: Path) -> tuple[list[dict], dict]:
    files = layer_files(tmp_path)
    emb = tmp_path / "embeddings"
    emb.mkdir()
    (emb / "manifest.json").write_text(json.dumps({"unknown_share": 0.25, "dtype": "bf16"}))
    out = {"layers": str(tmp_path / "layers.tsv"), "choice": str(tmp_path / "layer_choice.json"),
           "overlap_matrix": str(tmp_path / "overlap_matrix.tsv")}
    script("summarize_model").main(fake_snakemake(
        input=Named(embeddings=str(emb), **files), output=out,
        params={"k": 5, "untrained": True, "model_label": "m (untrained)"},
        wildcards={"dataset": "d", "model": "m"}, log=[str(tmp_path / "s.log")]))
    lines = Path(out["layers"]).read_text().splitlines()
    header = lines[0].split("\t")
    rows = [dict(zip(header, line.split("\t"))) for line in lines[1:]]
    return rows, json.loads(Path(out["choice"]).read_text())


def test_layers_table_and_choice(script, tmp_path: Path) -> None:
    rows, choice = summarize(script, tmp_path)
    assert list(rows[0]) == COLUMNS
    assert [int(r["layer"]) for r in rows] == list(range(6))
    assert [float(r["relative_depth"]) for r in rows] == [0, 0.2, 0.4, 0.6, 0.8, 1]
    assert [float(r["id_gride"]) for r in rows] == [v + 0.1 for v in IDS]  # the model's rank: n2 = 4 (index 1)
    assert [r["gride_n2"] for r in rows] == ["4"] * 6 and choice["gride_rank"]["n2"] == 4
    assert "n2=4" in choice["id_profile"] and "every layer" in choice["id_profile"]
    assert [p["phase"] for p in choice["phases"]][:2] == ["expansion", "contraction"]
    assert choice["phases"][0] == {"phase": "expansion", "start": 0, "end": 2}
    assert float(rows[0]["id_twonn"]) == 4.5 and float(rows[0]["id_twonn_err"]) == 0.3
    assert float(rows[0]["overlap_next"]) == 1.0 and float(rows[1]["overlap_next"]) == 1.0
    assert float(rows[3]["overlap_next"]) < 0.5 and rows[5]["overlap_next"] == "NA"
    assert [float(r["cell_density"]) for r in rows] == [1.0 + layer for layer in range(6)]
    assert [float(r["participation_ratio"]) for r in rows] == [2.0 + layer for layer in range(6)]
    assert float(rows[4]["isoscore"]) == 0.4 and float(rows[2]["mean_cosine"]) == 0.1
    assert rows[0]["token_anisotropy"] == "NA" and float(rows[1]["token_anisotropy"]) == 0.2
    assert choice["untrained"] is True and choice["id_measure"] == "id_gride"
    assert choice["unknown_share"] == 0.25  # carried from the extraction manifest
    assert choice["dtype"] == "bf16"  # the extraction's precision, from the manifest
    assert choice["evidence"]["peak_layer"] == 2 and choice["chosen_layer"] > 2
    assert choice["probe_best_layer"] == 3 and choice["probe_acc_at_best"] == 0.9
    assert choice["probe_acc_at_chosen"] == ACCS[choice["chosen_layer"]]
    matrix = script("figures_model").read_overlap_matrix(str(tmp_path / "overlap_matrix.tsv"))
    assert matrix.shape == (6, 6) and np.array_equal(matrix, matrix.T) and np.all(np.diag(matrix) == 1.0)
    assert matrix[0, 2] == 1.0 and matrix[0, 1] == 1.0  # layers 0-2 share one representation
    assert [matrix[i, i + 1] for i in range(5)] == [float(r["overlap_next"]) for r in rows[:5]]
    assert matrix[2, 4] < 0.5 and matrix[3, 5] < 0.5


def test_one_gride_rank_for_all_layers(script, tmp_path: Path) -> None:
    """Layer 4's own curve is flattest at n2 = 8, the others' at n2 = 4: every row reads n2 = 4."""
    files = layer_files(tmp_path)
    path = sorted(files["measures"])[4]
    measures = json.loads(Path(path).read_text())
    for scale, value in zip(measures["gride"]["scales"], (3.0, 6.0, 6.05)):
        scale["id"] = value
    measures["gride"]["chosen_index"] = 2
    Path(path).write_text(json.dumps(measures))
    emb = tmp_path / "embeddings"
    emb.mkdir()
    (emb / "manifest.json").write_text(json.dumps({}))
    out = {"layers": str(tmp_path / "layers.tsv"), "choice": str(tmp_path / "layer_choice.json"),
           "overlap_matrix": str(tmp_path / "overlap_matrix.tsv")}
    script("summarize_model").main(fake_snakemake(
        input=Named(embeddings=str(emb), **files), output=out,
        params={"k": 5, "untrained": False, "model_label": "m"},
        wildcards={"dataset": "d", "model": "m"}, log=[str(tmp_path / "s.log")]))
    lines = Path(out["layers"]).read_text().splitlines()
    rows = [dict(zip(lines[0].split("\t"), line.split("\t"))) for line in lines[1:]]
    assert [r["gride_n2"] for r in rows] == ["4"] * 6
    assert float(rows[4]["id_gride"]) == 6.0 and float(rows[4]["gride_scale"]) == 0.2
    curves = script("figures_model").gride_curves(files["measures"])
    assert [c["chosen_index"] for c in curves] == [1] * 6


def test_summary_table_and_figures(script, tmp_path: Path) -> None:
    model_dir = tmp_path / "d" / "m"
    model_dir.mkdir(parents=True)
    summarize(script, model_dir)
    summary = tmp_path / "summary.tsv"
    script("summary_table").main(fake_snakemake(input={"choices": [str(model_dir / "layer_choice.json")]},
                                                output=Named(str(summary)), log=[str(tmp_path / "t.log")]))
    header, row = [line.split("\t") for line in summary.read_text().splitlines()]
    assert dict(zip(header, row))["untrained"] == "true" and dict(zip(header, row))["probe_best_layer"] == "3"
    assert dict(zip(header, row))["unknown_share"] == "0.25"

    figures = {f"{fig}_{ext}": str(tmp_path / f"{fig}.{ext}")
               for fig in ("fig1_id_depth", "fig2_overlap_next", "fig4_label_overlap") for ext in ("png", "pdf")}
    script("figures_dataset").main(fake_snakemake(
        input={"tables": [str(model_dir / "layers.tsv")]}, output=figures,
        params={"models": ["m"], "labels": {"m": "m (untrained)"}, "dataset": "d", "k": 5, "dpi": 40},
        log=[str(tmp_path / "f.log")]))
    model_figures = {f"{fig}_{ext}": str(tmp_path / f"{fig}.{ext}")
                     for fig in ("gride_scale", "probe_vs_id", "overlap_matrix") for ext in ("png", "pdf")}
    script("figures_model").main(fake_snakemake(
        input=Named(table=str(model_dir / "layers.tsv"), choice=str(model_dir / "layer_choice.json"),
                    measures=sorted(str(p) for p in (model_dir / "measures").iterdir()),
                    overlap_matrix=str(model_dir / "overlap_matrix.tsv")),
        output=model_figures, params={"label": "m (untrained)", "k": 5, "dpi": 40}, wildcards={"dataset": "d"},
        log=[str(tmp_path / "g.log")]))
    assert json.loads((model_dir / "layer_choice.json").read_text())["role"] is None  # no manifest in "emb"
    anisotropy = {f"anisotropy_depth_{ext}": str(tmp_path / f"anisotropy_depth.{ext}") for ext in ("png", "pdf")}
    script("figures_dataset").main(fake_snakemake(
        input={"tables": [str(model_dir / "layers.tsv")]}, output=anisotropy,
        params={"models": ["m"], "labels": {"m": "m (untrained)"}, "dataset": "d", "k": 5, "dpi": 40},
        log=[str(tmp_path / "f2.log")]))
    for path in [*figures.values(), *model_figures.values(), *anisotropy.values()]:
        head = Path(path).read_bytes()[:8]
        assert head.startswith(b"\x89PNG" if path.endswith(".png") else b"%PDF-"), path
