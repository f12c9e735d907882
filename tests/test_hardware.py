"""The one answer to "does this CPU multiply bfloat16 in hardware?" (hidden_geometry.hardware), and its users."""

from __future__ import annotations

import numpy as np
import pytest

from hidden_geometry import hardware
from hidden_geometry.geometry import _knn_cpu, knn_graph


@pytest.fixture(autouse=True)
def fresh_answers():
    for cached in (hardware.cpu_flags, hardware.bf16_products_are_native, _knn_cpu.bf16_products_are_fast):
        cached.cache_clear()
    yield
    for cached in (hardware.cpu_flags, hardware.bf16_products_are_native, _knn_cpu.bf16_products_are_fast):
        cached.cache_clear()


def test_cpu_flags_reads_the_first_cpu_of_a_cpuinfo_file(tmp_path):
    intel = tmp_path / "intel"
    intel.write_text("processor\t: 0\nmodel name\t: X\nflags\t\t: fpu sse2 avx512f amx_bf16 amx_tile\n\n"
                     "processor\t: 1\nflags\t\t: fpu\n", encoding="utf-8")
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd bf16\n", encoding="utf-8")
    assert hardware.cpu_flags(str(intel)) == {"fpu", "sse2", "avx512f", "amx_bf16", "amx_tile"}
    assert hardware.cpu_flags(str(arm)) == {"fp", "asimd", "bf16"}
    assert hardware.cpu_flags(str(tmp_path / "absent")) == frozenset()


def test_no_bf16_flag_means_float32_everywhere(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"fpu", "avx2", "avx512f"}))
    assert hardware.bf16_products_are_native() is False
    assert _knn_cpu.bf16_products_are_fast() is False  # the graph's auto precision keeps float32
    X = np.random.default_rng(0).normal(size=(9000, 40)).astype(np.float32)
    import torch

    from hidden_geometry.geometry.neighbours import resolve_precision

    assert resolve_precision("auto", X.shape[0], torch.device("cpu")) == "float32"
    assert knn_graph(X[:300], 5).k == 5


def test_a_bf16_flag_and_the_model_check_mean_bfloat16_for_large_inputs(monkeypatch):
    import torch

    from hidden_geometry.geometry.neighbours import resolve_precision

    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    monkeypatch.setattr(_knn_cpu, "bf16_accumulation_is_float32", lambda: True)
    supported = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    expected = supported is not None and bool(supported())
    assert hardware.bf16_products_are_native() is expected
    assert resolve_precision("auto", 100_000, torch.device("cpu")) == ("auto-bfloat16" if expected else "float32")
    assert resolve_precision("auto", 100, torch.device("cpu")) == "float32"  # small inputs: float32 always


def test_the_linear_probe_takes_the_same_answer(monkeypatch):
    from hidden_geometry import probes

    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"fpu"}))
    assert probes.bf16_products_are_native() is False


def test_float32_products_take_openblas_on_amd_and_torch_elsewhere(tmp_path, monkeypatch):
    amd = tmp_path / "amd"
    amd.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\n", encoding="utf-8")
    intel = tmp_path / "intel"
    intel.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\n", encoding="utf-8")
    assert hardware.cpu_vendor(str(amd)) == "AuthenticAMD" and hardware.cpu_vendor(str(intel)) == "GenuineIntel"
    assert hardware.cpu_vendor(str(tmp_path / "absent")) == ""
    monkeypatch.delenv("HIDDEN_GEOMETRY_FLOAT32_PRODUCTS", raising=False)
    for vendor, library in (("AuthenticAMD", "openblas"), ("GenuineIntel", "torch"), ("", "torch")):
        monkeypatch.setattr(hardware, "cpu_vendor", lambda vendor=vendor: vendor)
        assert hardware.float32_products_library() == library
        assert hardware.float32_products_library("torch") == "torch"
        assert hardware.float32_products_library("openblas") == "openblas"
    monkeypatch.setenv("HIDDEN_GEOMETRY_FLOAT32_PRODUCTS", "openblas")
    assert hardware.float32_products_library() == "openblas"
    monkeypatch.setenv("HIDDEN_GEOMETRY_FLOAT32_PRODUCTS", "mkl")
    with pytest.raises(ValueError, match="HIDDEN_GEOMETRY_FLOAT32_PRODUCTS: 'mkl'"):
        hardware.float32_products_library()
