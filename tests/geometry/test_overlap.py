"""Neighbourhood overlap chi_k between representations, and with labels (with family exclusion)."""

from __future__ import annotations

import numpy as np
import pytest

from hidden_geometry.errors import InputError
from hidden_geometry.geometry import (
    knn_graph,
    label_overlap,
    label_overlap_details,
    neighbourhood_overlap,
)
from hidden_geometry.geometry.overlap import shared_counts

from .manifolds import brute_force_knn, hypercube


def reference_label_overlap(X, labels, k, groups=None, class_balanced=False):
    """Direct O(N^2) label overlap: all distances, per point the first k eligible neighbours."""
    order, _ = brute_force_knn(X, X.shape[0] - 1)
    per_point = []
    for i in range(X.shape[0]):
        chosen = [j for j in order[i] if groups is None or groups[i] == "" or groups[j] != groups[i]][:k]
        per_point.append(np.mean([labels[j] == labels[i] for j in chosen]))
    per_point = np.array(per_point)
    if not class_balanced:
        return per_point.mean()
    return np.mean([per_point[np.asarray(labels) == c].mean() for c in np.unique(labels)])


def test_identical_representations_overlap_one():
    X = hypercube(500, 3, 6, seed=31)
    a = knn_graph(X, 10)
    b = knn_graph(X * 3.0 + 7.0, 10)  # scaling and shifting keeps every neighbourhood
    assert neighbourhood_overlap(a, b) == 1.0
    assert neighbourhood_overlap(a, b, k=3) == 1.0


def test_independent_representations_overlap_about_k_over_n():
    rng = np.random.default_rng(32)
    n, k = 2000, 20
    a = knn_graph(rng.standard_normal((n, 5)), k)
    b = knn_graph(rng.standard_normal((n, 5)), k)
    value = neighbourhood_overlap(a, b)
    assert value == pytest.approx(k / (n - 1), abs=0.003)


def test_overlap_counts_shared_neighbours_exactly():
    a = np.array([[1, 2, 3], [4, 5, 6]])
    b = np.array([[3, 9, 1], [7, 8, 0]])
    np.testing.assert_array_equal(shared_counts(a, b), [2, 0])


def test_overlap_over_rows_present_in_both():
    X = hypercube(300, 2, 3, seed=33)
    keep = np.ones(300, dtype=bool)
    keep[:50] = False
    a = knn_graph(X, 5, keep=keep)
    b = knn_graph(X, 5)
    # On the 250 common rows, lists differ only where a removed row was a neighbour in b.
    value = neighbourhood_overlap(a, b)
    assert 0.8 < value < 1.0
    with pytest.raises(InputError, match="larger than"):
        neighbourhood_overlap(a, b, k=6)


def test_label_overlap_equals_direct_reference():
    rng = np.random.default_rng(34)
    X = rng.standard_normal((240, 4))
    labels = np.where(X[:, 0] + 0.5 * rng.standard_normal(240) > 0, "up", "down")
    graph = knn_graph(X, 239)
    for k in (1, 5, 17):
        assert label_overlap(graph, labels, k) == pytest.approx(reference_label_overlap(X, labels, k), rel=1e-12)
        assert label_overlap(graph, labels, k, class_balanced=True) == pytest.approx(
            reference_label_overlap(X, labels, k, class_balanced=True), rel=1e-12
        )


def test_family_exclusion_is_honoured():
    rng = np.random.default_rng(35)
    # 40 families of 5 tight points; families pair up into 20 superfamilies (the label).
    centres = rng.standard_normal((40, 6)) * 5
    X = np.repeat(centres, 5, axis=0) + 0.05 * rng.standard_normal((200, 6))
    family = np.repeat([f"f{i}" for i in range(40)], 5)
    superfamily = np.repeat([f"s{i // 2}" for i in range(40)], 5)
    graph = knn_graph(X, 60)
    plain = label_overlap(graph, superfamily, 4)
    assert plain == 1.0  # the 4 nearest are the own family: trivially the same superfamily
    excluded = label_overlap(graph, superfamily, 4, exclude_groups=family)
    assert excluded == pytest.approx(reference_label_overlap(X, superfamily, 4, groups=family), rel=1e-12)
    assert excluded < 0.5
    # An empty group excludes nothing.
    no_groups = np.array([""] * 200, dtype=object)
    assert label_overlap(graph, superfamily, 4, exclude_groups=no_groups) == plain


def test_label_overlap_reports_short_lists():
    X = hypercube(60, 2, 3, seed=36)
    graph = knn_graph(X, 5)
    groups = np.array(["g"] * 30 + ["h"] * 30)
    details = label_overlap_details(graph, np.zeros(60, dtype=int), 5, exclude_groups=groups)
    assert details.n_short > 0
    assert details.to_dict()["n_short"] == details.n_short


def test_label_overlap_input_errors():
    graph = knn_graph(hypercube(50, 2, 3, seed=37), 4)
    with pytest.raises(InputError, match="49 values for 50 rows"):
        label_overlap(graph, np.zeros(49), 4)
    with pytest.raises(InputError, match="larger than"):
        label_overlap(graph, np.zeros(50), 5)


def test_overlap_matrix_is_every_pairwise_overlap():
    from hidden_geometry.geometry import overlap_matrix

    rng = np.random.default_rng(5)
    X = rng.normal(size=(80, 4))
    graphs = [
        knn_graph(X, 6),
        knn_graph(X + 0.05 * rng.normal(size=X.shape), 6),
        None,
        knn_graph(rng.normal(size=(80, 4)), 8),
    ]
    matrix = overlap_matrix(graphs, k=5)
    assert matrix.shape == (4, 4) and np.allclose(matrix, matrix.T, equal_nan=True)
    assert matrix[0, 0] == 1.0 and np.all(np.isnan(matrix[2])) and np.all(np.isnan(matrix[:, 2]))
    assert matrix[0, 1] == neighbourhood_overlap(graphs[0], graphs[1], k=5) and matrix[0, 1] > 0.5
    assert matrix[0, 3] == neighbourhood_overlap(graphs[0], graphs[3], k=5) and matrix[0, 3] < 0.3
