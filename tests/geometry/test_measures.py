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
from hidden_geometry.geometry.measures import (
    cell_counts,
    kmeans_cells,
    kmeans_seeds,
    layer_measures,
    patchiness,
    product_quantizer_codes,
)


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


def test_isoscore_is_an_affine_function_of_the_participation_ratio():
    """Algebra (docs/measures.md): |v - 1|^2 = 2D - 2 sqrt(D) sum(lambda) / |lambda|, so k = (sum lambda)^2 /
    sum lambda^2 = the participation ratio and IsoScore = (PR - 1) / (D - 1); one measure within a model."""
    rng = np.random.default_rng(21)
    for d in (3, 16, 64):
        X = rng.standard_normal((300, d)) @ rng.standard_normal((d, d))
        assert isoscore(X) == pytest.approx((participation_ratio(X) - 1.0) / (d - 1.0), rel=1e-9)


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


def clusters_per_block(sizes: list[int], blocks: int, width: int, seed: int) -> np.ndarray:
    """Rows whose every block of `width` coordinates sits in one of len(sizes) far-apart tight clusters, cluster j
    holding sizes[j] rows (rows shuffled independently per block, so blocks do not share the cluster pattern)."""
    rng = np.random.default_rng(seed)
    n = sum(sizes)
    parts = []
    for _ in range(blocks):
        centres = 100.0 * rng.standard_normal((len(sizes), width))
        members = rng.permutation(np.repeat(np.arange(len(sizes)), sizes))
        parts.append(centres[members] + 0.01 * rng.standard_normal((n, width)))
    return np.concatenate(parts, axis=1)


def patchiness_by_hand(counts: list[list[int]]) -> float:
    """Marbut et al.'s patchiness written out with loops: m = total / cells, V = population variance of all
    counts, (m + V / m - 1) / m."""
    flat = [c for row in counts for c in row]
    cells = len(counts[0])
    m = sum(flat) / cells
    mean = sum(flat) / len(flat)
    variance = sum((c - mean) ** 2 for c in flat) / len(flat)
    return (m + variance / m - 1.0) / m


def test_cell_density_known_answers():
    # 8 equal clusters of 5 rows in each of 2 blocks: every cell holds 5 points, V = 0, m = 2 x 40 / 8 = 10.
    X = clusters_per_block([5] * 8, blocks=2, width=3, seed=11)
    assert cell_density(X, subspaces=2, cells=8) == pytest.approx(1.0 - 1.0 / 10.0)
    codes = product_quantizer_codes(X, subspaces=2, cells=8)
    assert sorted(np.bincount(codes[:, 0], minlength=8)) == [5] * 8
    # Unequal clusters (10, 5, 3, 2), one block: m = 20 / 4 = 5, V = 9.5, patchiness (5 + 1.9 - 1) / 5 = 1.18.
    X = clusters_per_block([10, 5, 3, 2], blocks=1, width=4, seed=12)
    assert cell_density(X, subspaces=1, cells=4) == pytest.approx(1.18)
    assert patchiness_by_hand([[10, 5, 3, 2]]) == pytest.approx(1.18)
    # Crowding raises it: the same 20 rows in clusters (17, 1, 1, 1) are patchier than (5, 5, 5, 5).
    crowded = cell_density(clusters_per_block([17, 1, 1, 1], blocks=1, width=4, seed=13), subspaces=1, cells=4)
    even = cell_density(clusters_per_block([5, 5, 5, 5], blocks=1, width=4, seed=14), subspaces=1, cells=4)
    assert even == pytest.approx(0.8) and crowded == pytest.approx(patchiness_by_hand([[17, 1, 1, 1]]))
    assert crowded > even


def test_patchiness_matches_the_loop_and_uses_every_subspace():
    counts = np.array([[4, 0, 7, 1, 3], [2, 2, 5, 5, 1]])
    assert patchiness(counts) == pytest.approx(patchiness_by_hand(counts.tolist()), rel=1e-12)
    with pytest.raises(InputError, match="empty"):
        patchiness(np.zeros((2, 3)))


def test_kmeans_cells_equal_scikit_learn_from_the_same_seeds():
    """Our k-means against scikit-learn's Lloyd k-means started from the same k-means++ seeds."""
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(15)
    centres = 6.0 * rng.standard_normal((12, 5))
    Y = centres[rng.integers(0, 12, 600)] + rng.standard_normal((600, 5))
    seeds = kmeans_seeds(Y, 12, np.random.default_rng(3))
    ours, centroids = kmeans_cells(Y, 12, iterations=100, init=seeds)
    theirs = KMeans(n_clusters=12, init=seeds, n_init=1, max_iter=100, tol=0.0, algorithm="lloyd").fit(Y)
    assert np.array_equal(ours, theirs.labels_)
    np.testing.assert_allclose(centroids, theirs.cluster_centers_, atol=1e-5)


def test_cell_density_is_the_patchiness_of_the_product_quantizer_cells():
    """The whole measure against a slow recomputation: blocks cut by hand, scikit-learn k-means per block from
    our seeds, counts and the patchiness loop."""
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(16)
    X = rng.standard_normal((400, 10)) @ rng.standard_normal((10, 10))
    value = cell_density(X, subspaces=3, cells=16, iterations=300, seed=5)
    counts = []
    for j, block in enumerate(([0, 1, 2, 3], [4, 5, 6], [7, 8, 9])):  # contiguous, sizes within one
        Y = X[:, block]
        seeds = kmeans_seeds(Y, 16, np.random.default_rng(5 + j))
        labels = KMeans(n_clusters=16, init=seeds, n_init=1, max_iter=300, tol=0.0, algorithm="lloyd").fit(Y).labels_
        counts.append([int(np.sum(labels == c)) for c in range(16)])
    assert value == pytest.approx(patchiness_by_hand(counts), rel=1e-12)
    codes = product_quantizer_codes(X, subspaces=3, cells=16, iterations=300, seed=5)
    assert np.array_equal(cell_counts(codes, 16), np.array(counts))


def test_cell_density_bad_parameters():
    with pytest.raises(InputError, match="cells"):
        cell_density(np.ones((4, 2)), cells=0)
    with pytest.raises(InputError, match="subspaces"):
        cell_density(np.ones((4, 2)), subspaces=1.5)
    with pytest.raises(InputError, match="at least 8 rows"):
        cell_density(np.random.default_rng(0).standard_normal((5, 4)), subspaces=2, cells=8)
    with pytest.raises(InputError, match="dimensions"):
        cell_density(np.random.default_rng(0).standard_normal((50, 3)), subspaces=4, cells=8)


def test_layer_measures_take_cell_density_from_the_token_sample():
    rng = np.random.default_rng(17)
    rows, tokens = rng.standard_normal((30, 8)), rng.standard_normal((300, 8))
    result = layer_measures(rows, tokens=tokens, cells=16, subspaces=2, seed=1)
    assert result["cell_density"] == pytest.approx(cell_density(tokens, subspaces=2, cells=16, seed=1))
    assert result["cell_reason"] is None
    few = layer_measures(rows, tokens=tokens[:10], cells=16, subspaces=2)
    assert np.isnan(few["cell_density"]) and "fewer than the 16 cells" in few["cell_reason"]
    assert np.isfinite(few["token_anisotropy"])
    none = layer_measures(rows, tokens=None)
    assert np.isnan(none["cell_density"]) and none["cell_reason"] == "no token sample was kept at extraction"


def token_like_rows(seed: int) -> np.ndarray:
    """Rows like an embedding layer's token states: 30 distinct vectors far from the origin, each repeated (a
    token's input embedding is the same wherever it occurs), plus 600 distinct rows near them."""
    rng = np.random.default_rng(seed)
    vocabulary = 50.0 + rng.standard_normal((30, 40))
    repeated = vocabulary[rng.integers(0, 30, 1400)]
    near = vocabulary[rng.integers(0, 30, 600)] + 0.3 * rng.standard_normal((600, 40))
    return rng.permutation(np.vstack([repeated, near])).astype(np.float32)


def test_kmeans_distances_are_float64_accurate_far_from_the_origin():
    """The assignment distances against direct float64 differences: float32 products lose the spread of rows 50
    from the origin (errors near 1e-7 |y|^2, about 0.01 here, against distances of 1 to 100)."""
    from hidden_geometry.geometry.measures import _squared_distances

    X = token_like_rows(21).astype(np.float64)
    centroids = X[::97][:16]
    direct = ((X[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
    np.testing.assert_allclose(_squared_distances(X, centroids), direct, rtol=1e-9, atol=1e-9)


def test_cell_density_does_not_depend_on_the_blas_thread_count():
    """A layer's value must not depend on how many cores its job got: on AVX2 machines OpenBLAS's float32
    products change with the thread count and flipped k-means assignments (1.75501 against 1.75394)."""
    from threadpoolctl import threadpool_limits

    X = token_like_rows(22)
    with threadpool_limits(limits=1, user_api="blas"):
        one = cell_density(X, subspaces=4, cells=64, seed=3)
    with threadpool_limits(limits=2, user_api="blas"):
        two = cell_density(X, subspaces=4, cells=64, seed=3)
    assert one == two
    codes = product_quantizer_codes(X, subspaces=4, cells=64, seed=3)
    _, first = np.unique(X, axis=0, return_inverse=True)
    for group in np.unique(first):  # identical rows share one cell in every block
        assert (codes[first.ravel() == group] == codes[first.ravel() == group][0]).all()
