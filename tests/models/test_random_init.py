"""Random-weight builders: published architecture sizes, real checkpoint formats, untrained markers."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hidden_geometry.errors import InputError
from hidden_geometry.models.loading import safe_torch_load
from hidden_geometry.models.random_init import (
    ESM2_BY_NAME,
    UNTRAINED_MARKER,
    build_random_bert,
    build_random_esm2,
    colour_grid_clusters,
    esm2_vocabulary,
)


def test_default_esm2_is_the_published_t6_8m(tmp_path: Path) -> None:
    path = build_random_esm2(tmp_path)
    assert path.name == "esm2_t6_8M_UR50D.pt"
    assert (tmp_path / "esm2_t6_8M_UR50D-contact-regression.pt").is_file()
    data = safe_torch_load(path, trust_pickle=False, key="test")
    cfg = data["cfg"]["model"]
    assert isinstance(cfg, argparse.Namespace)
    assert (cfg.encoder_layers, cfg.encoder_embed_dim, cfg.encoder_attention_heads) == ESM2_BY_NAME["esm2_t6_8M_UR50D"]
    assert all(key.startswith("encoder.") for key in data["model"])
    assert data["hidden_geometry"]["untrained"] is True
    regression = safe_torch_load(path.with_name("esm2_t6_8M_UR50D-contact-regression.pt"), False, "test")
    assert set(regression["model"]) == {"contact_head.regression.weight", "contact_head.regression.bias"}
    from hidden_geometry.models.loading import load_model

    model = load_model({"path": str(path)}).model
    n_params = sum(p.numel() for p in model.parameters())
    # fair-esm lists esm2_t6_8M_UR50D as "8M": 7.51M parameters with the LM head tied to the embeddings.
    assert 7.4e6 < n_params < 8.0e6, n_params


def test_esm2_t12_architecture_has_35m_parameters() -> None:
    from esm.model.esm2 import ESM2

    with torch.device("meta"):
        model = ESM2(*ESM2_BY_NAME["esm2_t12_35M_UR50D"])
    n_params = sum(p.numel() for p in model.parameters())
    assert 33e6 < n_params < 36e6, n_params


def test_esm2_builder_rejects_names_fair_esm_would_misread(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="esm2"):
        build_random_esm2(tmp_path / "protein_model.pt", num_layers=1, embed_dim=16, attention_heads=2)


def test_esm2_builds_are_reproducible_from_the_seed(tmp_path: Path) -> None:
    a = build_random_esm2(tmp_path / "a" / "esm2_x.pt", num_layers=1, embed_dim=16, attention_heads=2, seed=3)
    b = build_random_esm2(tmp_path / "b" / "esm2_x.pt", num_layers=1, embed_dim=16, attention_heads=2, seed=3)
    c = build_random_esm2(tmp_path / "c" / "esm2_x.pt", num_layers=1, embed_dim=16, attention_heads=2, seed=4)
    wa, wb, wc = (safe_torch_load(p, False, "t")["model"]["encoder.embed_tokens.weight"] for p in (a, b, c))
    assert torch.equal(wa, wb)
    assert not torch.equal(wa, wc)


def test_hf_esm2_folder_has_the_hub_layout(tiny_esm_hf: Path) -> None:
    for name in ("config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json", UNTRAINED_MARKER):
        assert (tiny_esm_hf / name).is_file(), name
    config = json.loads((tiny_esm_hf / "config.json").read_text())
    assert config["model_type"] == "esm"
    assert config["position_embedding_type"] == "rotary"
    assert (tiny_esm_hf / "vocab.txt").read_text().split() == esm2_vocabulary()
    assert json.loads((tiny_esm_hf / UNTRAINED_MARKER).read_text())["untrained"] is True


def test_hf_esm2_tokenizer_matches_fair_esm_alphabet(tiny_esm_hf: Path) -> None:
    import esm
    from transformers import AutoTokenizer

    alphabet = esm.data.Alphabet.from_architecture("ESM-1b")
    tokenizer = AutoTokenizer.from_pretrained(tiny_esm_hf, local_files_only=True)
    seq = "MKTAYIAKQ"
    expected = [alphabet.cls_idx] + [alphabet.get_idx(c) for c in seq] + [alphabet.eos_idx]
    assert tokenizer(seq)["input_ids"] == expected


def test_imagegpt_clusters_cover_the_colour_cube() -> None:
    clusters = colour_grid_clusters(8)
    assert clusters.shape == (512, 3)
    assert clusters.dtype == np.float32
    assert len(np.unique(clusters, axis=0)) == 512
    assert clusters.min() > -1.0 and clusters.max() < 1.0


def test_imagegpt_folder_loads_its_processor_and_marker(tiny_igpt: Path) -> None:
    processor_config = json.loads((tiny_igpt / "preprocessor_config.json").read_text())
    assert np.asarray(processor_config["clusters"]).shape == (512, 3)
    assert processor_config["size"] == {"height": 8, "width": 8}
    config = json.loads((tiny_igpt / "config.json").read_text())
    assert (config["n_layer"], config["n_embd"], config["n_head"], config["n_positions"]) == (2, 32, 4, 64)
    assert config["vocab_size"] == 513
    assert (tiny_igpt / UNTRAINED_MARKER).is_file()


def test_default_imagegpt_is_igpt_small_size() -> None:
    from transformers import ImageGPTConfig, ImageGPTModel

    from hidden_geometry.models.random_init import IGPT_ARCHITECTURES

    n_layer, n_embd, n_head = IGPT_ARCHITECTURES["small"]
    with torch.device("meta"):
        model = ImageGPTModel(
            ImageGPTConfig(vocab_size=513, n_positions=1024, n_layer=n_layer, n_embd=n_embd, n_head=n_head)
        )
    n_params = sum(p.numel() for p in model.parameters())
    # Chen et al. (2020) give iGPT-S as 76M parameters.
    assert 70e6 < n_params < 80e6, n_params


def test_bert_vocabulary_tokenises_plain_text_without_unknowns(tiny_bert: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert, local_files_only=True)
    tokens = tokenizer.tokenize("The movie was boring, but xylophones 42 are fine!")
    assert "[UNK]" not in tokens
    assert "movie" in tokens
    ids = tokenizer("a good film")["input_ids"]
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id


def test_bert_builder_rejects_heads_that_do_not_divide(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="divisible"):
        build_random_bert(tmp_path, num_layers=1, hidden_size=30, attention_heads=4)
