"""Train a small language model on CPU, saving checkpoints with their step: real training dynamics offline.

No trained decoder and no series of published checkpoints can be downloaded on the project's machines, so the
training-dynamics and encoder/decoder analyses train their own small models on the dataset's texts:

- `objective="causal"`: a GPT-2 architecture (decoder: causal attention), next-token cross-entropy;
- `objective="masked"`: a BERT architecture (encoder), masked-token cross-entropy; 15% of the real tokens of each
  sequence (at least one) are replaced by [MASK] and predicted (no 80/10/10 split: every chosen token is masked).

Both use a WordPiece tokenizer over the texts' own words plus single characters (no [UNK] on the training texts).
Training is seeded (initial weights, batch order, masks): same texts and settings, same checkpoints. The loss of
every step goes to `loss.tsv`; each checkpoint is a transformers folder `step_{step:06d}/` (config, weights,
tokenizer) with `training.json` (`step`, `objective`, `seed`, `loss` of that step, architecture), loadable by
`load_model({"path": ...})`. A model trained here is marked trained (`untrained: false`), and step 0 is its
initialisation.

Held-out loss: `heldout_split` sets aside a seeded fraction of the texts that training never sees (nor its
vocabulary); every saved checkpoint is scored on them with its own objective (`heldout_loss`: mean cross-entropy per
predicted token; for the masked objective the same seeded masks at every checkpoint). It is a within-run score,
recorded in `training.json` and returned by `train_language_model`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..atomic import write_text_atomic
from ..errors import InputError
from ..io import Record, read_table_columns, write_table
from ._hf import quiet_transformers
from .random_init import _bert_tokenizer

OBJECTIVES = ("causal", "masked")
TRAINING_FILE = "training.json"
LOSS_FILE = "loss.tsv"
HELDOUT_MASK_SEED_OFFSET = 7919  # the held-out masks' generator: seed + this, apart from the training masks
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def checkpoint_folder(out_dir: str | Path, step: int) -> Path:
    return Path(out_dir) / f"step_{step:06d}"


def text_vocabulary(texts: Sequence[str]) -> list[str]:
    """Specials, single characters with their ## continuations, then every lower-case word of the texts (sorted)."""
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789") + list(".,;:!?'\"()-/&%$#@*+=<>[]_~`")
    vocab = SPECIALS + chars + [f"##{c}" for c in chars]
    seen = set(vocab)
    words = sorted({w for text in texts for w in re.findall(r"[a-z0-9]+", text.lower())})
    return vocab + [w for w in words if w not in seen]


def heldout_split(n_texts: int, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, held-out) indices of `n_texts` texts: a seeded random `fraction` (rounded, at least one) held out.

    fraction 0 holds nothing out. Both parts must keep at least one text.
    """
    if not 0 <= fraction < 1:
        raise InputError(f"held-out fraction must lie in [0, 1), got {fraction!r}")
    n_heldout = 0 if fraction == 0 else max(1, round(fraction * n_texts))
    if n_texts - n_heldout < 1:
        raise InputError(f"held-out fraction {fraction} of {n_texts} texts leaves no text to train on")
    order = np.random.default_rng(seed).permutation(n_texts)
    return np.sort(order[n_heldout:]), np.sort(order[:n_heldout])


@dataclass(frozen=True)
class TrainingRun(Record):
    """What a training run did: losses per step (index = step - 1), the checkpoint folders by step, and the held-out
    loss of each checkpoint by step (empty without held-out texts)."""

    objective: str
    losses: tuple[float, ...]
    checkpoints: dict[int, str]
    heldout_losses: dict[int, float] = field(default_factory=dict)


def _build(objective: str, vocab_size: int, num_layers: int, hidden_size: int, heads: int, max_length: int,
           seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    if objective == "causal":
        from transformers import GPT2Config, GPT2LMHeadModel

        config = GPT2Config(vocab_size=vocab_size, n_positions=max_length, n_embd=hidden_size, n_layer=num_layers,
                            n_head=heads, bos_token_id=2, eos_token_id=3, pad_token_id=0)
        return GPT2LMHeadModel(config)
    from transformers import BertConfig, BertForMaskedLM

    config = BertConfig(vocab_size=vocab_size, hidden_size=hidden_size, num_hidden_layers=num_layers,
                        num_attention_heads=heads, intermediate_size=4 * hidden_size,
                        max_position_embeddings=max_length, pad_token_id=0)
    return BertForMaskedLM(config)


def _mask_tokens(ids: torch.Tensor, real: torch.Tensor, mask_id: int, generator: torch.Generator
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Masked inputs and labels (-100 where not predicted): 15% of each row's real tokens, at least one."""
    scores = torch.rand(ids.shape, generator=generator)
    scores[~real] = 2.0
    n_real = real.sum(dim=1)
    n_mask = torch.clamp((n_real.float() * 0.15).round().long(), min=1)
    order = scores.argsort(dim=1)
    chosen = torch.zeros_like(real)
    for row in range(ids.shape[0]):
        chosen[row, order[row, : int(n_mask[row])]] = True
    chosen &= real
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    return torch.where(chosen, torch.full_like(ids, mask_id), ids), labels


def _labelled(objective: str, ids: torch.Tensor, attention: torch.Tensor, real: torch.Tensor, mask_id: int,
              generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Model inputs and labels (-100 where not predicted) of a batch under the objective."""
    if objective == "causal":
        return ids, torch.where(attention, ids, torch.full_like(ids, -100))
    return _mask_tokens(ids, real, mask_id, generator)


def heldout_loss(model: torch.nn.Module, objective: str, inputs: torch.Tensor, labels: torch.Tensor,
                 attention: torch.Tensor, batch_size: int = 64) -> float:
    """Mean cross-entropy per predicted token of `model` on fixed (inputs, labels), in eval mode, no gradients.

    Causal: labels are shifted one position (token t predicts t+1), as the model's own loss does.
    """
    total, count = 0.0, 0
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for start in range(0, inputs.shape[0], batch_size):
            part = slice(start, start + batch_size)
            logits = model(input_ids=inputs[part], attention_mask=attention[part].long()).logits
            target = labels[part]
            if objective == "causal":
                logits, target = logits[:, :-1], target[:, 1:]
            losses = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(),
                                                       target.reshape(-1), ignore_index=-100, reduction="sum")
            total += float(losses)
            count += int((target != -100).sum())
    model.train(was_training)
    if count == 0:
        raise InputError("held-out texts have no token to predict")
    return total / count


def train_language_model(texts: Sequence[str], out_dir: str | Path, objective: str, steps: int,
                         checkpoint_steps: Sequence[int], num_layers: int = 2, hidden_size: int = 64,
                         attention_heads: int = 4, batch_size: int = 16, learning_rate: float = 1e-3,
                         max_length: int = 64, seed: int = 0, threads: int = 1,
                         heldout_texts: Sequence[str] = ()) -> TrainingRun:
    """Train a small `objective` model on `texts` for `steps` AdamW steps and save the checkpoints asked for.

    checkpoint_steps: steps (0 = the initialisation, up to `steps`) whose weights are saved.
    heldout_texts: texts kept out of training and of the vocabulary (see `heldout_split`); every saved checkpoint
    gets its `heldout_loss` on them (training.json and the returned run).
    """
    if objective not in OBJECTIVES:
        raise InputError(f"training objective {objective!r} is not one of {', '.join(OBJECTIVES)}")
    if not texts:
        raise InputError("training needs at least one text")
    if isinstance(steps, bool) or int(steps) != steps or steps < 1:
        raise InputError(f"training steps must be a positive integer, got {steps!r}")
    wanted = sorted({int(s) for s in checkpoint_steps})
    if not wanted or wanted[0] < 0 or wanted[-1] > steps:
        raise InputError(f"checkpoint steps must lie in 0..{steps}, got {list(checkpoint_steps)}")
    if hidden_size % attention_heads:
        raise InputError(f"hidden_size {hidden_size} is not divisible by attention_heads {attention_heads}")
    from transformers import BertTokenizerFast

    torch.set_num_threads(max(1, int(threads)))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vocab = text_vocabulary(texts)
    vocab_file = out / "vocab.txt"
    write_text_atomic(vocab_file, "\n".join(vocab) + "\n")
    tokenizer = _bert_tokenizer(BertTokenizerFast, vocab, vocab_file, max_length)
    encoded = tokenizer(list(texts), padding="max_length", truncation=True, max_length=max_length,
                        return_special_tokens_mask=True, return_tensors="pt")
    ids, attention = encoded["input_ids"], encoded["attention_mask"].bool()
    real = attention & ~encoded["special_tokens_mask"].bool()
    heldout = None
    if heldout_texts:
        held = tokenizer(list(heldout_texts), padding="max_length", truncation=True, max_length=max_length,
                         return_special_tokens_mask=True, return_tensors="pt")
        held_attention = held["attention_mask"].bool()
        held_real = held_attention & ~held["special_tokens_mask"].bool()
        # One fixed set of masks for every checkpoint: the scores differ only by the weights.
        held_generator = torch.Generator().manual_seed(seed + HELDOUT_MASK_SEED_OFFSET)
        held_inputs, held_labels = _labelled(objective, held["input_ids"], held_attention, held_real,
                                             tokenizer.mask_token_id, held_generator)
        heldout = (held_inputs, held_labels, held_attention)
    with quiet_transformers():
        model = _build(objective, len(vocab), num_layers, hidden_size, attention_heads, max_length, seed)
    architecture = {"num_layers": num_layers, "hidden_size": hidden_size, "attention_heads": attention_heads,
                    "max_length": max_length, "vocab_size": len(vocab)}
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.01)
    losses: list[float] = []
    checkpoints: dict[int, str] = {}
    heldout_losses: dict[int, float] = {}

    def save(step: int, loss: float | None) -> None:
        folder = checkpoint_folder(out, step)
        with quiet_transformers():  # no progress bars in the job's log
            model.save_pretrained(folder)
            tokenizer.save_pretrained(folder)
        info = {"step": step, "objective": objective, "seed": seed, "loss": loss, "architecture": architecture,
                "batch_size": batch_size, "learning_rate": learning_rate, "n_texts": len(texts),
                "n_heldout_texts": len(heldout_texts)}
        if heldout is not None:
            heldout_losses[step] = heldout_loss(model, objective, *heldout)
            info["heldout_loss"] = heldout_losses[step]
        write_text_atomic(folder / TRAINING_FILE, json.dumps(info, indent=1) + "\n")  # written last
        checkpoints[step] = str(folder)

    if 0 in wanted:
        save(0, None)
    model.train()
    n = ids.shape[0]
    order = torch.randperm(n, generator=generator)
    position = 0
    for step in range(1, steps + 1):
        if position + batch_size > n:
            order, position = torch.randperm(n, generator=generator), 0
        batch = order[position : position + batch_size]
        position += batch_size
        batch_ids, batch_attention, batch_real = ids[batch], attention[batch], real[batch]
        inputs, labels = _labelled(objective, batch_ids, batch_attention, batch_real, tokenizer.mask_token_id,
                                   generator)
        loss = model(input_ids=inputs, attention_mask=batch_attention.long(), labels=labels).loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise RuntimeError(f"training diverged at step {step} (loss {value}); lower the learning rate")
        losses.append(value)
        if step in wanted:
            model.eval()
            save(step, value)
            model.train()
    write_table(out / LOSS_FILE, [{"step": i + 1, "loss": v} for i, v in enumerate(losses)], ["step", "loss"])
    return TrainingRun(objective, tuple(losses), checkpoints, heldout_losses)


def read_step(folder: str | Path) -> int | None:
    """The training step of a checkpoint folder written here (its training.json), or None."""
    path = Path(folder) / TRAINING_FILE
    if not path.is_file():
        return None
    return int(json.loads(path.read_text(encoding="utf-8"))["step"])


def loss_curve(out_dir: str | Path) -> np.ndarray:
    """float64 [steps, 2] (step, loss) from loss.tsv."""
    columns = read_table_columns(Path(out_dir) / LOSS_FILE)
    return np.column_stack([columns["step"], columns["loss"]])
