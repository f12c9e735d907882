"""ESM-2's forward pass for representations, run on the weights of fair-esm's own module.

`Esm2Forward(model, dtype)` prepares a fair-esm `ESM2` once; calling it on a token batch returns the hidden
states of every layer (embeddings first, the last with the final LayerNorm), as fair-esm's
`model(tokens, repr_layers=...)["representations"]` does. The arithmetic is fair-esm's: embeddings scaled for
token dropout (the masked-token share of each sequence), padding zeroed, then per block a LayerNorm, rotary
self-attention over the real tokens, the residual, a LayerNorm, fc1, exact (erf) GELU, fc2, the residual. What
differs only changes the speed:

- attention runs in torch's fused `scaled_dot_product_attention`, with the rotary rotation applied to queries and
  keys first and padding keys masked out; fair-esm multiplies explicit per-head matrices, masks them with -inf,
  takes a float32 softmax and also averages the attention weights over heads for a return value that
  representations never use;
- the query, key and value projections are one matrix product;
- no language-model head (its logits are not representations).

fair-esm's module stays the reference: tests compare every layer with it to 1e-4 (relative) on random and
trained weights, and check batch invariance (a sequence's states do not depend on its batch mates or padding).

`dtype=torch.bfloat16` runs the matrix products and the attention in bfloat16 (AMX/AVX-512-BF16 on recent x86
CPUs) while the residual stream, the LayerNorms and the outputs stay float32; layer 0 (the embeddings) is then
unchanged and deeper layers differ from float32 by about 1e-2 relative (docs/benchmarks.md measures what that
changes in vectors, intrinsic dimension and overlaps).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

# fair-esm's token-dropout constant: the share of tokens masked in training (15% chosen, 80% of them masked).
_MASK_RATIO_TRAIN = 0.15 * 0.8
DTYPES = (torch.float32, torch.bfloat16)


@dataclass(frozen=True)
class _Block:
    """One transformer block's weights: LayerNorm modules as they are, projections in the compute dtype."""

    attn_norm: torch.nn.Module
    qkv_weight: torch.Tensor
    qkv_bias: torch.Tensor
    out_weight: torch.Tensor
    out_bias: torch.Tensor
    ffn_norm: torch.nn.Module
    fc1_weight: torch.Tensor
    fc1_bias: torch.Tensor
    fc2_weight: torch.Tensor
    fc2_bias: torch.Tensor


def _check_model(model: torch.nn.Module) -> None:
    """Refuse a module whose forward this class does not reproduce (anything but fair-esm's ESM-2 layout)."""
    for layer in model.layers:
        attn = layer.self_attn
        if attn.rot_emb is None or attn.bias_k is not None or attn.add_zero_attn:
            raise ValueError("Esm2Forward needs ESM-2 blocks: rotary attention without bias_k/bias_v or zero attention")
        if attn.q_proj.bias is None or attn.scaling != attn.head_dim**-0.5:
            raise ValueError("Esm2Forward needs ESM-2 blocks: biased projections scaled by head_dim ** -0.5")
    if model.embed_scale != 1:
        raise ValueError("Esm2Forward needs ESM-2's unscaled token embeddings")


class Esm2Forward:
    """All layers' hidden states of a fair-esm ESM-2 (see the module docstring); `dtype` float32 or bfloat16."""

    def __init__(self, model: torch.nn.Module, dtype: torch.dtype = torch.float32):
        if dtype not in DTYPES:
            raise ValueError(f"Esm2Forward computes in float32 or bfloat16, not {dtype}")
        _check_model(model)
        self.model = model
        self.dtype = dtype
        self.heads = int(model.attention_heads)
        self.inv_freq = model.layers[0].self_attn.rot_emb.inv_freq.detach().float()
        self.blocks = [self._block(layer) for layer in model.layers]

    def _cast(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.detach().to(self.dtype).contiguous()

    def _pairs(self, width: int) -> torch.Tensor:
        """Output order of the query and key projections that puts each rotary pair (i, i + head_dim / 2) of a
        head side by side, so that the rotation is one complex product. Queries and keys get the same order, so
        their dot products, and with them the attention, are unchanged."""
        head_dim = width // self.heads
        half = head_dim // 2
        within = torch.stack((torch.arange(half), torch.arange(half) + half), 1).reshape(-1)
        return (torch.arange(self.heads)[:, None] * head_dim + within).reshape(-1)

    def _block(self, layer: torch.nn.Module) -> _Block:
        attn = layer.self_attn
        order = self._pairs(attn.q_proj.weight.shape[0])
        weights = (attn.q_proj.weight[order], attn.k_proj.weight[order], attn.v_proj.weight)
        biases = (attn.q_proj.bias[order], attn.k_proj.bias[order], attn.v_proj.bias)
        return _Block(
            attn_norm=layer.self_attn_layer_norm,
            qkv_weight=self._cast(torch.cat(weights)),
            qkv_bias=self._cast(torch.cat(biases)),
            out_weight=self._cast(attn.out_proj.weight),
            out_bias=self._cast(attn.out_proj.bias),
            ffn_norm=layer.final_layer_norm,
            fc1_weight=self._cast(layer.fc1.weight),
            fc1_bias=self._cast(layer.fc1.bias),
            fc2_weight=self._cast(layer.fc2.weight),
            fc2_bias=self._cast(layer.fc2.bias),
        )

    def embeddings(self, tokens: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        """Layer 0: token embeddings rescaled for the masked-token share (token dropout), padding zeroed."""
        model = self.model
        x = model.embed_tokens(tokens) * model.embed_scale
        if model.token_dropout:
            masked = tokens.eq(model.mask_idx)
            x = x.masked_fill(masked.unsqueeze(-1), 0.0)
            observed = masked.sum(-1).to(x.dtype) / (~padding).sum(-1)
            x = x * (1 - _MASK_RATIO_TRAIN) / (1 - observed)[:, None, None]
        return x * (1 - padding.unsqueeze(-1).type_as(x))

    def rotary_table(self, length: int, device: torch.device) -> torch.Tensor:
        """exp(i * position * inv_freq): complex64 [T, 1, 1, head_dim / 2], fair-esm's angles (float32)."""
        positions = torch.arange(length, device=device, dtype=torch.float32)
        angles = torch.outer(positions, self.inv_freq.to(device))
        return torch.polar(torch.ones_like(angles), angles)[:, None, None, :]

    def block(self, block: _Block, x: torch.Tensor, keep: torch.Tensor | None, rotary: torch.Tensor) -> torch.Tensor:
        """One pre-LayerNorm block on the float32 residual stream x [B, T, E]."""
        batch, length, width = x.shape
        head_dim = width // self.heads
        h = block.attn_norm(x).to(self.dtype)
        qkv = F.linear(h, block.qkv_weight, block.qkv_bias).view(batch, length, 3, self.heads, head_dim)
        # Rotary positions on queries and keys (pairs side by side, see _pairs) as one complex product in float32,
        # written straight into the [2, B, H, T, head_dim] layout attention reads.
        pairs = qkv[:, :, :2].float().reshape(batch, length, 2, self.heads, head_dim // 2, 2)
        rotated = torch.empty((2, batch, self.heads, length, head_dim // 2), dtype=torch.complex64, device=x.device)
        torch.mul(torch.view_as_complex(pairs), rotary, out=rotated.permute(1, 3, 0, 2, 4))
        qk = torch.view_as_real(rotated).flatten(-2).to(self.dtype)
        v = qkv[:, :, 2].transpose(1, 2)
        attended = F.scaled_dot_product_attention(qk[0], qk[1], v, attn_mask=keep)
        attended = attended.transpose(1, 2).reshape(batch, length, width)
        x = x + F.linear(attended, block.out_weight, block.out_bias).float()
        h = block.ffn_norm(x).to(self.dtype)
        h = F.gelu(F.linear(h, block.fc1_weight, block.fc1_bias))
        return x + F.linear(h, block.fc2_weight, block.fc2_bias).float()

    def __call__(self, tokens: torch.Tensor) -> list[torch.Tensor]:
        """Hidden states float32 [B, T, E] of every layer for `tokens` [B, T] (BOS/EOS included, padded with the
        alphabet's padding index): embeddings, then each block's output, the last after the final LayerNorm."""
        padding = tokens.eq(self.model.padding_idx)
        x = self.embeddings(tokens, padding)
        # Attention mask: True where a key is a real token (None when no sequence is padded, as in fair-esm).
        keep = (~padding)[:, None, None, :] if bool(padding.any()) else None
        rotary = self.rotary_table(tokens.shape[1], tokens.device)
        states = [x]
        for block in self.blocks:
            x = self.block(block, x, keep, rotary)
            states.append(x)
        states[-1] = self.model.emb_layer_norm_after(x)
        return states
