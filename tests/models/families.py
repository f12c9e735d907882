"""Tiny random-weight models of the families researchers bring, built offline from published-style configs.

Each builder writes an ordinary Hugging Face folder (config, safetensors weights, tokenizer files) with a
tokenizer written here: a ProtBert-like space-separated residue vocabulary (the plain sequence gives [UNK]), a
per-letter protein vocabulary, a ProtT5-like one (</s> appended, residues spaced), and word-level vocabularies
for decoders (GPT-2 and GPT-NeoX without a pad token, Llama with a BOS token and left padding).
"""

from __future__ import annotations

from pathlib import Path

import torch

RESIDUES = list("LAGVESIKRDTPNQFYMHCWXUBZO")
WORDS = ["a", "good", "film", "bad", "the", "movie", "was", "long", "very", "short", "and", "boring", "fine"]


def _save(model: torch.nn.Module, tokenizer, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(folder)
    model.eval().save_pretrained(folder)
    return folder


def spaced_bert_tokenizer(folder: Path):
    """ProtBert's convention: WordPiece over single residues, upper case; plain sequences read as one [UNK]."""
    from transformers import BertTokenizerFast

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + RESIDUES
    return BertTokenizerFast(vocab={t: i for i, t in enumerate(vocab)}, do_lower_case=False), len(vocab)


def _fast(vocab: list[str], template: str | None, split_chars: bool, **specials):
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    ids = {t: i for i, t in enumerate(vocab)}
    backend = Tokenizer(models.WordLevel(ids, unk_token=specials["unk_token"]))
    backend.pre_tokenizer = (
        pre_tokenizers.Split(Regex(r"\S"), behavior="isolated") if split_chars else pre_tokenizers.WhitespaceSplit()
    )
    if template:
        names = [w for w in template.split() if w != "$A"]
        backend.post_processor = processors.TemplateProcessing(
            single=template, special_tokens=[(n, ids[n]) for n in names]
        )
    return PreTrainedTokenizerFast(tokenizer_object=backend, **specials), len(vocab)


def build_protein_bert(folder: Path, family: str = "bert", seed: int = 0) -> Path:
    """A BERT-, ALBERT- or ELECTRA-architecture protein encoder with a ProtBert-like spaced vocabulary."""
    from transformers import (
        AlbertConfig,
        AlbertModel,
        BertConfig,
        BertModel,
        ElectraConfig,
        ElectraModel,
    )

    tokenizer, size = spaced_bert_tokenizer(folder)
    common = dict(
        vocab_size=size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=64, pad_token_id=0,
    )
    torch.manual_seed(seed)
    if family == "bert":
        model = BertModel(BertConfig(**common))
    elif family == "albert":
        model = AlbertModel(AlbertConfig(embedding_size=16, **common))
    elif family == "electra":
        model = ElectraModel(ElectraConfig(embedding_size=16, **common))
    else:
        raise ValueError(family)
    return _save(model, tokenizer, folder)


def build_protein_roberta(folder: Path, seed: int = 0) -> Path:
    """A RoBERTa protein encoder whose tokenizer reads one token per letter of the plain sequence."""
    from transformers import RobertaConfig, RobertaModel

    tokenizer, size = _fast(
        ["<pad>", "<s>", "</s>", "<unk>", "<mask>"] + RESIDUES, "<s> $A </s>", split_chars=True,
        pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>", cls_token="<s>", sep_token="</s>",
        mask_token="<mask>",
    )
    torch.manual_seed(seed)
    config = RobertaConfig(
        vocab_size=size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=66, pad_token_id=0, bos_token_id=1, eos_token_id=2,
    )
    return _save(RobertaModel(config), tokenizer, folder)


def build_protein_t5(folder: Path, seed: int = 0) -> Path:
    """A T5 encoder-decoder with ProtT5's convention: residues spaced, </s> appended, rare residues to X."""
    from transformers import T5Config, T5Model

    tokenizer, size = _fast(
        ["<pad>", "</s>", "<unk>"] + RESIDUES, "$A </s>", split_chars=False,
        pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
    )
    torch.manual_seed(seed)
    config = T5Config(
        vocab_size=size, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=1, num_heads=4,
        pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    )
    return _save(T5Model(config), tokenizer, folder)


def build_decoder(folder: Path, family: str, seed: int = 0) -> Path:
    """GPT-2, Llama or GPT-NeoX (Pythia) decoder; GPT-2/NeoX tokenizers have no pad token, Llama's adds BOS and
    pads on the left (as many published Llama tokenizers do)."""
    from transformers import (
        GPT2Config,
        GPT2Model,
        GPTNeoXConfig,
        GPTNeoXModel,
        LlamaConfig,
        LlamaModel,
    )

    torch.manual_seed(seed)
    if family == "llama":
        tokenizer, size = _fast(
            ["<s>", "</s>", "<unk>"] + WORDS, "<s> $A", split_chars=False,
            bos_token="<s>", eos_token="</s>", unk_token="<unk>",
        )
        tokenizer.padding_side = "left"
        config = LlamaConfig(
            vocab_size=size, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64, bos_token_id=0, eos_token_id=1,
        )
        return _save(LlamaModel(config), tokenizer, folder)
    tokenizer, size = _fast(["<|endoftext|>", "<unk>"] + WORDS, None, split_chars=False,
                            eos_token="<|endoftext|>", unk_token="<unk>")
    if family == "gpt2":
        model = GPT2Model(GPT2Config(vocab_size=size, n_positions=64, n_embd=32, n_layer=2, n_head=4,
                                     bos_token_id=0, eos_token_id=0))
    elif family == "gpt_neox":
        model = GPTNeoXModel(GPTNeoXConfig(
            vocab_size=size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
            max_position_embeddings=64, rotary_pct=0.25, bos_token_id=0, eos_token_id=0,
        ))
    else:
        raise ValueError(family)
    return _save(model, tokenizer, folder)
