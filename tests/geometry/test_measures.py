"""Measures beyond the graph: each against a case of known answer and an independent computation."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from hidden_geometry.errors import InputError
from hidden_geometry.geometry import (
    cell_density,
    covariance_eigenvalues,
    isoscore,
    mean_cosine,
    participation_ratio,
    token_anisotropy,
)
from hidden_geometry.geometry.measures import cell_indices


def rows_with_variances(n: int, variances: np.ndarray, seed: int) -> np.ndarray:
    """N rows whose sample covariance has exactly these eigenvalues (centred orthonormal columns, scaled)."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, variances.size))
    A -= A.mean(axis=0)
    Q, _ = np.linalg.qr(A)
    rotation, _ = np.linalg.qr(rng.standard_normal((variances.size, variances.size)))
    return (Q * np.sqrt(variances * (n - 1))) @ rotation + 3.0


def test_covariance_eigenvalues_exact_and_wide():
    variances = np.array([5.0, 2.0, 1.0, 0.5, 0.0])
    X = rows_with_variances(200, variances, seed=1)
    np.testing.assert_allclose(covariance_eigenvalues(X), variances, atol=1e-10)
    wide = np.random.default_rng(2).standard_normal((6, 40))
    values = covariance_eigenvalues(wide)
    assert values.size == 40 and np.all(values[5:] == 0)
    np.testing.assert_allclose(values[:5], np.linalg.eigvalsh(np.cov(wide.T))[::-1][:5], rtol=1e-9)


def test_participation_ratio_known_answers():
    variances = np.array([4.0, 3.0, 2.0, 1.0])
    X = rows_with_variances(100, variances, seed=3)
    assert participation_ratio(X) == pytest.approx(10.0**2 / 30.0, rel=1e-10)
    assert participation_ratio(rows_with_variances(100, np.ones(7), seed=4)) == pytest.approx(7.0, rel=1e-10)
    line = np.outer(np.arange(50.0), np.ones(9))
    assert participation_ratio(line) == pytest.approx(1.0, rel=1e-10)
    assert np.isnan(participation_ratio(np.ones((5, 3))))


def isoscore_by_definition(values: np.ndarray) -> float:
    """Rudman et al. 2022, Algorithm 1 steps 4-7, written from the paper's formulas with plain loops."""
    d = len(values)
    norm = sum(v * v for v in values) ** 0.5
    normalised = [v * d**0.5 / norm for v in values]
    defect = sum((v - 1.0) ** 2 for v in normalised) ** 0.5 / (2 * (d - d**0.5)) ** 0.5
    phi = (d - defect**2 * (d - d**0.5)) ** 2 / d**2
    return (d * phi - 1) / (d - 1)


def test_isoscore_known_answers():
    assert isoscore(rows_with_variances(300, np.ones(6), seed=5)) == pytest.approx(1.0, abs=1e-12)
    line = np.outer(np.arange(30.0), np.linspace(1, 2, 8))
    assert isoscore(line) == pytest.approx(0.0, abs=1e-12)
    # Variance spread equally over k of D dimensions: IsoScore = (k - 1) / (D - 1) exactly (the paper's property).
    for k in (2, 3, 5):
        variances = np.r_[np.ones(k), np.zeros(8 - k)]
        assert isoscore(rows_with_variances(120, variances, seed=k)) == pytest.approx((k - 1) / 7, abs=1e-9)
    variances = np.array([9.0, 4.0, 1.0, 0.3, 0.1])
    assert isoscore(rows_with_variances(80, variances, seed=6)) == pytest.approx(isoscore_by_definition(variances),
                                                                                 rel=1e-9)


@pytest.fixture(scope="session")
def isoscore_package(tmp_path_factory):
    """The IsoScore authors' package (PyPI isoscore==2.0.1, pure Python), downloaded at test time."""
    folder = tmp_path_factory.mktemp("isoscore")
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "isoscore==2.0.1", "-d",
                           str(folder)], capture_output=True, text=True, timeout=120, check=False)
    wheels = list(Path(folder).glob("*.whl"))
    if done.returncode != 0 or not wheels:
        pytest.skip(f"could not download isoscore==2.0.1: {done.stderr.strip()[-200:]}")
    with zipfile.ZipFile(wheels[0]) as archive:
        archive.extractall(folder / "site")
    sys.path.insert(0, str(folder / "site"))
    try:
        from IsoScore import IsoScore as module
    finally:
        sys.path.remove(str(folder / "site"))
    return module


def test_isoscore_matches_the_authors_package(isoscore_package):
    rng = np.random.default_rng(7)
    cases = [rng.standard_normal((500, 10)) @ np.diag(np.linspace(0.1, 3, 10)),
             rng.standard_normal((400, 6)),
             rng.standard_normal((300, 1)) * rng.standard_normal(12) + 0.05 * rng.standard_normal((300, 12))]
    for X in cases:
        reference = float(isoscore_package.IsoScore(X))
        assert isoscore(X) == pytest.approx(reference, abs=1e-6)


def test_mean_cosine_equals_all_pairs():
    rng = np.random.default_rng(8)
    X = rng.standard_normal((60, 5)) + np.array([2.0, 0, 0, 0, 0])
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    pairs = [U[i] @ U[j] for i in range(60) for j in range(60) if i != j]
    assert mean_cosine(X) == pytest.approx(np.mean(pairs), rel=1e-12)
    assert mean_cosine(np.array([[1.0, 0.0], [0.0, 1.0]])) == pytest.approx(0.0, abs=1e-15)
    assert mean_cosine(np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])) == pytest.approx(1.0)
    with pytest.raises(InputError, match="all zeros"):
        mean_cosine(np.array([[1.0, 0.0], [0.0, 0.0]]))


def test_token_anisotropy_known_answers():
    assert token_anisotropy(rows_with_variances(100, np.array([3.0, 1.0, 1.0, 1.0]), seed=9)) == pytest.approx(0.5)
    assert token_anisotropy(rows_with_variances(100, np.ones(10), seed=10)) == pytest.approx(0.1)
    with pytest.raises(InputError, match="token sample"):
        token_anisotropy(np.ones((1, 4)))


def grid(points_per_axis: int, scales: tuple[float, ...]) -> np.ndarray:
    axes = [np.arange(points_per_axis) * s for s in scales]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(scales))


def test_cell_density_known_answers():
    # 4 x 4 x 4 grid with distinct variances per axis: principal axes = the axes; each point alone in a cell.
    X = grid(4, (3.0, 2.0, 1.0))
    assert cell_density(X, n_components=3, bins=4) == pytest.approx(1.0)
    # Every point repeated 5 times: 5 points per occupied cell.
    assert cell_density(np.repeat(X, 5, axis=0), n_components=3, bins=4) == pytest.approx(5.0)
    # Two bins per axis: 8 cells, 8 points each.
    assert cell_density(X, n_components=3, bins=2) == pytest.approx(8.0)
    # Three tight patches far apart along one line, cells on the first principal coordinate: 3 cells of 30 points.
    rng = np.random.default_rng(11)
    patches = np.concatenate([c + 0.01 * rng.standard_normal((30, 6)) for c in (0.0, 10.0, 30.0)])
    assert cell_density(patches, n_components=1, bins=4) == pytest.approx(30.0)
    # On three coordinates the patches' noise spreads them over more cells: lower density.
    assert cell_density(patches, n_components=3, bins=4) < 30.0


def test_cell_indices_match_an_independent_projection():
    rng = np.random.default_rng(12)
    X = rng.standard_normal((200, 8)) @ np.diag([5, 4, 3, 2, 1, 1, 1, 1.0])
    cells = cell_indices(X, n_components=2, bins=5)
    centred = X - X.mean(0)
    _, vectors = np.linalg.eigh(np.cov(centred.T))
    coords = centred @ vectors[:, ::-1][:, :2]
    for column in range(2):
        c = coords[:, column]
        if np.corrcoef(c, cells[:, column])[0, 1] < 0:  # an axis' sign mirrors the bin numbers
            c = -c
        expected = np.minimum(((c - c.min()) / (c.max() - c.min()) * 5).astype(int), 4)
        assert np.array_equal(cells[:, column], expected)


def test_cell_density_bad_parameters():
    with pytest.raises(InputError, match="bins"):
        cell_density(np.ones((4, 2)), bins=0)
    with pytest.raises(InputError, match="n_components"):
        cell_density(np.ones((4, 2)), n_components=1.5)
