"""Small models trained here: the loss falls, runs are reproducible, checkpoints carry their step and load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hidden_geometry.errors import InputError
from hidden_geometry.models.loading import load_model
from hidden_geometry.models.training import (
    checkpoint_folder,
    heldout_loss,
    heldout_split,
    loss_curve,
    read_step,
    text_vocabulary,
    train_language_model,
)

TEXTS = [f"the {a} {b} sat on the {c} mat" for a in ("red", "blue", "green") for b in ("cat", "dog")
         for c in ("big", "small", "old")] * 2


@pytest.mark.parametrize("objective", ["causal", "masked"])
def test_loss_falls_and_the_run_is_reproducible(objective: str, tmp_path: Path) -> None:
    settings = dict(objective=objective, steps=40, checkpoint_steps=[0, 20, 40], num_layers=1, hidden_size=32,
                    attention_heads=2, batch_size=8, learning_rate=3e-3, max_length=16, seed=4)
    run = train_language_model(TEXTS, tmp_path / "a", **settings)
    assert len(run.losses) == 40
    assert np.mean(run.losses[-5:]) < 0.7 * np.mean(run.losses[:5])  # it learns the tiny grammar
    assert sorted(run.checkpoints) == [0, 20, 40]
    assert [read_step(checkpoint_folder(tmp_path / "a", s)) for s in (0, 20, 40)] == [0, 20, 40]
    np.testing.assert_array_equal(loss_curve(tmp_path / "a")[:, 0], np.arange(1, 41))
    again = train_language_model(TEXTS, tmp_path / "b", **settings)
    assert again.losses == run.losses
    for name in ("model.safetensors", "config.json"):
        assert (checkpoint_folder(tmp_path / "a", 40) / name).read_bytes() == \
            (checkpoint_folder(tmp_path / "b", 40) / name).read_bytes()
    # The checkpoints load as text models; training changed the representations.
    first = load_model({"path": run.checkpoints[0], "kind": "text"}, name="s0")
    last = load_model({"path": run.checkpoints[40], "kind": "text"}, name="s40")
    assert first.n_layers == 2 and not last.untrained
    assert type(last.model).__name__ == ("GPT2Model" if objective == "causal" else "BertModel")
    a, b = first.forward_pooled(TEXTS[:4]), last.forward_pooled(TEXTS[:4])
    assert not np.allclose(a[-1], b[-1])


def test_vocabulary_covers_the_texts_and_bad_settings_are_refused(tmp_path: Path) -> None:
    vocab = text_vocabulary(["Hello world, hello again"])
    assert vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] and {"hello", "world", "again"} <= set(vocab)
    with pytest.raises(InputError, match="objective"):
        train_language_model(TEXTS, tmp_path, "seq2seq", steps=2, checkpoint_steps=[2])
    with pytest.raises(InputError, match="checkpoint steps"):
        train_language_model(TEXTS, tmp_path, "causal", steps=2, checkpoint_steps=[3])


def test_heldout_split_is_seeded_disjoint_and_covers_every_text() -> None:
    train, held = heldout_split(200, 0.15, seed=3)
    assert len(held) == 30 and len(train) == 170
    assert not set(train) & set(held) and sorted({*train, *held}) == list(range(200))
    again_train, again_held = heldout_split(200, 0.15, seed=3)
    np.testing.assert_array_equal(held, again_held)
    np.testing.assert_array_equal(train, again_train)
    assert set(heldout_split(200, 0.15, seed=4)[1]) != set(held)  # another seed, another split
    assert list(held) != list(range(30))  # random, not the first texts
    assert len(heldout_split(10, 0.01, seed=0)[1]) == 1  # at least one text held out
    assert len(heldout_split(10, 0.0, seed=0)[1]) == 0
    with pytest.raises(InputError, match="leaves no text to train on"):
        heldout_split(1, 0.5)
    with pytest.raises(InputError, match=r"must lie in \[0, 1\)"):
        heldout_split(10, 1.0)


@pytest.mark.parametrize("objective", ["causal", "masked"])
def test_heldout_loss_is_recorded_per_checkpoint_and_falls(objective: str, tmp_path: Path) -> None:
    train_idx, held_idx = heldout_split(len(TEXTS), 0.2, seed=0)
    train = [TEXTS[i] for i in train_idx]
    held = [TEXTS[i] for i in held_idx]
    settings = {"objective": objective, "steps": 40, "checkpoint_steps": [0, 20, 40], "num_layers": 1,
                "hidden_size": 32, "attention_heads": 2, "batch_size": 8, "learning_rate": 3e-3, "max_length": 16,
                "seed": 4}
    run = train_language_model(train, tmp_path / "a", heldout_texts=held, **settings)
    assert sorted(run.heldout_losses) == [0, 20, 40]
    losses = [run.heldout_losses[s] for s in (0, 20, 40)]
    assert all(np.isfinite(losses))
    assert losses[2] < 0.7 * losses[0]  # the held-out sentences share the grammar: their loss falls too
    import json

    info = json.loads((checkpoint_folder(tmp_path / "a", 20) / "training.json").read_text())
    assert info["heldout_loss"] == losses[1] and info["n_heldout_texts"] == len(held)
    assert info["n_texts"] == len(train)
    # Deterministic (same masks at every evaluation) and independent of the training run's own draws.
    again = train_language_model(train, tmp_path / "b", heldout_texts=held, **settings)
    assert again.heldout_losses == run.heldout_losses
    plain = train_language_model(train, tmp_path / "c", **settings)
    assert plain.losses == run.losses and plain.heldout_losses == {}


def test_heldout_loss_of_a_causal_model_matches_its_own_loss(tmp_path: Path) -> None:
    """On one batch, the per-token mean computed here equals the model's own `loss` (same shift, same mask)."""
    import torch

    run = train_language_model(TEXTS[:6], tmp_path, "causal", steps=2, checkpoint_steps=[2], num_layers=1,
                               hidden_size=16, attention_heads=2, batch_size=4, max_length=16)
    from transformers import AutoTokenizer, GPT2LMHeadModel

    model = GPT2LMHeadModel.from_pretrained(run.checkpoints[2]).eval()
    tokenizer = AutoTokenizer.from_pretrained(run.checkpoints[2])
    encoded = tokenizer(TEXTS[6:9], padding="max_length", truncation=True, max_length=16, return_tensors="pt")
    ids, attention = encoded["input_ids"], encoded["attention_mask"].bool()
    labels = torch.where(attention, ids, torch.full_like(ids, -100))
    with torch.no_grad():
        expected = float(model(input_ids=ids, attention_mask=attention.long(), labels=labels).loss)
    assert heldout_loss(model, "causal", ids, labels, attention) == pytest.approx(expected, rel=1e-5)
