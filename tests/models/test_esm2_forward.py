"""The project's ESM-2 forward (`models.esm2_forward.Esm2Forward`) against fair-esm's own module, the reference:
every layer equal to 1e-4 (relative) on random weights with padding and masked tokens, batch invariance in fp32
and bf16, and the `dtype` setting: bf16 on the CPU, recorded in the manifest, resumed only with the same dtype,
a bad value refused naming its key. The trained-weights comparison is in test_trained_esm2.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hidden_geometry.errors import InputError
from hidden_geometry.hardware import check_ieee_products
from hidden_geometry.models.esm2_forward import Esm2Forward
from hidden_geometry.models.extraction import extract_representations, load_layer, read_manifest
from hidden_geometry.models.loading import load_model
from hidden_geometry.models.random_init import build_random_esm2

SEQUENCES = [
    "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ",
    "GSHMLE",
    "ACDEFGHIKLMNPQRSTVWY",
    "KV",
    "MVLSPADKTNVKAAWGKVGAHAGEYGAEALERMFLSFPTTKTYFPHF",
]


@pytest.fixture(scope="module")
def small_esm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # head_dim 16 as in the published t6-t33 (rotary pairs across 8 frequencies), 3 blocks
    folder = tmp_path_factory.mktemp("esm2_forward")
    return build_random_esm2(folder / "esm2_t3_small.pt", num_layers=3, embed_dim=64, attention_heads=4, seed=2)


def _tokens(adapter, sequences: list[str], mask_at: dict[int, list[int]] | None = None) -> torch.Tensor:
    _, _, tokens = adapter.alphabet.get_batch_converter()([(str(i), s) for i, s in enumerate(sequences)])
    for row, positions in (mask_at or {}).items():
        tokens[row, positions] = adapter.alphabet.mask_idx
    return tokens


def _worst_relative(states: list[torch.Tensor], reference: dict, real: torch.Tensor) -> float:
    worst = 0.0
    for layer, ref in reference.items():
        a, b = states[layer][real].double(), ref[real].double()
        worst = max(worst, float(((a - b).norm(dim=-1) / b.norm(dim=-1)).max()))
    return worst


def test_every_layer_equals_fair_esm_with_padding_and_masked_tokens(small_esm: Path) -> None:
    adapter = load_model({"path": str(small_esm)}, name="small")
    # masked tokens exercise the token-dropout rescaling, which depends on each sequence's masked share
    tokens = _tokens(adapter, SEQUENCES, mask_at={0: [3, 7, 8], 4: [10]})
    assert bool(tokens.eq(adapter.alphabet.padding_idx).any())
    real = tokens.ne(adapter.alphabet.padding_idx)
    with torch.inference_mode():
        reference = adapter.model(tokens, repr_layers=list(range(adapter.n_layers)))["representations"]
        states = Esm2Forward(adapter.model)(tokens)
    assert len(states) == adapter.n_layers == 4
    assert _worst_relative(states, reference, real) < 1e-5


def test_unpadded_batch_and_a_single_sequence_equal_fair_esm(small_esm: Path) -> None:
    adapter = load_model({"path": str(small_esm)}, name="small")
    for sequences in (["ACDEFGHIKL", "MKTAYIAKQR"], [SEQUENCES[4]]):
        tokens = _tokens(adapter, sequences)
        with torch.inference_mode():
            reference = adapter.model(tokens, repr_layers=list(range(adapter.n_layers)))["representations"]
            states = Esm2Forward(adapter.model)(tokens)
        assert _worst_relative(states, reference, torch.ones_like(tokens, dtype=torch.bool)) < 1e-5


def test_the_adapter_pools_the_fast_forward_like_fair_esm_mean(small_esm: Path) -> None:
    # what extract.py's `--include mean` writes: the mean over residues of fair-esm's representations
    adapter = load_model({"path": str(small_esm)}, name="small")
    pooled = adapter.forward_pooled(SEQUENCES)
    for row, seq in enumerate(SEQUENCES):
        tokens = _tokens(adapter, [seq])
        with torch.inference_mode():
            reps = adapter.model(tokens, repr_layers=list(range(adapter.n_layers)))["representations"]
        for layer in range(adapter.n_layers):
            expected = reps[layer][0, 1 : len(seq) + 1].mean(0).numpy()
            error = np.linalg.norm(pooled[layer][row] - expected) / np.linalg.norm(expected)
            assert error < 1e-5, f"item {row} layer {layer}: {error:.1e}"


@pytest.mark.parametrize(("dtype", "tolerance"), [("fp32", 1e-5), ("bf16", 1e-2)])
def test_batch_invariance_in_both_precisions(small_esm: Path, dtype: str, tolerance: float) -> None:
    # bf16 products round differently with the batch's shape: a vector then moves at the level of bf16's rounding
    # (about 2e-3 measured), the size of its whole difference from fp32; fp32 stays at float32 rounding
    adapter = load_model({"path": str(small_esm), "dtype": dtype}, name="small")
    together = adapter.forward_pooled(SEQUENCES)
    worst = 0.0
    for row, seq in enumerate(SEQUENCES):
        alone = adapter.forward_pooled([seq])
        for layer in range(adapter.n_layers):
            worst = max(worst, float(np.linalg.norm(together[layer][row] - alone[layer][0])
                                     / np.linalg.norm(alone[layer][0])))
    assert worst < tolerance


def test_bf16_on_the_cpu_is_computed_in_bf16_and_stays_close_to_fp32(small_esm: Path) -> None:
    fp32 = load_model({"path": str(small_esm)}, name="small")
    bf16 = load_model({"path": str(small_esm), "dtype": "bf16"}, name="small")
    assert (fp32.describe()["dtype"], bf16.describe()["dtype"]) == ("fp32", "bf16")
    assert bf16.reduced_precision and not fp32.reduced_precision
    a, b = fp32.forward_pooled(SEQUENCES), bf16.forward_pooled(SEQUENCES)
    np.testing.assert_array_equal(a[0], b[0])  # the embeddings are not computed, only looked up and scaled
    for layer in range(1, fp32.n_layers):
        error = np.linalg.norm(a[layer] - b[layer], axis=1) / np.linalg.norm(a[layer], axis=1)
        assert 1e-5 < error.max() < 5e-2, f"layer {layer}: {error.max():.1e}"  # bf16 really ran, and stayed close
    # the fp32 recompute (for non-finite vectors) gives fp32's numbers
    again = bf16.forward_pooled(SEQUENCES, fp32=True)
    for layer in range(fp32.n_layers):
        np.testing.assert_allclose(again[layer], a[layer], rtol=1e-6, atol=1e-7)


def test_the_manifest_records_the_dtype_and_resume_needs_the_same_one(small_esm: Path, tmp_path: Path) -> None:
    ids = [f"p{i}" for i in range(len(SEQUENCES))]
    fp32 = load_model({"path": str(small_esm)}, name="small")
    bf16 = load_model({"path": str(small_esm), "dtype": "bf16"}, name="small")
    out = tmp_path / "run"
    extract_representations(fp32, SEQUENCES, ids, out, progress=False)
    assert read_manifest(out)["dtype"] == "fp32"
    first = np.array(load_layer(out, 3))
    result = extract_representations(bf16, SEQUENCES, ids, out, progress=False)
    assert not result.skipped  # a folder made in fp32 is not reused for bf16
    assert read_manifest(out)["dtype"] == "bf16"
    assert not np.array_equal(np.array(load_layer(out, 3)), first)
    assert extract_representations(bf16, SEQUENCES, ids, out, progress=False).skipped


def test_transformers_models_run_bf16_on_the_cpu_too(tiny_esm_hf: Path) -> None:
    fp32 = load_model({"path": str(tiny_esm_hf), "kind": "esm2"}, name="hf")
    bf16 = load_model({"path": str(tiny_esm_hf), "kind": "esm2", "dtype": "bf16"}, name="hf")
    assert bf16.describe()["dtype"] == "bf16"
    a, b = fp32.forward_pooled(SEQUENCES), bf16.forward_pooled(SEQUENCES)
    error = np.linalg.norm(a[-1] - b[-1], axis=1) / np.linalg.norm(a[-1], axis=1)
    assert 1e-5 < error.max() < 5e-2


def test_fp16_on_the_cpu_computes_fp32_and_says_so(small_esm: Path) -> None:
    adapter = load_model({"path": str(small_esm), "dtype": "fp16"}, name="small")
    assert adapter.describe()["dtype"] == "fp32" and not adapter.reduced_precision


@pytest.mark.parametrize("value", ["bfloat16", "float32", "half", 16])
def test_a_bad_dtype_is_one_line_naming_the_key(small_esm: Path, value: object) -> None:
    with pytest.raises(InputError) as caught:
        load_model({"path": str(small_esm), "dtype": value}, name="small")
    message = str(caught.value)
    assert "models.small.dtype" in message and str(value) in message and "\n" not in message


def test_a_module_it_cannot_reproduce_is_refused(small_esm: Path) -> None:
    adapter = load_model({"path": str(small_esm)}, name="small")
    with pytest.raises(ValueError, match="float32 or bfloat16"):
        Esm2Forward(adapter.model, torch.float16)
    adapter.model.layers[0].self_attn.rot_emb = None
    with pytest.raises(ValueError, match="rotary"):
        Esm2Forward(adapter.model)


def _caller_setting_bites() -> bool:
    """Whether the caller's setting changes float32 products here. set_float32_matmul_precision("medium") runs them
    in bfloat16 on a CPU with AMX (and in TF32 on CUDA); on an AMD EPYC with AVX512-BF16 but no AMX it changed only
    the order of float32 sums (larger products, IEEE arithmetic still). Autocast to bfloat16 bites everywhere."""
    try:
        check_ieee_products(torch.device("cpu"))
    except RuntimeError:
        return True
    return False


@pytest.mark.parametrize("setting", ["medium", "autocast"])
def test_float32_extraction_is_ieee_float32_whatever_the_callers_torch_setting(small_esm: Path, setting: str) -> None:
    # A notebook's torch.set_float32_matmul_precision("medium") or torch.autocast: the extraction's fp32 forward (the
    # manifest says fp32) keeps IEEE float32 products inside, and leaves the caller's setting as it was.
    adapter = load_model({"path": str(small_esm)}, name="small")
    expected = adapter.forward_pooled(SEQUENCES)
    before = torch.get_float32_matmul_precision()
    try:
        if setting == "medium":
            torch.set_float32_matmul_precision("medium")
            bites = _caller_setting_bites()
            got = adapter.forward_pooled(SEQUENCES)
            assert torch.get_float32_matmul_precision() == "medium"
        else:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                bites = _caller_setting_bites()
                got = adapter.forward_pooled(SEQUENCES)
                assert torch.is_autocast_enabled("cpu")
    finally:
        torch.set_float32_matmul_precision(before)
    # where the setting bites (autocast everywhere, "medium" with AMX), the guard is what keeps the vectors
    assert bites or setting == "medium"
    for layer_expected, layer_got in zip(expected, got):
        np.testing.assert_array_equal(layer_got, layer_expected)
