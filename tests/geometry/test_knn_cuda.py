"""The neighbour graph on a CUDA device: the same exact answer as on the CPU, whatever the caller's TF32 settings.

These run only where torch sees a CUDA device (CI has none; docs/benchmarks.md records the run on a GPU
machine). The CPU tests in test_knn_engines.py simulate TF32 with oneDNN's bfloat16 products; here the real
TF32 of the GPU is switched on by the caller and must not reach the graph.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hidden_geometry import hardware
from hidden_geometry.geometry import _knn_torch, knn_graph

from .manifolds import gaussian
from .test_knn_engines import clustered, reference, scaled_case

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (torch sees none)")
CUDA = torch.device("cuda")


def test_the_default_device_is_cuda_and_its_graph_is_the_cpu_graph():
    # device=None picks CUDA where there is one; the graph (indices and float64 distances) is the CPU engine's,
    # and both are the float64 brute force's.
    X = clustered(3000, 96, seed=40, offset=50.0)
    on_gpu = knn_graph(X, 12, block_size=1024)
    on_cpu = knn_graph(X, 12, device="cpu", block_size=1024)
    ref_idx, ref_sq = reference(X, 12)
    np.testing.assert_array_equal(on_gpu.indices, ref_idx)
    np.testing.assert_array_equal(on_gpu.indices, on_cpu.indices)
    np.testing.assert_allclose(on_gpu.distances, np.sqrt(ref_sq), rtol=1e-12)
    np.testing.assert_allclose(on_gpu.distances, on_cpu.distances, rtol=1e-13)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scale", [1e-30, 1e-22, 1e-10, 1.0, 1e10, 1e19, 1e30])
def test_every_magnitude_on_cuda_gives_the_float64_brute_force_answer(scale, dtype):
    # pool=0 and several blocks: the certificate does all the work on the GPU's float32 products too.
    X, ref_idx, ref_sq = scaled_case(scale, dtype)
    graph = knn_graph(X, 8, device="cuda", pool=0, block_size=128)
    np.testing.assert_array_equal(graph.indices, ref_idx)
    np.testing.assert_allclose(graph.distances, np.sqrt(ref_sq), rtol=1e-12)


def test_real_tf32_is_detected_and_turned_off_inside_the_graph():
    # With the caller's TF32 on, a float32 product on the GPU loses the 2^-12 that the check looks for: the check
    # must see it (so it is not vacuous on this hardware). Inside the graph, under the caller's bfloat16 autocast
    # as well, products are IEEE float32 again: pool=0 on noise (the hardest case for the certificate) gives the
    # brute force's rows, and the caller's settings are back afterwards.
    E = gaussian(2000, 64, 64, seed=41).astype(np.float32)
    ref_idx, _ = reference(E, 6)
    before = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("high")  # TF32 for float32 matrix products on CUDA
        with pytest.raises(RuntimeError, match="not IEEE float32"):
            hardware.check_ieee_products(CUDA)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            graph = knn_graph(E, 6, device="cuda", pool=0, block_size=256)
            local_idx, _ = _knn_torch.torch_graph(E, 6, 6, 256, CUDA, 1)
        np.testing.assert_array_equal(graph.indices, ref_idx)
        np.testing.assert_array_equal(local_idx, ref_idx)
        assert torch.get_float32_matmul_precision() == "high"
        with pytest.raises(RuntimeError, match="not IEEE float32"):
            hardware.check_ieee_products(CUDA)  # the caller's TF32 is restored, not left off
    finally:
        torch.set_float32_matmul_precision(before)


def test_cosine_graph_on_cuda_equals_the_cpu_graph():
    X = clustered(1500, 48, seed=42, outliers=True)
    on_gpu = knn_graph(X, 10, metric="cosine", device="cuda", block_size=512)
    on_cpu = knn_graph(X, 10, metric="cosine", device="cpu", block_size=512)
    np.testing.assert_array_equal(on_gpu.indices, on_cpu.indices)
    np.testing.assert_allclose(on_gpu.distances, on_cpu.distances, rtol=1e-12, atol=1e-15)
