"""Whether a model is an encoder (bidirectional attention) or a decoder (causal attention).

Read from the model itself: a transformers config with `is_decoder` set, or whose architecture is a causal LM
(`*ForCausalLM`, `*LMHeadModel`, GPT-2, ImageGPT, Llama and other causal families) is a decoder; BERT-type,
ESM and other bidirectional models are encoders. A model's config key `role` overrides the inference.
"""

from __future__ import annotations

from typing import Any

from ..errors import InputError

ROLES = ("encoder", "decoder")
# transformers model_type values whose attention is causal.
DECODER_TYPES = frozenset({
    "gpt2", "gpt_neo", "gpt_neox", "gptj", "imagegpt", "llama", "mistral", "mixtral", "opt", "bloom", "falcon",
    "phi", "phi3", "qwen2", "gemma", "gemma2", "olmo", "pythia", "codegen", "ctrl", "xglm", "mpt", "starcoder2",
})


def model_role(model: Any, override: str | None = None) -> str:
    """'encoder' or 'decoder' for a torch model (transformers or fair-esm); `override` wins when given."""
    if override is not None:
        if override not in ROLES:
            raise InputError(f"role {override!r} is not one of {', '.join(ROLES)}")
        return override
    config = getattr(model, "config", None)
    if config is None:  # fair-esm ESM-2: a bidirectional encoder
        return "encoder"
    if getattr(config, "is_decoder", False):
        return "decoder"
    if getattr(config, "model_type", "") in DECODER_TYPES:
        return "decoder"
    architectures = getattr(config, "architectures", None) or []
    if any(name.endswith(("ForCausalLM", "LMHeadModel")) for name in architectures):
        return "decoder"
    return "encoder"
