"""The exact neighbour graph: agreement with a float64 brute force, ties, duplicates, keep-mask, float32 trap."""

from __future__ import annotations

import numpy as np
import pytest

from hidden_geometry.errors import InputError
from hidden_geometry.geometry import (
    find_duplicates,
    knn_graph,
    load_graph,
    save_graph,
    shared_keep_mask,
    twonn,
)

from .manifolds import brute_force_knn, hypercube


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("block_size", [97, 4096])
def test_graph_equals_brute_force(dtype, block_size):
    X = hypercube(700, 6, 16, seed=1).astype(dtype)
    graph = knn_graph(X, 12, block_size=block_size)
    ref_idx, ref_dist = brute_force_knn(X, 12)
    np.testing.assert_array_equal(graph.rows, np.arange(700))
    np.testing.assert_array_equal(graph.indices, ref_idx)
    np.testing.assert_allclose(graph.distances, ref_dist, rtol=1e-13, atol=0)
    assert graph.indices.dtype == np.int64 and graph.distances.dtype == np.float64
    assert graph.n_duplicates == 0 and graph.k == 12 and graph.n_input == 700


def test_cosine_graph_equals_brute_force():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((500, 8)) + 3.0  # far from the origin: cosines near 1, small distances
    graph = knn_graph(X, 7, metric="cosine", block_size=128)
    ref_idx, ref_dist = brute_force_knn(X, 7, metric="cosine")
    np.testing.assert_array_equal(graph.indices, ref_idx)
    np.testing.assert_allclose(graph.distances, ref_dist, rtol=1e-9, atol=1e-18)
    cos = (X[:, None, :] * X[graph.indices]).sum(-1) / np.linalg.norm(X, axis=1)[:, None] / np.linalg.norm(
        X[graph.indices], axis=2
    )
    np.testing.assert_allclose(graph.distances, 1 - cos, atol=1e-12)


@pytest.mark.parametrize("pool", [0, None])
def test_ties_broken_by_index_on_a_lattice(pool):
    # Integer grid: many neighbours at exactly the same distance. With pool=0 the float32 pools cannot be
    # certified and every row goes through the float64 brute force: both paths must give the same answer.
    grid = np.stack(np.meshgrid(np.arange(9), np.arange(9), np.arange(5), indexing="ij"), -1).reshape(-1, 3)
    X = grid.astype(np.float32)[np.random.default_rng(0).permutation(len(grid))]
    graph = knn_graph(X, 10, block_size=64, pool=pool)
    ref_idx, ref_dist = brute_force_knn(X, 10)
    np.testing.assert_array_equal(graph.indices, ref_idx)
    np.testing.assert_array_equal(graph.distances, ref_dist)


def test_self_excluded_sorted_and_finite():
    X = hypercube(400, 3, 5, seed=3)
    graph = knn_graph(X, 20, block_size=50)
    assert not np.any(graph.indices == graph.rows[:, None])
    assert np.all(np.diff(graph.distances, axis=1) >= 0)
    assert np.all(np.isfinite(graph.distances)) and np.all(graph.distances > 0)


def test_common_offset_float32_trap():
    # Points of spread ~1 sitting at distance 1000 from the origin: float32 products of the raw rows lose the
    # neighbours; the graph must find the same ones as float64 does on the same float32 values.
    rng = np.random.default_rng(4)
    Z = hypercube(3000, 4, 20, seed=4)
    offset = rng.standard_normal(20)
    offset *= 1000.0 / np.linalg.norm(offset)
    X32 = (Z + offset).astype(np.float32)
    graph = knn_graph(X32, 10)
    X64 = X32.astype(np.float64)
    reference = knn_graph(X64 - X64.mean(axis=0), 10)  # float64 rows near the origin: no trap possible
    np.testing.assert_array_equal(graph.indices, reference.indices)
    np.testing.assert_allclose(graph.distances, reference.distances, rtol=1e-12)
    assert twonn(graph).id == pytest.approx(twonn(reference).id, rel=1e-10)
    # The trap is real: plain float32 products of the uncentred rows give other neighbours.
    Xt = X32[:300]
    sq = (Xt**2).sum(1)[:, None] + (Xt**2).sum(1)[None, :] - 2 * Xt @ Xt.T
    np.fill_diagonal(sq, np.inf)
    naive = np.argsort(sq, axis=1, kind="stable")[:, :10]
    exact = brute_force_knn(X64[:300], 10)[0]
    assert np.mean(naive == exact) < 0.9


def test_duplicates_removed_once_and_counted():
    X = hypercube(300, 3, 6, seed=5)
    copies = np.array([3, 3, 10, 299])
    Xd = np.concatenate([X, X[copies]])
    Xd[-1] = -0.0 + Xd[-1]  # a copy, also after sign-of-zero noise
    graph = knn_graph(Xd, 5)
    assert graph.n_duplicates == 4
    np.testing.assert_array_equal(graph.rows, np.arange(300))
    clean = knn_graph(X, 5)
    np.testing.assert_array_equal(graph.indices, clean.indices)
    assert np.all(graph.distances > 0)
    # Several blocks: the locality order computed beside the duplicate search (of all 304 rows) must be dropped.
    blocked = knn_graph(Xd, 5, block_size=64)
    np.testing.assert_array_equal(blocked.indices, clean.indices)
    np.testing.assert_array_equal(blocked.distances, clean.distances)


def test_find_duplicates_exact_compare_and_signed_zero():
    # 1 + 1e-16 rounds to 1.0 (a true copy); nextafter(2, 3) is the next float after 2 (a different row).
    X = np.array([[0.0, 1.0], [-0.0, 1.0], [0.0, 1.0 + 1e-16], [1.0, 2.0], [1.0, np.nextafter(2.0, 3.0)]])
    keep = find_duplicates(X)
    np.testing.assert_array_equal(keep, [True, False, False, True, True])


def test_find_duplicates_matches_first_occurrence_reference_on_every_width_and_dtype():
    rng = np.random.default_rng(3)
    for dtype, d in ((np.float32, 3), (np.float32, 1280), (np.float64, 5), (np.int32, 7), (np.float16, 9)):
        base = rng.integers(-3, 4, size=(40, d)).astype(dtype)  # few values: some rows repeat by chance too
        X = base[rng.integers(0, 40, size=300)]
        X[rng.random(X.shape) < 0.01] *= -1  # a 0 becomes -0.0 in float rows: still equal
        seen: set[bytes] = set()
        expected = []
        for row in X:
            key = (row + 0 if row.dtype.kind == "f" else row).tobytes()
            expected.append(key not in seen)
            seen.add(key)
        for chunk in (7, 4096):  # rows hashed in several chunks or one
            np.testing.assert_array_equal(find_duplicates(X, chunk=chunk), expected, err_msg=f"{dtype} d={d}")


def test_find_duplicates_survives_hash_collisions(monkeypatch):
    import hidden_geometry.geometry.neighbours as nb

    X = np.array([[1.0, 2.0], [3.0, 4.0], [1.0, 2.0], [5.0, 6.0], [3.0, 4.0], [-0.0, 0.0], [0.0, 0.0]])
    monkeypatch.setattr(nb, "_row_hashes", lambda arr, chunk: np.zeros(arr.shape[0], dtype=np.uint64))
    np.testing.assert_array_equal(nb.find_duplicates(X), [True, True, False, True, False, True, False])


def test_keep_mask_is_honoured():
    X = hypercube(200, 2, 4, seed=6)
    keep = np.ones(200, dtype=bool)
    keep[::3] = False
    graph = knn_graph(X, 4, keep=keep)
    np.testing.assert_array_equal(graph.rows, np.flatnonzero(keep))
    assert not np.isin(graph.indices, np.flatnonzero(~keep)).any()
    ref_idx, _ = brute_force_knn(X[keep], 4)
    np.testing.assert_array_equal(graph.indices, np.flatnonzero(keep)[ref_idx])


def test_shared_keep_mask_drops_duplicates_of_any_layer():
    A = hypercube(50, 2, 3, seed=7)
    B = A.copy()
    A[7] = A[2]  # duplicate only in layer A
    B[9] = B[4]  # duplicate only in layer B
    mask = shared_keep_mask([A, B])
    assert not mask[7] and not mask[9] and mask.sum() == 48


def test_deterministic_across_block_sizes():
    X = hypercube(600, 5, 12, seed=8).astype(np.float32)
    a = knn_graph(X, 9, block_size=64)
    b = knn_graph(X, 9, block_size=1000)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.distances, b.distances)


def test_save_and_load_round_trip(tmp_path):
    graph = knn_graph(hypercube(100, 2, 3, seed=9), 6)
    path = tmp_path / "g.npz"
    save_graph(graph, path)
    back = load_graph(path)
    np.testing.assert_array_equal(back.indices, graph.indices)
    np.testing.assert_array_equal(back.distances, graph.distances)
    np.testing.assert_array_equal(back.rows, graph.rows)
    assert (back.k, back.metric, back.n_duplicates, back.n_input) == (6, "euclidean", 0, 100)
    assert [p.name for p in tmp_path.iterdir()] == ["g.npz"]  # no temporary left behind


def test_load_graph_rejects_other_files(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, indices=np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(InputError, match="missing key"):
        load_graph(path)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(InputError, match="cannot read"):
        load_graph(bad)


@pytest.mark.parametrize(
    "X, k, match",
    [
        (np.zeros(10), 2, "2-D"),
        (np.zeros((0, 3)), 2, "empty"),
        (np.array([[0.0, 1.0], [np.nan, 1.0], [2.0, 3.0]]), 1, r"NaN or inf \(rows 1\)"),
        (np.array([[0.0, 1.0], [1.0, np.inf], [2.0, 3.0]]), 1, "NaN or inf"),
        (np.eye(3), 3, "at least k \\+ 1"),
        (np.array([[1.0, 1.0]] * 5), 1, "duplicate rows removed"),
        (np.eye(3), 0, "positive integer"),
        (np.array([["a", "b"]]), 1, "expected numbers"),
    ],
)
def test_bad_input_is_one_line_input_error(X, k, match):
    with pytest.raises(InputError, match=match) as info:
        knn_graph(X, k)
    assert "\n" not in str(info.value)


def test_bad_metric_and_zero_row_for_cosine():
    with pytest.raises(InputError, match="metric"):
        knn_graph(np.eye(4), 1, metric="manhattan")
    X = np.eye(4)
    X[2] = 0.0
    with pytest.raises(InputError, match="row 2 is all zeros"):
        knn_graph(X, 1, metric="cosine")
