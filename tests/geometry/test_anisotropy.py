"""Anisotropy: PC1 variance share of the centred rows and mean cosine similarity of the rows."""

from __future__ import annotations

import numpy as np
import pytest

from hidden_geometry.errors import InputError
from hidden_geometry.geometry import anisotropy


def test_isotropic_gaussian():
    X = np.random.default_rng(41).standard_normal((4000, 20))
    result = anisotropy(X)
    assert result.pc1_share == pytest.approx(1 / 20, abs=0.02)
    assert abs(result.mean_cosine) < 0.01


def test_one_dominant_direction_and_common_offset():
    rng = np.random.default_rng(42)
    direction = rng.standard_normal(30)
    X = rng.standard_normal((1000, 1)) * 10 * direction + rng.standard_normal((1000, 30)) * 0.1
    assert anisotropy(X).pc1_share > 0.99
    shifted = rng.standard_normal((1000, 30)) + 50.0
    assert anisotropy(shifted).mean_cosine > 0.99


def test_matches_direct_computation_float32_and_wide():
    rng = np.random.default_rng(43)
    for shape in ((300, 12), (40, 100)):  # tall, and wide (N < D uses the Gram matrix)
        X = (rng.standard_normal(shape) @ np.diag(np.linspace(0.2, 3, shape[1]))).astype(np.float32)
        X64 = X.astype(np.float64)
        s = np.linalg.svd(X64 - X64.mean(0), compute_uv=False)
        U = X64 / np.linalg.norm(X64, axis=1, keepdims=True)
        C = U @ U.T
        result = anisotropy(X)
        assert result.pc1_share == pytest.approx(s[0] ** 2 / np.sum(s**2), rel=1e-9)
        assert result.mean_cosine == pytest.approx((C.sum() - np.trace(C)) / (shape[0] * (shape[0] - 1)), rel=1e-9)


def test_bad_inputs():
    with pytest.raises(InputError, match="all zeros"):
        anisotropy(np.array([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]]))
    with pytest.raises(InputError, match="at least 2 rows"):
        anisotropy(np.ones((1, 3)))
    with pytest.raises(InputError, match="NaN"):
        anisotropy(np.array([[1.0, np.nan], [1.0, 2.0]]))
    same = anisotropy(np.ones((5, 3)))
    assert np.isnan(same.pc1_share) and same.to_dict()["pc1_share"] is None
