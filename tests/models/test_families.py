"""Models beyond the ones the workflow was written with: protein BERT/ALBERT/ELECTRA/RoBERTa/T5 encoders,
GPT-2/Llama/GPT-NeoX decoders; the tokenizer check; batch invariance of every adapter."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from families import (
    build_decoder,
    build_protein_bert,
    build_protein_roberta,
    build_protein_t5,
)

from hidden_geometry.errors import InputError
from hidden_geometry.models.extraction import (
    extract_representations,
    load_layer,
    read_manifest,
)
from hidden_geometry.models.loading import load_model

SEQUENCES = ["MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ", "GSHMLE", "ACDEFGHIKLMNPQRSTVWY", "KV", "MVLSPADKTNVKAAWGKV"]
TEXTS = ["a good film", "bad", "the movie was very long and boring", "fine", "a short film"]


@pytest.fixture(scope="module")
def family_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("families")


def _spaced(family: str) -> Callable[[Path], Path]:
    if family == "t5":
        return lambda d: build_protein_t5(d / "t5")
    return lambda d: build_protein_bert(d / family, family)


@pytest.mark.parametrize("family", ["bert", "albert", "electra", "t5"])
def test_space_separated_protein_vocabulary_runs_end_to_end_without_extra_settings(
    family: str, family_dir: Path, tmp_path: Path
) -> None:
    folder = _spaced(family)(family_dir)
    adapter = load_model({"path": str(folder), "kind": "protein"}, name=family)
    # Plain sequences would be one [UNK]: the loader found the spacing from the tokenizer itself.
    assert adapter.residue_spacing is True and adapter.per_residue is True
    assert adapter.token_count("MKTAY") == 5 + adapter.tokenizer.num_special_tokens_to_add()
    ids = [f"p{i}" for i in range(len(SEQUENCES))]
    extract_representations(adapter, SEQUENCES, ids, tmp_path / "out", progress=False)
    manifest = read_manifest(tmp_path / "out")
    assert manifest["residue_spacing"] is True and manifest["kind"] == "protein"
    assert manifest["unknown_tokens"] == 0 and manifest["n_tokens"] == sum(len(s) for s in SEQUENCES)
    for layer in range(adapter.n_layers):
        vectors = load_layer(tmp_path / "out", layer, mmap=False)
        distinct = np.unique(np.round(vectors, 5), axis=0)
        assert len(distinct) == len(SEQUENCES), f"layer {layer}: inputs collapsed to {len(distinct)} vectors"


def test_t5_protein_model_runs_its_encoder_only_and_pools_without_the_end_token(family_dir: Path) -> None:
    adapter = load_model({"path": str(build_protein_t5(family_dir / "t5_manual")), "kind": "protein"})
    assert type(adapter.model).__name__ == "T5EncoderModel" and adapter.n_layers == 3
    pooled = adapter.forward_pooled(["MKTAY", "GS"])
    enc = adapter.tokenizer("M K T A Y", return_tensors="pt")
    assert adapter.tokenizer.convert_ids_to_tokens(enc["input_ids"][0])[-1] == "</s>"
    with torch.no_grad():
        states = adapter.model(**enc, output_hidden_states=True).hidden_states
    for layer in range(3):
        np.testing.assert_allclose(pooled[layer][0], states[layer][0, :5].mean(0).numpy(), rtol=1e-5, atol=1e-6)


def test_rare_residues_follow_the_spaced_family_convention(family_dir: Path) -> None:
    folder = build_protein_t5(family_dir / "t5_rare")
    adapter = load_model({"path": str(folder), "kind": "protein"})
    assert adapter.residue_map == {"U": "X", "Z": "X", "O": "X", "B": "X"}
    assert adapter.describe()["residue_map"] == {"B": "X", "O": "X", "U": "X", "Z": "X"}
    as_x = adapter.forward_pooled(["MKXAXGXVX"])
    rare = adapter.forward_pooled(["MKUAZGOVB"])
    np.testing.assert_allclose(rare[2], as_x[2], rtol=1e-6)
    kept = load_model({"path": str(folder), "kind": "protein", "rare_residues": "keep"})
    assert kept.residue_map == {} and not np.allclose(kept.forward_pooled(["MKUAZGOVB"])[2], as_x[2])


def test_rare_residues_setting_is_for_protein_models_only() -> None:
    from hidden_geometry.models.loading import validate_spec

    # the workflow's schema fills in the default for every model: a text model with it is fine
    assert validate_spec({"source": "a/b", "kind": "text", "rare_residues": "auto"}, "t")["rare_residues"] == "auto"
    with pytest.raises(InputError, match=r"models\.t\.rare_residues: only protein models"):
        validate_spec({"source": "a/b", "kind": "text", "rare_residues": "x"}, "t")
    with pytest.raises(InputError, match=r"models\.t\.rare_residues: 'y' is not one of"):
        validate_spec({"source": "a/b", "kind": "protein", "rare_residues": "y"}, "t")


def test_per_letter_protein_tokenizer_is_not_spaced(family_dir: Path) -> None:
    adapter = load_model({"path": str(build_protein_roberta(family_dir / "roberta_plain")), "kind": "protein"})
    assert adapter.residue_spacing is False and adapter.per_residue is True
    assert adapter.residue_map == {}  # the tokenizer reads U, Z, O and B itself
    assert adapter.prepare("MKU") == "MKU"


def test_a_tokenizer_that_cannot_read_the_inputs_stops_with_one_line(family_dir: Path, tmp_path: Path) -> None:
    # The case: a ProtBert-like model run on plain sequences (configured as a text model, so nothing
    # spaces them) reads every sequence as [CLS] [UNK] [SEP].
    folder = build_protein_bert(family_dir / "bert_unread", "bert")
    adapter = load_model({"path": str(folder), "kind": "text"}, name="protbert_like")
    ids = [f"p{i}" for i in range(len(SEQUENCES))]
    with pytest.raises(InputError) as info:
        extract_representations(adapter, SEQUENCES, ids, tmp_path / "out", progress=False)
    message = str(info.value)
    assert "\n" not in message
    assert "models.protbert_like" in message and "100.0%" in message and "max_unknown_share" in message
    assert "[CLS] [UNK] [SEP]" in message
    assert not (tmp_path / "out").exists()


def test_unknown_share_is_recorded_and_its_limit_is_settable(family_dir: Path, tmp_path: Path) -> None:
    folder = build_protein_roberta(family_dir / "roberta_unknown")
    # one J (not in the vocabulary) in 166 residues
    sequences = ["MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQJ" + "ACDEFGHIKL" * 2, "GSHMLEACDEFGHIKLMNPQRSTVWY" * 2,
                 "ACDEFGHIKLMNPQRSTVWY" * 3]
    ids = ["a", "b", "c"]
    adapter = load_model({"path": str(folder), "kind": "protein"}, name="rob")
    extract_representations(adapter, sequences, ids, tmp_path / "ok", progress=False)
    manifest = read_manifest(tmp_path / "ok")
    n_tokens = sum(len(s) for s in sequences)
    assert manifest["unknown_tokens"] == 1 and manifest["n_tokens"] == n_tokens == 166
    assert manifest["unknown_share"] == pytest.approx(1 / n_tokens) and manifest["unknown_share"] < 0.01
    strict = load_model({"path": str(folder), "kind": "protein", "max_unknown_share": 0.001}, name="rob")
    with pytest.raises(InputError, match=r"models\.rob: .*0\.6% .*limit 0\.1%.*'MKTAY.* -> \.\.\. I E V Q <unk> A C"):
        extract_representations(strict, sequences, ids, tmp_path / "strict", progress=False)
    with pytest.raises(InputError, match="max_unknown_share"):
        load_model({"path": str(folder), "kind": "protein", "max_unknown_share": 2})


def test_fair_esm_counts_no_unknown_tokens(tiny_esm_pt: Path, tmp_path: Path) -> None:
    adapter = load_model({"path": str(tiny_esm_pt)})
    extract_representations(adapter, SEQUENCES, [str(i) for i in range(5)], tmp_path / "o", progress=False)
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["unknown_tokens"] == 0 and manifest["n_tokens"] == sum(len(s) for s in SEQUENCES)


@pytest.mark.parametrize("family", ["gpt2", "llama", "gpt_neox"])
def test_decoders_pool_the_last_real_token(family: str, family_dir: Path) -> None:
    adapter = load_model({"path": str(build_decoder(family_dir / f"dec_{family}", family)), "kind": "text",
                          "pooling": "last"})
    batched = adapter.forward_pooled(TEXTS)
    for row, text in enumerate(TEXTS):
        enc = adapter.tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            states = adapter.model(**enc, output_hidden_states=True).hidden_states
        for layer in range(adapter.n_layers):
            np.testing.assert_allclose(batched[layer][row], states[layer][0, -1].numpy(), rtol=1e-5, atol=1e-6)


def test_last_pooling_takes_the_last_real_token_with_left_padding_too() -> None:
    from hidden_geometry.models.adapters import pool_hidden

    hidden = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)
    left = torch.tensor([[False, False, True, True], [True, True, True, True]])
    right = torch.tensor([[True, True, False, False], [True, True, True, True]])
    np.testing.assert_array_equal(pool_hidden(hidden, left, "last")[0].numpy(), hidden[0, 3].numpy())
    np.testing.assert_array_equal(pool_hidden(hidden, right, "last")[0].numpy(), hidden[0, 1].numpy())


def _relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12))


ADAPTERS: dict[str, tuple[Callable[[Path, dict], dict], str]] = {
    "fair-esm": (lambda d, f: {"path": str(f["tiny_esm_pt"])}, "protein"),
    "hf-esm2": (lambda d, f: {"path": str(f["tiny_esm_hf"]), "kind": "esm2"}, "protein"),
    "bert-protein": (
        lambda d, f: {"path": str(build_protein_bert(d / "bi_bert", "bert")), "kind": "protein"},
        "protein",
    ),
    "albert-protein": (
        lambda d, f: {"path": str(build_protein_bert(d / "bi_albert", "albert")), "kind": "protein"},
        "protein",
    ),
    "electra-protein": (
        lambda d, f: {"path": str(build_protein_bert(d / "bi_electra", "electra")), "kind": "protein"},
        "protein",
    ),
    "roberta-protein": (lambda d, f: {"path": str(build_protein_roberta(d / "bi_rob")), "kind": "protein"}, "protein"),
    "t5-encoder": (lambda d, f: {"path": str(build_protein_t5(d / "bi_t5")), "kind": "protein"}, "protein"),
    "bert-text": (lambda d, f: {"path": str(f["tiny_bert"])}, "text"),
    "gpt2": (lambda d, f: {"path": str(build_decoder(d / "bi_gpt2", "gpt2")), "pooling": "last"}, "text"),
    "llama": (lambda d, f: {"path": str(build_decoder(d / "bi_llama", "llama")), "pooling": "last"}, "text"),
    "llama-mean": (lambda d, f: {"path": str(build_decoder(d / "bi_llama_m", "llama"))}, "text"),
    "gpt-neox": (lambda d, f: {"path": str(build_decoder(d / "bi_neox", "gpt_neox")), "pooling": "last"}, "text"),
    "imagegpt": (lambda d, f: {"path": str(f["tiny_igpt"]), "kind": "igpt"}, "image"),
}


@pytest.mark.parametrize("name", list(ADAPTERS))
def test_every_adapter_is_batch_invariant(
    name: str, family_dir: Path, tiny_esm_pt: Path, tiny_esm_hf: Path, tiny_bert: Path, tiny_igpt: Path
) -> None:
    make, inputs_kind = ADAPTERS[name]
    fixtures = {"tiny_esm_pt": tiny_esm_pt, "tiny_esm_hf": tiny_esm_hf, "tiny_bert": tiny_bert, "tiny_igpt": tiny_igpt}
    adapter = load_model(make(family_dir, fixtures), name=name)
    inputs: list[Any]
    if inputs_kind == "protein":
        inputs = SEQUENCES
    elif inputs_kind == "text":
        inputs = TEXTS
    else:
        rng = np.random.default_rng(0)
        inputs = [rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8) for _ in range(4)]
    together = adapter.forward_pooled(inputs)
    for row, item in enumerate(inputs):
        alone = adapter.forward_pooled([item])
        for layer in range(adapter.n_layers):
            error = _relative_error(together[layer][row], alone[layer][0])
            assert error < 1e-5, f"{name}: item {row} layer {layer} differs by {error:.2e} in a batch"
    # and the vectors are not all the same (a collapse would pass the comparison trivially)
    assert not np.allclose(together[-1][0], together[-1][1])
