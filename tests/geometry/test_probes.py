"""Linear probe and kNN probe: accuracy where defined, NaN with a reason where not."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hidden_geometry.errors import InputError
from hidden_geometry.geometry import knn_graph
from hidden_geometry.probes import (
    fold_splits,
    knn_probe,
    knn_votes,
    linear_probe,
    standardise,
)


def blobs(n_per_class=60, n_classes=3, dim=5, spread=0.3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_classes, dim)) * 3
    y = np.repeat(np.arange(n_classes), n_per_class)
    return centres[y] + spread * rng.standard_normal((y.size, dim)), y


def test_linear_probe_separable_and_chance():
    X, y = blobs()
    result = linear_probe(X, y, folds=5, seed=0)
    assert result.mean > 0.97 and result.n_folds == 5 and result.reason == ""
    rng = np.random.default_rng(1)
    random_labels = rng.integers(0, 2, X.shape[0])
    chance = linear_probe(rng.standard_normal((X.shape[0], 5)), random_labels)
    assert 0.3 < chance.mean < 0.7
    assert linear_probe(X, y, seed=3).mean == linear_probe(X, y, seed=3).mean


def test_linear_probe_undefined_and_reduced_cases():
    X, _ = blobs()
    one_class = linear_probe(X, np.zeros(X.shape[0], dtype=int))
    assert math.isnan(one_class.mean) and "class" in one_class.reason
    assert one_class.to_dict()["mean"] is None
    y = np.array([0] * 100 + [1] * 77 + [2] * 3)
    reduced = linear_probe(X, y, folds=5)
    assert reduced.n_folds == 3 and "reduced" in reduced.reason
    y = np.array([0] * 179 + [1])
    singleton = linear_probe(X, y)
    assert math.isnan(singleton.mean) and "one member" in singleton.reason
    with pytest.raises(InputError, match="values for 180 rows"):
        linear_probe(X, y[:-1])


def test_linear_probe_default_solver_equals_converged_sklearn_fit():
    """The default solver (all folds in one float32 fit) against scikit-learn's LogisticRegression fitted to
    convergence on the same folds: overlapping classes of unequal sizes, so that accuracy is far from 0 and 1."""
    rng = np.random.default_rng(7)
    sizes = rng.integers(6, 40, 25)
    y = np.repeat(np.arange(25), sizes)
    centres = rng.standard_normal((25, 12)) * 1.2
    X = (centres[y] + rng.standard_normal((y.size, 12))) @ rng.standard_normal((12, 40)) + 5.0
    ours = linear_probe(X, y, folds=5, seed=2)
    converged = linear_probe(X, y, folds=5, seed=2, solver="sklearn", tol=1e-10, max_iter=20_000)
    default_sklearn = linear_probe(X, y, folds=5, seed=2, solver="sklearn")
    assert 0.3 < converged.mean < 0.9
    assert abs(ours.mean - converged.mean) <= 0.005, (ours, converged)
    assert abs(ours.mean - default_sklearn.mean) <= 0.005, (ours, default_sklearn)
    assert ours.n_folds == converged.n_folds == 5
    with pytest.raises(InputError, match="solver"):
        linear_probe(X, y, solver="newton")


def test_fold_splits_are_stratified_kfold_and_standardise_is_standard_scaler():
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import StandardScaler

    y = np.repeat(np.arange(4), [10, 7, 12, 5])
    expected = StratifiedKFold(n_splits=5, shuffle=True, random_state=3).split(np.zeros((y.size, 1)), y)
    for (train, test), (train_ref, test_ref) in zip(fold_splits(y, 5, 3), expected):
        assert np.array_equal(train, train_ref) and np.array_equal(test, test_ref)
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((30, 4)) * 3 + 1, rng.standard_normal((9, 4))
    A[:, 2] = 4.0  # a constant feature keeps scale 1
    scaler = StandardScaler().fit(A)
    got_a, got_b = standardise(A, B)
    assert np.allclose(got_a, scaler.transform(A)) and np.allclose(got_b, scaler.transform(B))


def test_knn_probe_matches_direct_vote():
    X, y = blobs(spread=2.5, seed=4)  # overlapping classes: some errors
    graph = knn_graph(X, 15)
    result = knn_probe(graph, y, k=7)
    votes = y[graph.indices[:, :7]]
    direct = []
    for row in votes:
        counts = np.bincount(row, minlength=3)
        best = np.flatnonzero(counts == counts.max())
        direct.append(next(v for v in row if v in best))  # tie: the nearest tied class
    expected = np.mean(np.array(direct) == y[graph.rows])
    assert result.mean == pytest.approx(expected)
    assert 0.5 < result.mean < 1.0
    assert result.std == pytest.approx(math.sqrt(expected * (1 - expected) / y.size))


def test_knn_votes_tie_goes_to_the_nearest():
    codes = np.array([[2, 1, 1, 2], [0, 1, 2, 3], [3, 3, 1, 1]])
    np.testing.assert_array_equal(knn_votes(codes, 4), [2, 0, 3])


def test_knn_probe_single_class_is_nan_with_reason():
    X, _ = blobs()
    graph = knn_graph(X, 5)
    result = knn_probe(graph, np.ones(X.shape[0]))
    assert math.isnan(result.mean) and "class" in result.reason
