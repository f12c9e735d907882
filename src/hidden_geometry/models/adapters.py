"""Model adapters: one forward pass per batch, every layer pooled to one vector per input.

A `ModelAdapter` hides the backend (fair-esm or transformers) and the input kind (protein sequences, images,
texts) behind three things the extraction loop needs: `token_count(item)` (the tokens an input occupies,
specials included, for sorting and the token budget), `forward_pooled(items)` (a list with one float32 [B, D]
array per layer, embeddings first) and `describe()` (the facts that go into the manifest).

Layer numbering: layer 0 is the embedding output, layer l the output of block l, so `n_layers` is the number of
blocks + 1. The last layer carries the model's final LayerNorm where the model has one (fair-esm and transformers
both do this). For iGPT with `tap: ln_1` (the paper's choice), layer l (l < L) is the output of block l+1's
first LayerNorm, i.e. the normalised input of that block, and layer L is the final LayerNorm's output: every layer
is then the layer-normalised residual stream after l blocks.

Pooling: `mean` averages over real tokens, leaving out every special token the tokenizer adds (BOS/CLS, EOS/SEP,
T5's </s>) and padding (the paper's choice); `last` takes the last real token whatever the padding side (decoder
LLMs); `cls` takes the first position (BOS/CLS). Batches are padded on the right with an attention mask, so an
input's vector does not depend on the batch it is in (tests check this for every adapter).

Protein kinds: `protein` (any transformers protein model: BERT, RoBERTa, ALBERT, ELECTRA, T5 encoders, ESM) and
`esm2` (the same, with ESM-2's alphabet check and 1,022-residue limit). Residues are separated by spaces when the
tokenizer wants it (detected at load, see `tokens.detect_residue_spacing`), and rare residues mapped to X by the
model's convention.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..errors import InputError
from ..hardware import ieee_float32_where_changed
from .esm2_forward import Esm2Forward
from .spec import POOLINGS, PROTEIN_KINDS
from .tokens import DEFAULT_MAX_UNKNOWN_SHARE

log = logging.getLogger("hidden_geometry.models")

# ESM-2 was trained on crops of at most 1,022 residues; with BOS and EOS a sequence occupies 1,024 positions.
ESM2_MAX_RESIDUES = 1022
# One-letter tokens of the ESM-2 alphabet (20 amino acids, X, B, U, Z, O, and the gap tokens "." and "-").
ESM2_LETTERS = frozenset("LAGVSERTIDPKQNFYMHWCXBUZO.-")


def check_protein(seq: str, max_residues: int, model: str) -> None:
    """Refuse what ESM-2 would silently mis-read: empty or too long sequences, letters outside its alphabet
    (lower case included: both tokenisers map them to <unk>). The data stage crops, maps or drops these."""
    if not seq:
        raise InputError("empty sequence given to the model: drop it in the data stage")
    if len(seq) > max_residues:
        raise InputError(
            f"sequence of {len(seq)} residues exceeds {model}'s limit of {max_residues}: "
            "crop or drop it in the data stage"
        )
    unknown = set(seq) - ESM2_LETTERS
    if unknown:
        shown = "".join(sorted(unknown))[:10]
        raise InputError(
            f"sequence contains characters outside the ESM-2 alphabet ({shown!r}): "
            "upper-case, map or drop them in the data stage"
        )


def dtype_name(dtype: torch.dtype | None) -> str:
    """The spec's word for the forward pass's precision (`fp32`, `bf16`, `fp16`), as the manifest records it."""
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def pool_hidden(hidden: torch.Tensor, real: torch.Tensor, pooling: str) -> torch.Tensor:
    """Pool token states [B, T, D] to [B, D] in float32.

    `real` is a bool mask [B, T] of the tokens that count (no specials, no padding). `cls` takes position 0
    whatever the mask says, since that position holds the BOS/CLS token.
    """
    hidden = hidden.float()
    if pooling == "cls":
        return hidden[:, 0, :]
    weights = real.to(hidden.dtype)
    counts = weights.sum(dim=1)
    if bool((counts == 0).any()):
        raise InputError("an input has no real tokens left after removing special tokens (empty input?)")
    if pooling == "mean":
        return (hidden * weights.unsqueeze(-1)).sum(dim=1) / counts.unsqueeze(-1)
    if pooling == "last":
        positions = torch.arange(real.shape[1], device=real.device).expand_as(real)
        last = torch.where(real, positions, torch.full_like(positions, -1)).max(dim=1).values
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last, :]
    raise InputError(f"pooling '{pooling}' is not one of {', '.join(POOLINGS)}")


@dataclass
class ModelAdapter:
    """Common state and helpers of all adapters; subclasses implement `_tokens` and `_hidden_states`."""

    name: str
    kind: str
    backend: str
    model: torch.nn.Module
    n_layers: int
    hidden_size: int
    max_tokens: int
    untrained: bool = False
    pooling: str = "mean"
    tap: str = "hidden"
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    # Reduced precision of the forward pass (`dtype` of the model's spec): bf16/fp16 autocast on CUDA, bf16 on the
    # CPU (fair-esm: the project's own ESM-2 forward in bf16; transformers: CPU autocast); None means float32.
    autocast_dtype: torch.dtype | None = None
    source: str = ""
    path: str = ""
    # Extraction stops when the tokenizer reads more than this share of a sample's tokens as unknown.
    max_unknown_share: float = DEFAULT_MAX_UNKNOWN_SHARE
    # Hub revision the weights come from, and the training step of a checkpoint (None: not a checkpoint).
    revision: str = ""
    step: int | None = None
    # A models.token_sample.TokenSample that extraction sets to keep a seeded sample of token states; None: off.
    token_sample: Any = None

    def _offer_tokens(self, items: Sequence[Any], states: Sequence[torch.Tensor], real: torch.Tensor) -> None:
        if self.token_sample is not None:
            self.token_sample.offer(items, states, real)

    @property
    def reduced_precision(self) -> bool:
        """True when the forward pass runs in fp16/bf16, so an fp32 recompute can differ."""
        return self.autocast_dtype is not None

    def token_count(self, item: Any) -> int:
        """Tokens `item` occupies in a batch, special tokens included, after truncation to `max_tokens`."""
        raise NotImplementedError

    def truncated(self, item: Any) -> bool:
        """True when the adapter shortens `item` to fit `max_tokens` (texts only; sequences are refused)."""
        return False

    def forward_pooled(self, items: Sequence[Any], fp32: bool = False) -> list[np.ndarray]:
        """Pooled float32 [B, D] arrays, one per layer (embeddings first), from one forward pass.

        `fp32=True` turns autocast off (the recompute after a non-finite result).
        """
        raise NotImplementedError

    @property
    def unknown_token(self) -> str | None:
        """The unknown token as it is written (None where inputs have no vocabulary)."""
        return None

    def count_unknown(self, items: Sequence[Any]) -> tuple[int, int, tuple[Any, list[str]] | None]:
        """(unknown tokens, tokens, (the input with the largest unknown share, its tokens)) over `items`,
        special tokens and padding left out. Inputs without a vocabulary (images) have no unknown token."""
        return 0, sum(self.token_count(item) for item in items), None

    def _autocast(self, fp32: bool) -> contextlib.AbstractContextManager:
        """The forward pass's precision: autocast to `autocast_dtype`, or float32 (None, or `fp32`) as IEEE float32
        products whatever the caller's torch settings (`ieee_float32_where_changed`: a
        set_float32_matmul_precision("medium") or "high" would otherwise run them in bfloat16 on the CPU or TF32 on
        CUDA, while the manifest says fp32)."""
        if self.device.type not in ("cuda", "cpu"):
            return contextlib.nullcontext()
        if self.autocast_dtype is None or fp32:
            return ieee_float32_where_changed(self.device)
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def describe(self) -> dict:
        """Facts about the model for the extraction manifest (JSON-ready)."""
        return {
            "model": self.name,
            "kind": self.kind,
            "backend": self.backend,
            "source": self.source,
            "path": self.path,
            "n_layers": self.n_layers,
            "hidden_size": self.hidden_size,
            "max_tokens": self.max_tokens,
            "pooling": self.pooling,
            "tap": self.tap,
            "untrained": bool(self.untrained),
            "dtype": dtype_name(self.autocast_dtype),
            "device": self.device.type,
            "max_unknown_share": float(self.max_unknown_share),
            "revision": self.revision,
            "step": self.step,
        }


@dataclass
class FairEsmAdapter(ModelAdapter):
    """ESM-2 from a fair-esm checkpoint: sequences -> alphabet tokens with BOS and EOS; every layer's states from
    `esm2_forward.Esm2Forward` on the fair-esm module's weights (fair-esm's arithmetic with fused attention,
    tested equal to fair-esm's own forward to 1e-4), in bf16 on the CPU when `autocast_dtype` is bf16."""

    alphabet: Any = None
    _forwards: dict = field(default_factory=dict, repr=False, compare=False)

    def hidden_states(self, tokens: torch.Tensor, fp32: bool = False) -> list[torch.Tensor]:
        """Float32 [B, T, D] states of every layer (embeddings first) for a padded token batch."""
        reduced = None if fp32 else self.autocast_dtype
        # On the CPU bf16 is computed by the forward itself; on CUDA the float32 forward runs under autocast.
        dtype = torch.bfloat16 if reduced == torch.bfloat16 and self.device.type == "cpu" else torch.float32
        forward = self._forwards.get(dtype)
        if forward is None:
            forward = self._forwards[dtype] = Esm2Forward(self.model, dtype)
        if self.device.type == "cuda":  # autocast to the reduced dtype, or IEEE float32 products
            precision = self._autocast(fp32)
        elif dtype == torch.float32:
            precision = self._autocast(True)
        else:  # the bf16 forward's products are bfloat16 by construction
            precision = contextlib.nullcontext()
        with precision:
            return [state.float() for state in forward(tokens)]

    def token_count(self, item: str) -> int:
        return len(item) + 2

    @property
    def unknown_token(self) -> str | None:
        return "<unk>"

    def count_unknown(self, items: Sequence[str]) -> tuple[int, int, tuple[Any, list[str]] | None]:
        unk = self.alphabet.get_idx("<unk>")
        worst, worst_share, unknown, total = None, -1.0, 0, 0
        for seq in items:
            ids = [self.alphabet.get_idx(ch) for ch in seq]
            bad = sum(1 for i in ids if i == unk)
            unknown, total = unknown + bad, total + len(ids)
            if ids and bad / len(ids) > worst_share:
                worst, worst_share = (seq, [self.alphabet.get_tok(i) for i in ids]), bad / len(ids)
        return unknown, total, worst

    def forward_pooled(self, items: Sequence[str], fp32: bool = False) -> list[np.ndarray]:
        for seq in items:
            check_protein(seq, self.max_tokens - 2, self.name)
        alphabet = self.alphabet
        width = max(len(s) for s in items) + 2
        tokens = torch.full((len(items), width), alphabet.padding_idx, dtype=torch.long)
        real = torch.zeros_like(tokens, dtype=torch.bool)
        for row, seq in enumerate(items):
            tokens[row, 0] = alphabet.cls_idx
            tokens[row, 1 : len(seq) + 1] = torch.tensor([alphabet.get_idx(ch) for ch in seq], dtype=torch.long)
            tokens[row, len(seq) + 1] = alphabet.eos_idx
            real[row, 1 : len(seq) + 1] = True
        tokens, real = tokens.to(self.device), real.to(self.device)
        with torch.inference_mode():
            states = self.hidden_states(tokens, fp32)
            self._offer_tokens(items, states, real)
            return [pool_hidden(h, real, self.pooling).cpu().numpy().astype(np.float32) for h in states]


@dataclass
class TokenizerAdapter(ModelAdapter):
    """transformers models with a tokenizer: texts (any AutoModel), protein sequences (kinds `protein`, `esm2`).

    Texts longer than `max_tokens` are truncated (see `truncated`; extraction counts them); protein sequences
    are not: the data stage crops them, and one that is still too long is an error. Protein sequences are
    prepared for the tokenizer first: rare residues mapped (`residue_map`), residues space-separated where the
    tokenizer wants it (`residue_spacing`).
    """

    tokenizer: Any = None
    truncate: bool = True
    residue_spacing: bool = False
    residue_map: dict = field(default_factory=dict)
    # True when the tokenizer reads one token per residue (plain or spaced): token counts need no tokenising.
    per_residue: bool = False
    _length_cache: dict = field(default_factory=dict, repr=False)

    @property
    def protein(self) -> bool:
        return self.kind in PROTEIN_KINDS

    def prepare(self, item: str) -> str:
        """The text the tokenizer gets: a protein sequence with rare residues mapped and, where the tokenizer
        wants it, residues separated by spaces; texts unchanged."""
        if not self.protein:
            return item
        if self.residue_map:
            item = "".join(self.residue_map.get(ch, ch) for ch in item)
        return " ".join(item) if self.residue_spacing else item

    def full_token_count(self, item: str) -> int:
        """Tokens of `item` with specials and without truncation (cached: texts are tokenised once here)."""
        if self.protein and self.per_residue:
            return len(item) + self.tokenizer.num_special_tokens_to_add()
        cached = self._length_cache.get(item)
        if cached is None:
            cached = len(self.tokenizer(self.prepare(item), add_special_tokens=True, truncation=False)["input_ids"])
            self._length_cache[item] = cached
        return cached

    def token_count(self, item: str) -> int:
        full = self.full_token_count(item)
        return min(full, self.max_tokens) if self.truncate else full

    def truncated(self, item: str) -> bool:
        return self.truncate and self.full_token_count(item) > self.max_tokens

    @property
    def unknown_token(self) -> str | None:
        return self.tokenizer.unk_token

    def count_unknown(self, items: Sequence[str]) -> tuple[int, int, tuple[Any, list[str]] | None]:
        unk = self.tokenizer.unk_token_id
        worst, worst_share, unknown, total = None, -1.0, 0, 0
        for item in items:
            ids = self.tokenizer(self.prepare(item), add_special_tokens=False, truncation=False)["input_ids"]
            bad = sum(1 for i in ids if i == unk) if unk is not None else 0
            unknown, total = unknown + bad, total + len(ids)
            share = bad / len(ids) if ids else 1.0
            if share > worst_share:
                shown = self.tokenizer(self.prepare(item), add_special_tokens=True, truncation=False)["input_ids"]
                worst, worst_share = (item, self.tokenizer.convert_ids_to_tokens(shown)), share
        return unknown, total, worst

    def _check_proteins(self, items: Sequence[str]) -> None:
        limit = self.max_tokens - self.tokenizer.num_special_tokens_to_add()
        for seq in items:
            if self.kind == "esm2":
                check_protein(seq, limit, self.name)
            elif not seq:
                raise InputError("empty sequence given to the model: drop it in the data stage")
            elif self.full_token_count(seq) > self.max_tokens:
                raise InputError(
                    f"sequence of {len(seq)} residues exceeds {self.name}'s limit of {limit}: "
                    "crop or drop it in the data stage"
                )

    def _encode(self, items: Sequence[str]) -> dict:
        if self.protein:
            self._check_proteins(items)
        return self.tokenizer(
            [self.prepare(item) for item in items],
            padding=True,
            truncation=True,
            max_length=self.max_tokens,
            return_special_tokens_mask=True,
            return_tensors="pt",
        )

    def forward_pooled(self, items: Sequence[str], fp32: bool = False) -> list[np.ndarray]:
        enc = self._encode(items)
        attention = enc["attention_mask"].bool()
        real = attention & ~enc["special_tokens_mask"].bool()
        inputs = {
            "input_ids": enc["input_ids"].to(self.device),
            "attention_mask": enc["attention_mask"].to(self.device),
        }
        real = real.to(self.device)
        with torch.inference_mode(), self._autocast(fp32):
            out = self.model(**inputs, output_hidden_states=True, return_dict=True)
            states = out.hidden_states
            if len(states) != self.n_layers:
                raise RuntimeError(f"{self.name}: got {len(states)} hidden states, expected {self.n_layers}")
            self._offer_tokens(items, states, real)
            return [pool_hidden(h, real, self.pooling).cpu().numpy().astype(np.float32) for h in states]

    def describe(self) -> dict:
        out = super().describe()
        if self.protein:
            out["residue_spacing"] = bool(self.residue_spacing)
            out["residue_map"] = dict(sorted(self.residue_map.items()))
        return out


@dataclass
class ImageGPTAdapter(ModelAdapter):
    """iGPT through transformers: images -> colour-cluster tokens by the model's image processor.

    Every one of the size x size tokens is real (no BOS is fed, no padding), so `mean` averages all of them.
    With `tap: ln_1` forward hooks collect the output of each block's first LayerNorm (the paper's tap).
    """

    processor: Any = None
    image_size: int = 32

    def token_count(self, item: Any) -> int:
        return self.image_size * self.image_size

    def encode_images(self, items: Sequence[Any]) -> torch.Tensor:
        """uint8 [H, W, 3] images -> token ids [B, size*size] through the image processor."""
        images = []
        for image in items:
            array = np.asarray(image)
            if array.ndim != 3 or array.shape[-1] != 3 or array.dtype != np.uint8:
                raise InputError(
                    f"image of shape {array.shape} and type {array.dtype} is not H x W x 3 uint8 RGB: "
                    "convert it in the data stage"
                )
            images.append(array)
        # Say the layout: the processor otherwise guesses it, and takes a 3-pixel-high image for channels-first.
        enc = self.processor(images=images, return_tensors="pt", input_data_format="channels_last")
        return torch.as_tensor(enc["input_ids"], dtype=torch.long)

    def forward_pooled(self, items: Sequence[Any], fp32: bool = False) -> list[np.ndarray]:
        input_ids = self.encode_images(items).to(self.device)
        if input_ids.shape[1] > self.max_tokens:
            raise InputError(f"image gives {input_ids.shape[1]} tokens, more than {self.name}'s {self.max_tokens}")
        real = torch.ones_like(input_ids, dtype=torch.bool)
        taps: list[torch.Tensor] = []
        handles = []
        if self.tap == "ln_1":
            for block in self.model.h:
                handles.append(block.ln_1.register_forward_hook(_collect_output(taps)))
        try:
            with torch.inference_mode(), self._autocast(fp32):
                out = self.model(input_ids=input_ids, output_hidden_states=True, return_dict=True)
                states = list(out.hidden_states) if self.tap == "hidden" else taps + [out.last_hidden_state]
                if len(states) != self.n_layers:
                    raise RuntimeError(f"{self.name}: got {len(states)} layers, expected {self.n_layers}")
                self._offer_tokens(items, states, real)
                return [pool_hidden(h, real, self.pooling).cpu().numpy().astype(np.float32) for h in states]
        finally:
            for handle in handles:
                handle.remove()


def _collect_output(store: list) -> Callable:
    def hook(_module, _inputs, output):
        store.append(output[0] if isinstance(output, tuple) else output)

    return hook
