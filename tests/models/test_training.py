"""Small models trained here: the loss falls, runs are reproducible, checkpoints carry their step and load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hidden_geometry.errors import InputError
from hidden_geometry.models.loading import load_model
from hidden_geometry.models.training import (
    checkpoint_folder,
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
