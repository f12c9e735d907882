"""Checks on what a tokenizer makes of the inputs: unknown-token share, residue spacing, rare residues.

A tokenizer that cannot read the inputs does not fail: it maps them to its unknown token, every input becomes
`[CLS] [UNK] [SEP]` and every layer gives the same vector. `check_unknown_share` stops that before extraction,
and `unknown_counts` measures the share over the whole run for the manifest.

Protein tokenizers come in two conventions: one token per letter of the plain sequence (ESM-2) or residues
separated by spaces (ProtBert, ProtT5, most antibody BERTs). `detect_residue_spacing` asks the tokenizer itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InputError

# The unknown-token share above which extraction stops (settable per model: `max_unknown_share`).
DEFAULT_MAX_UNKNOWN_SHARE = 0.01
# Inputs tokenised by the check before extraction (spread over the dataset, seeded).
CHECK_SAMPLE = 256
PROBE_RESIDUES = "ACDEFGHIKLMNPQRSTVWY"
RARE_RESIDUES = "UZOB"
RARE_RESIDUE_POLICIES = ("auto", "keep", "x")


def _ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def reads_one_token_per_residue(tokenizer: Any, residues: str, spaced: bool) -> bool:
    """True when `residues` (plain or space-separated) give one known token per residue."""
    text = " ".join(residues) if spaced else residues
    ids = _ids(tokenizer, text)
    unk = tokenizer.unk_token_id
    return len(ids) == len(residues) and (unk is None or unk not in ids)


def detect_residue_spacing(tokenizer: Any) -> bool | None:
    """True when the tokenizer wants residues separated by spaces, False when it reads plain sequences, None
    when it reads neither one token per standard residue (the unknown-token check then names the problem)."""
    if reads_one_token_per_residue(tokenizer, PROBE_RESIDUES, spaced=False):
        return False
    if reads_one_token_per_residue(tokenizer, PROBE_RESIDUES, spaced=True):
        return True
    return None


def rare_residue_map(tokenizer: Any, spaced: bool, policy: str) -> dict[str, str]:
    """Letters replaced by X before tokenising.

    `x`: U, Z, O and B all become X (the ProtBert/ProtT5 convention). `keep`: nothing is replaced. `auto`: the
    space-separated family's convention (all four to X) where residues are spaced; otherwise only the rare
    letters the tokenizer cannot read, where it reads X.
    """
    if policy not in RARE_RESIDUE_POLICIES:
        raise InputError(f"rare_residues: '{policy}' is not one of {', '.join(RARE_RESIDUE_POLICIES)}")
    if policy == "keep":
        return {}
    if policy == "x" or spaced:
        return {letter: "X" for letter in RARE_RESIDUES}
    if not reads_one_token_per_residue(tokenizer, "X", spaced=False):
        return {}
    return {letter: "X" for letter in RARE_RESIDUES if not reads_one_token_per_residue(tokenizer, letter, False)}


def sample_indices(n_items: int, size: int = CHECK_SAMPLE, seed: int = 0) -> list[int]:
    """`size` indices spread over [0, n_items), seeded, in order (all of them for small datasets)."""
    if n_items <= size:
        return list(range(n_items))
    return sorted(int(i) for i in np.random.default_rng(seed).choice(n_items, size=size, replace=False))


def check_unknown_share(adapter: Any, inputs: Sequence[Any], max_share: float | None = None) -> float:
    """Tokenise a sample of `inputs`; stop with one line when the unknown token is more than `max_share` of the
    tokens (default: the adapter's `max_unknown_share`). Returns the sample's share."""
    limit = adapter.max_unknown_share if max_share is None else max_share
    sample = [inputs[i] for i in sample_indices(len(inputs))]
    unknown, total, example = adapter.count_unknown(sample)
    share = unknown / total if total else 0.0
    if share > limit:
        shown, tokens = example
        raise InputError(
            f"models.{adapter.name}: the tokenizer reads {share:.1%} of the tokens of a sample of {len(sample)} "
            f"inputs as unknown (limit {limit:.1%}, setting max_unknown_share): e.g. {str(shown)[:40]!r} -> "
            f"{_around_unknown(tokens, adapter.unknown_token)}"
        )
    return share


def _around_unknown(tokens: list[str], unknown: str | None, width: int = 12) -> str:
    """Up to `width` tokens, starting a little before the first unknown one, with '...' where cut."""
    first = tokens.index(unknown) if unknown in tokens else 0
    begin = max(0, first - 4)
    shown = tokens[begin : begin + width]
    return ("... " if begin else "") + " ".join(shown) + (" ..." if begin + width < len(tokens) else "")


def unknown_tokens(adapter: Any, inputs: Sequence[Any]) -> dict[str, Any]:
    """Check a sample of `inputs` (`check_unknown_share`), then count unknown tokens over all of them:
    `{"unknown_tokens", "n_tokens", "unknown_share"}` for the extraction manifest (specials and padding left out)."""
    check_unknown_share(adapter, inputs)
    unknown, total, _ = adapter.count_unknown(inputs)
    return {"unknown_tokens": int(unknown), "n_tokens": int(total), "unknown_share": unknown / total if total else 0.0}


def merge_unknown(parts: Sequence[dict]) -> dict[str, Any]:
    """The unknown-token counts of gathered shards (manifests without them count as zero)."""
    unknown = sum(int(p.get("unknown_tokens", 0)) for p in parts)
    total = sum(int(p.get("n_tokens", 0)) for p in parts)
    return {"unknown_tokens": unknown, "n_tokens": total, "unknown_share": unknown / total if total else 0.0}
