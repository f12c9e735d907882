"""Token sample kept at extraction: the bottom-k tokens by seeded key, the same across batching and shards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hidden_geometry.errors import InputError
from hidden_geometry.models.extraction import (
    extract_representations,
    gather_shards,
    read_manifest,
)
from hidden_geometry.models.loading import load_model
from hidden_geometry.models.token_sample import (
    KEYS_FILE,
    TokenSample,
    item_keys,
    load_token_sample,
    token_file,
)


def ids_for(items):
    return [f"item{i:02d}" for i in range(len(items))]


def all_real_tokens(esm, proteins, seed):
    """Every real token's key and state per layer, one protein at a time (no sampling): the reference."""
    keys, states = [], [[] for _ in range(esm.n_layers)]
    alphabet = esm.alphabet
    for seq in proteins:
        tokens = torch.tensor([[alphabet.cls_idx] + [alphabet.get_idx(c) for c in seq] + [alphabet.eos_idx]])
        with torch.inference_mode():
            reps = esm.model(tokens, repr_layers=list(range(esm.n_layers)))["representations"]
        keys.append(item_keys(seq, len(seq), seed))
        for layer in range(esm.n_layers):
            states[layer].append(reps[layer][0, 1 : len(seq) + 1].numpy())
    return np.concatenate(keys), [np.concatenate(s) for s in states]


def test_sample_is_the_bottom_k_of_every_real_token(tiny_esm_pt: Path, proteins: list[str], tmp_path: Path) -> None:
    esm = load_model({"path": str(tiny_esm_pt)}, name="tiny_esm")
    ids = ids_for(proteins)
    size = 25
    extract_representations(esm, proteins, ids, tmp_path / "all", token_budget=100, progress=False, token_sample=size,
                            seed=3)
    assert esm.token_sample is None  # extraction leaves the adapter as it found it
    keys, states = all_real_tokens(esm, proteins, seed=3)
    order = np.argsort(keys)[:size]
    np.testing.assert_array_equal(np.load(tmp_path / "all" / KEYS_FILE), keys[order])
    for layer in range(esm.n_layers):
        sample = load_token_sample(tmp_path / "all", layer)
        assert sample.shape == (size, esm.hidden_size) and sample.dtype == np.float32
        np.testing.assert_allclose(sample, states[layer][order], rtol=1e-4, atol=1e-5)
    assert read_manifest(tmp_path / "all")["token_sample"] == size
    # Sharded with another batching: the gathered sample is the same tokens.
    shards = []
    for start, stop in ((0, 4), (4, len(proteins))):
        folder = tmp_path / f"shard{start}"
        extract_representations(esm, proteins, ids, folder, token_budget=40, progress=False, start=start, stop=stop,
                                token_sample=size, seed=3)
        shards.append(folder)
    gather_shards(shards, tmp_path / "gathered")
    np.testing.assert_array_equal(np.load(tmp_path / "gathered" / KEYS_FILE), keys[order])
    for layer in range(esm.n_layers):
        np.testing.assert_allclose(load_token_sample(tmp_path / "gathered", layer),
                                   load_token_sample(tmp_path / "all", layer), rtol=1e-4, atol=1e-5)


def test_no_sample_by_default_and_another_seed_picks_other_tokens(tiny_esm_pt: Path, proteins: list[str],
                                                                   tmp_path: Path) -> None:
    esm = load_model({"path": str(tiny_esm_pt)}, name="tiny_esm")
    extract_representations(esm, proteins, ids_for(proteins), tmp_path / "none", progress=False)
    assert not (tmp_path / "none" / token_file(0)).exists() and load_token_sample(tmp_path / "none", 0) is None
    extract_representations(esm, proteins, ids_for(proteins), tmp_path / "s1", progress=False, token_sample=10, seed=1)
    extract_representations(esm, proteins, ids_for(proteins), tmp_path / "s2", progress=False, token_sample=10, seed=2)
    assert not np.array_equal(np.load(tmp_path / "s1" / KEYS_FILE), np.load(tmp_path / "s2" / KEYS_FILE))


def test_the_same_token_offered_twice_counts_once() -> None:
    sample = TokenSample(n_layers=1, size=100)
    states = [torch.arange(12.0).reshape(1, 4, 3)]
    real = torch.tensor([[True, True, False, True]])
    sample.offer(["abc"], states, real)
    sample.offer(["abc"], states, real)  # an fp32 recompute of the same batch
    assert sample.keys.size == 3 and sample.states[0].shape == (3, 3)
    with pytest.raises(InputError, match="positive integer"):
        TokenSample(n_layers=1, size=0)


def test_slots_hold_the_bottom_keys_of_every_offer_across_evictions() -> None:
    # Many offers of random keys, some offered again: whatever the order of entries and evictions, the sample is
    # the bottom-`size` of all unique keys, in key order, each with the states of its first offer.
    rng = np.random.default_rng(7)
    for size in (1, 5, 17, 40):
        sample = TokenSample(n_layers=2, size=size)
        offered_keys, offered_states = [], []
        for _ in range(12):
            keys = rng.random(int(rng.integers(1, 30)))
            if offered_keys:
                keys = np.concatenate([keys, rng.choice(np.concatenate(offered_keys), size=3)])
            states = [rng.standard_normal((keys.size, 4)).astype(np.float32) for _ in range(2)]
            sample._merge(keys, states)
            offered_keys.append(keys)
            offered_states.append(states)
        every_key = np.concatenate(offered_keys)
        unique, first = np.unique(every_key, return_index=True)
        np.testing.assert_array_equal(sample.keys, unique[:size])
        for layer in range(2):
            every_state = np.concatenate([states[layer] for states in offered_states])
            np.testing.assert_array_equal(sample.states[layer], every_state[first[:size]])
