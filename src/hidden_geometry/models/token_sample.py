"""A seeded, bounded sample of token-level hidden states per layer, kept during extraction.

Token anisotropy (Razzhigaev et al. 2024) is measured on token states, not on pooled vectors. Keeping every
token of every layer would cost N x T x D x L floats, so extraction keeps at most `size` tokens per layer, the
same tokens in every layer.

Which tokens: every real token (no specials, no padding) gets a key, uniform in [0, 1), drawn from a generator
seeded by (seed, the item's content); the sample is the `size` tokens of smallest key (bottom-k sampling). The
keys do not depend on batching, batch order or sharding, so shards merge exactly (`merge_token_samples`) and
reruns give the same bytes. Files in the extraction folder: `tokens_{layer:03d}.npy` (float32 [S, D], ascending
key) and `tokens_keys.npy` (float64 [S]).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import atomic_path

# The file names and the reader live in the torch-free `hidden_geometry.embeddings` (the geometry jobs read them).
from ..embeddings import KEYS_FILE, load_token_sample, token_file  # noqa: F401 - re-exported
from ..errors import InputError


def item_keys(item: Any, n_tokens: int, seed: int) -> np.ndarray:
    """The keys of an item's real tokens (same item and seed, same keys)."""
    raw = item.encode("utf-8") if isinstance(item, str) else np.ascontiguousarray(np.asarray(item)).tobytes()
    digest = int.from_bytes(hashlib.sha256(raw).digest()[:8], "little")
    return np.random.default_rng([int(seed), digest]).random(n_tokens)


class TokenSample:
    """Bottom-`size` sample of token states over all the batches offered; memory O(size x D x n_layers).

    The sample lives in fixed slots (one [size, D] buffer per layer): a batch writes only the tokens that enter
    it, into the slots of the ones they push out, so a batch costs O(tokens entering x D), not a copy of the
    whole sample (which, at 34 layers x 1,280 wide, had cost more than a GPU's forward pass).
    """

    def __init__(self, n_layers: int, size: int, seed: int = 0) -> None:
        if isinstance(size, bool) or int(size) != size or size < 1:
            raise InputError(f"extraction.token_sample must be a positive integer, got {size!r}")
        self.n_layers, self.size, self.seed = int(n_layers), int(size), int(seed)
        self._keys = np.empty(0, dtype=np.float64)  # the held tokens' keys, in slot order
        self._slots: list[np.ndarray] | None = None  # per layer [size, D]; rows 0..len(_keys)-1 are held

    @property
    def keys(self) -> np.ndarray:
        """The held tokens' keys, ascending."""
        return np.sort(self._keys)

    @property
    def states(self) -> list[np.ndarray] | None:
        """The held tokens' states per layer, in the order of `keys`; None before any token was held."""
        if self._slots is None:
            return None
        order = np.argsort(self._keys, kind="stable")
        return [slots[: self._keys.size][order] for slots in self._slots]

    def offer(self, items: Sequence[Any], states: Sequence[torch.Tensor], real: torch.Tensor) -> None:
        """Consider the real tokens of one batch: `states` one [B, T, D] tensor per layer, `real` bool [B, T]."""
        if len(states) != self.n_layers:
            raise RuntimeError(f"token sample: {len(states)} layers offered, expected {self.n_layers}")
        mask = real.detach().cpu().numpy().astype(bool)
        threshold = self._keys.max() if self._keys.size >= self.size else np.inf
        rows, cols, keys = [], [], []
        for b, item in enumerate(items):
            positions = np.flatnonzero(mask[b])
            k = item_keys(item, positions.size, self.seed)
            chosen = k < threshold
            rows.append(np.full(int(chosen.sum()), b))
            cols.append(positions[chosen])
            keys.append(k[chosen])
        rows_a, cols_a, keys_a = np.concatenate(rows), np.concatenate(cols), np.concatenate(keys)
        if keys_a.size == 0:
            return
        r, c = torch.from_numpy(rows_a), torch.from_numpy(cols_a)
        new = [h[r.to(h.device), c.to(h.device)].float().cpu().numpy() for h in states]
        self._merge(keys_a, new)

    def _merge(self, keys: np.ndarray, states: list[np.ndarray]) -> None:
        # Unique keys: the same token offered twice (an fp32 recompute of a batch) counts once.
        keys, first = np.unique(keys, return_index=True)
        fresh = ~np.isin(keys, self._keys)
        keys, first = keys[fresh], first[fresh]
        if keys.size == 0:
            return
        if self._slots is None:
            self._slots = [np.empty((self.size, part.shape[1]), dtype=np.float32) for part in states]
        held = self._keys.size
        combined = np.concatenate([self._keys, keys])
        keep = np.argpartition(combined, self.size - 1)[: self.size] if combined.size > self.size else None
        if keep is None:  # room for all: they take the next free slots
            entering, slots = np.arange(keys.size), np.arange(held, held + keys.size)
        else:  # the entering tokens take the slots of the ones they push out, then the free slots
            entering = np.sort(keep[keep >= held]) - held
            pushed_out = np.setdiff1d(np.arange(held), keep[keep < held])
            slots = np.concatenate([pushed_out, np.arange(held, self.size)])[: entering.size]
        grown = min(self.size, held + keys.size)
        if grown > held:
            self._keys = np.concatenate([self._keys, np.empty(grown - held)])
        self._keys[slots] = keys[entering]
        rows = first[entering]
        for buffer, part in zip(self._slots, states):
            buffer[slots] = part[rows]

    def save(self, out_dir: str | Path) -> None:
        """Write tokens_XXX.npy for every layer and tokens_keys.npy, both in key order (an empty sample writes 0
        rows)."""
        out = Path(out_dir)
        states = self.states if self._slots is not None else [np.empty((0, 0), np.float32)] * self.n_layers
        for layer, values in enumerate(states):
            _save(out / token_file(layer), values)
        _save(out / KEYS_FILE, self.keys)


def _save(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, array)


def merge_token_samples(folders: Sequence[str | Path], out_dir: str | Path, n_layers: int, size: int) -> bool:
    """Merge the shards' samples into the bottom-`size` sample of their union; False when no shard has one."""
    present = [Path(f) for f in folders if (Path(f) / KEYS_FILE).is_file()]
    if not present:
        return False
    if len(present) != len(folders):
        raise InputError(f"token samples: {len(present)} of {len(folders)} shards have one; rerun the others")
    sample = TokenSample(n_layers, size)
    for folder in present:
        keys = np.load(folder / KEYS_FILE)
        if keys.size:
            sample._merge(keys, [np.load(folder / token_file(layer)) for layer in range(n_layers)])
    sample.save(out_dir)
    return True
