"""Encoder or decoder: read from the model's config, settable, recorded in the extraction manifest."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hidden_geometry.errors import InputError
from hidden_geometry.models.extraction import extract_representations, read_manifest
from hidden_geometry.models.loading import load_model
from hidden_geometry.models.role import model_role


def test_roles_from_configs() -> None:
    from transformers import (
        BertConfig,
        BertModel,
        GPT2Config,
        GPT2Model,
        ImageGPTConfig,
        ImageGPTModel,
    )

    tiny = dict(vocab_size=20)
    assert model_role(GPT2Model(GPT2Config(n_embd=8, n_layer=1, n_head=2, **tiny))) == "decoder"
    assert model_role(ImageGPTModel(ImageGPTConfig(n_embd=8, n_layer=1, n_head=2, **tiny))) == "decoder"
    bert = BertModel(BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8, **tiny))
    assert model_role(bert) == "encoder"
    bert.config.is_decoder = True  # a BERT used as a causal decoder
    assert model_role(bert) == "decoder"
    assert model_role(torch.nn.Linear(2, 2)) == "encoder"  # fair-esm models carry no config: ESM is an encoder
    assert model_role(bert, override="encoder") == "encoder"
    with pytest.raises(InputError, match="role 'both'"):
        model_role(bert, override="both")


def test_manifest_records_the_role(tiny_bert: Path, tmp_path: Path) -> None:
    adapter = load_model({"path": str(tiny_bert)}, name="bert")
    texts, ids = ["a good film", "bad music"], ["t0", "t1"]
    extract_representations(adapter, texts, ids, tmp_path / "a", progress=False)
    assert read_manifest(tmp_path / "a")["role"] == "encoder"
    extract_representations(adapter, texts, ids, tmp_path / "b", progress=False, role="decoder")
    assert read_manifest(tmp_path / "b")["role"] == "decoder"


def test_role_is_a_config_key_kept_out_of_the_load_spec() -> None:
    from hidden_geometry import config as hg_config

    root = Path(__file__).resolve().parents[2]
    schema = root / "workflow" / "schemas" / "config.schema.yaml"
    demo = hg_config.load_yaml(root / "config" / "demo.yaml")
    demo["models"]["minilm"]["role"] = "decoder"
    config = hg_config.prepare_config(demo, schema, base_dir=root)
    assert hg_config.expand_model_specs(config)["minilm"]["role"] == "decoder"
    assert "role" not in hg_config.model_load_spec(config, "minilm")
    demo["models"]["minilm"]["role"] = "both"
    with pytest.raises(InputError, match="role"):
        hg_config.prepare_config(demo, schema, base_dir=root)
