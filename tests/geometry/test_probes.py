"""Linear probe and kNN probe: accuracy where defined, NaN with a reason where not."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hidden_geometry.errors import InputError
from hidden_geometry.geometry import knn_graph
from hidden_geometry.probes import knn_probe, knn_votes, linear_probe


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
