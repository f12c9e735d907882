"""`hidden-geometry layers` (hidden_geometry.analysis.analyse_layers) against the workflow's scripts
(input_keep_mask, layer_geometry, linear_probe, summarize_model) on one extraction folder: the same bytes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from hidden_geometry.cli import main as cli_main
from hidden_geometry.data.items import ItemTable, write_items

from .conftest import Named, fake_snakemake

N_LAYERS, N, D = 4, 90, 6
SETTINGS = {"graph_k": 16, "k": 5, "metric": "euclidean", "twonn_fraction": 0.9, "decimation_repeats": 3,
            "exclude_groups": True, "seed": 0}


def extraction_folder(tmp_path: Path) -> tuple[Path, Path]:
    """A 4-layer extraction folder (one layer with a NaN row, one collapsed layer, one duplicated input) and its
    items table."""
    rng = np.random.default_rng(7)
    labels = [str(i % 3) for i in range(N)]
    texts = [f"t{i}" for i in range(N)]
    texts[10] = texts[3]  # an identical input: kept once
    emb = tmp_path / "embeddings"
    emb.mkdir()
    for layer in range(N_LAYERS):
        X = rng.normal(size=(3, D))[[i % 3 for i in range(N)]] * (layer + 1) + rng.normal(size=(N, D))
        X[10] = X[3]
        if layer == 1:
            X[20] = np.nan
        if layer == 3:
            X[:] = 1.0  # every row identical: an undefined layer
        np.save(emb / f"layer_{layer:03d}.npy", X.astype(np.float32))
    ids = [f"item{i}" for i in range(N)]
    (emb / "ids.txt").write_text("\n".join(ids) + "\n")
    (emb / "manifest.json").write_text(json.dumps({"n_layers": N_LAYERS}))
    table = tmp_path / "items.tsv"
    write_items(ItemTable(ids=ids, columns={"label": labels, "group": [f"g{i // 2}" for i in range(N)],
                                            "text": texts}), table)
    return emb, table


def run_scripts(script, tmp_path: Path, emb: Path, table: Path) -> Path:
    out = tmp_path / "wf"
    out.mkdir()
    keep = out / "keep.npy"
    script("input_keep_mask").main(fake_snakemake(
        input={"table": str(table)}, output={"keep": str(keep), "summary": str(out / "keep.json")},
        params={"deduplicate": True}, log=[str(out / "log")]))
    inputs = {"table": str(table), "embeddings": str(emb), "keep": str(keep)}
    files: dict[str, list[str]] = {"measures": [], "probes": [], "graphs": []}
    for layer in range(N_LAYERS):
        name = f"{layer:03d}"
        files["graphs"].append(str(out / f"graphs/layer_{name}.npz"))
        files["measures"].append(str(out / f"measures/layer_{name}.json"))
        files["probes"].append(str(out / f"probe/layer_{name}.json"))
        script("layer_geometry").main(fake_snakemake(
            input=inputs, output={"graph": files["graphs"][-1], "measures": files["measures"][-1]},
            params={**SETTINGS, "label_column": "label"}, wildcards={"layer": name}, log=[str(out / "log")]))
        script("linear_probe").main(fake_snakemake(
            input=inputs, output={"probe": files["probes"][-1]},
            params={"folds": 3, "max_items": None, "label_column": "label", "seed": 0},
            wildcards={"layer": name}, log=[str(out / "log")]))
    script("summarize_model").main(fake_snakemake(
        input=Named(embeddings=str(emb), **files),
        output={"layers": str(out / "layers.tsv"), "choice": str(out / "layer_choice.json"),
                "overlap_matrix": str(out / "overlap_matrix.tsv")},
        params={"k": SETTINGS["k"], "untrained": False, "model_label": "m"}, wildcards={"dataset": "d", "model": "m"},
        log=[str(out / "log")]))
    return out


def test_cli_layers_writes_the_workflow_table_byte_for_byte(script, tmp_path: Path, capsys) -> None:
    emb, table = extraction_folder(tmp_path)
    workflow = run_scripts(script, tmp_path, emb, table)
    status = cli_main(["layers", str(emb), "--items", str(table), "--graph-k", "16", "-k", "5",
                       "--decimation-repeats", "3", "--folds", "3", "-o", str(tmp_path / "cli.tsv"),
                       "--choice", str(tmp_path / "cli_choice.json")])
    printed = json.loads(capsys.readouterr().out)
    assert status == 0 and printed["n_kept"] == N - 1
    expected = (workflow / "layers.tsv").read_text()
    assert (tmp_path / "cli.tsv").read_text() == expected
    header, *rows = [line.split("\t") for line in expected.splitlines()]
    table = [dict(zip(header, row)) for row in rows]
    # the NaN row out of layer 1; layer 3 undefined
    assert table[1]["n_points"] == str(N - 2) and table[3]["id_twonn"] == "NA"
    workflow_choice = json.loads((workflow / "layer_choice.json").read_text())
    cli_choice = json.loads((tmp_path / "cli_choice.json").read_text())
    assert cli_choice == {k: v for k, v in workflow_choice.items() if k not in ("dataset", "model", "model_label",
                                                                               "untrained", "unknown_share", "role",
                                                                               "dtype")}
    assert cli_choice["chosen_layer"] is None  # the collapsed layer leaves the ID undefined


def test_cli_layers_refuses_items_of_another_folder(tmp_path: Path, capsys) -> None:
    emb, _ = extraction_folder(tmp_path)
    other = tmp_path / "other.tsv"
    write_items(ItemTable(ids=[f"x{i}" for i in range(N)], columns={"label": ["a"] * N, "text": ["t"] * N}), other)
    status = cli_main(["layers", str(emb), "--items", str(other), "-o", str(tmp_path / "t.tsv")])
    err = capsys.readouterr().err
    assert status == 2 and "not the items of" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "t.tsv").exists()
    (emb / "manifest.json").unlink()
    assert cli_main(["layers", str(emb), "-o", str(tmp_path / "t.tsv")]) == 2
    assert "no manifest.json" in capsys.readouterr().err


def test_cli_layers_without_items_has_no_label_columns(tmp_path: Path, capsys) -> None:
    emb, _ = extraction_folder(tmp_path)
    status = cli_main(["layers", str(emb), "--graph-k", "8", "--decimation-repeats", "2",
                       "-o", str(tmp_path / "t.tsv")])
    printed = json.loads(capsys.readouterr().out)
    assert status == 0 and printed["n_kept"] == N - 1 and "--items" in printed["label_reason"]
    lines = (tmp_path / "t.tsv").read_text().splitlines()
    rows = [dict(zip(lines[0].split("\t"), line.split("\t"))) for line in lines[1:]]
    assert all(r["label_overlap"] == "NA" and r["probe_acc"] == "NA" for r in rows) and rows[0]["id_twonn"] != "NA"


def test_cli_layers_image_items_need_their_pixels(tmp_path: Path, capsys) -> None:
    emb, _ = extraction_folder(tmp_path)
    table = tmp_path / "images.tsv"
    write_items(ItemTable(ids=[f"item{i}" for i in range(N)], columns={"label": ["a", "b", "c"] * (N // 3)}), table)
    assert cli_main(["layers", str(emb), "--items", str(table), "-o", str(tmp_path / "t.tsv")]) == 2
    assert "pixels" in capsys.readouterr().err
    np.save(tmp_path / "images.npy", np.zeros((N - 1, 2, 2, 3), dtype=np.uint8))
    assert cli_main(["layers", str(emb), "--items", str(table), "--images", str(tmp_path / "images.npy"),
                     "-o", str(tmp_path / "t.tsv")]) == 2
    assert f"{N - 1} images for {N} items" in capsys.readouterr().err
    assert not (tmp_path / "t.tsv").exists()
