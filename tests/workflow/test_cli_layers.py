"""`hidden-geometry layers` on the demo's extraction folders writes the workflow's layers.tsv byte for byte, and its
layer choice equals the workflow's (less the workflow's own keys: dataset, model, model_label, untrained,
unknown_share, role, dtype)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hidden_geometry.cli import main as cli_main
from hidden_geometry.config import analyses, load_yaml, prepare_config

from .conftest import DEMO_CONFIG, ROOT

pytestmark = pytest.mark.slow


def test_cli_layers_reproduces_every_demo_table(demo_run: Path, tmp_path: Path, capsys) -> None:
    config = prepare_config(load_yaml(DEMO_CONFIG), ROOT / "workflow" / "schemas" / "config.schema.yaml", ROOT)
    geometry, probe = config["geometry"], config["probe"]
    pairs = analyses(config)
    assert pairs
    for pair in pairs:
        dataset_dir, model_dir = demo_run / pair.dataset, demo_run / pair.dataset / pair.model
        out = tmp_path / f"{pair.dataset}-{pair.model}"
        args = ["layers", str(model_dir / "embeddings"), "--items", str(dataset_dir / "items.tsv"),
                "--label-column", pair.label_column, "--graph-k", str(geometry["graph_k"]), "-k", str(geometry["k"]),
                "--metric", geometry["metric"], "--twonn-fraction", str(geometry["twonn_fraction"]),
                "--decimation-repeats", str(geometry["decimation_repeats"]), "--folds", str(probe["folds"]),
                "--max-items", str(probe["max_items"]), "--seed", str(config["seed"]),
                "--deduplicate-inputs" if geometry["deduplicate_inputs"] else "--no-deduplicate-inputs",
                "--exclude-groups" if geometry["exclude_groups"] else "--no-exclude-groups",
                "-o", str(out / "layers.tsv"), "--choice", str(out / "layer_choice.json")]
        if (dataset_dir / "images.npy").is_file():
            args += ["--images", str(dataset_dir / "images.npy")]
        assert cli_main(args) == 0, capsys.readouterr().err
        assert (out / "layers.tsv").read_bytes() == (model_dir / "layers.tsv").read_bytes(), pair
        workflow_choice = json.loads((model_dir / "layer_choice.json").read_text())
        for key in ("dataset", "model", "model_label", "untrained", "unknown_share", "role", "dtype"):
            workflow_choice.pop(key)
        assert json.loads((out / "layer_choice.json").read_text()) == workflow_choice, pair
