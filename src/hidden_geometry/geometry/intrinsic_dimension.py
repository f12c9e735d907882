"""Intrinsic dimension from a neighbour graph: TwoNN (linear fit and maximum likelihood) and Gride.

Both follow DADApy 0.3.4 exactly where DADApy is right, so that the numbers agree to 1e-6 (see
tests/geometry/test_dadapy_reference.py):
- TwoNN "base" (`compute_id_2NN(algorithm="base", mu_fraction=0.9)`): mu = r2 / r1 for every point; keep the
  int(N * fraction) smallest log mu; fit -log(1 - i/N), i = 1..n_eff, against them by least squares through the
  origin (N counts every point, also the discarded ones).
- TwoNN "ml": d = (N - 1) / sum(log mu) over all points.
- Gride (Denti et al. 2022; `return_id_scaling_gride`): for ranks n1 = 2^j, n2 = 2^(j+1), mu = r_n2 / r_n1; mus
  equal to 1 are nudged by 10 float64 eps; mus at or above q50 + 20 (q95 - q50) are discarded as outliers; the
  maximum-likelihood d solves the score equation (with DADApy's N - 1 in the d term); the error is
  1 / sqrt(Fisher information) evaluated, as DADApy does, on all mus of that scale.
One scale per model: `gride` keeps each layer's whole ID-versus-scale curve; `common_gride_rank` picks one rank
pair for all layers of a model from all their curves, so that a model's ID profile is read at one scale
(`gride_at_rank` reads a layer's estimate there).
Where DADApy breaks, we do not: duplicates never reach these functions (the graph removes them), so no mu is
infinite or NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..errors import InputError
from ..io import RECORD_KEY, Record
from .neighbours import NeighbourGraph, knn_graph

_EPS64 = float(np.finfo(np.float64).eps)


def _float_or_none(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


@dataclass(frozen=True)
class IDEstimate(Record):
    """One intrinsic-dimension estimate.

    err: for a single estimate the asymptotic standard error id / sqrt(n) of the maximum-likelihood form; for a
    decimation estimate the standard error of the mean over the subsets.
    n: points used; duplicates: rows removed as exact duplicates before estimating; scale: mean distance to the
    first two neighbours (DADApy's `rs`).
    """

    id: float
    err: float
    n: int
    duplicates: int
    method: str
    fraction: float = 1.0
    scale: float = float("nan")
    n_subsets: int = 1


def _check_fraction(fraction: float) -> float:
    if not (isinstance(fraction, (int, float)) and 0.0 < fraction <= 1.0):
        raise InputError(f"fraction must be in (0, 1], got {fraction!r}")
    return float(fraction)


def _two_nn_mus(distances: np.ndarray) -> np.ndarray:
    if distances.ndim != 2 or distances.shape[1] < 2:
        raise InputError("TwoNN needs a graph with k >= 2 neighbours")
    r1, r2 = distances[:, 0], distances[:, 1]
    if np.any(r1 <= 0):
        raise InputError(f"{int(np.sum(r1 <= 0))} point(s) have a neighbour at distance 0: remove duplicates first")
    return r2 / r1


def twonn_from_mus(mus: np.ndarray, fraction: float = 0.9) -> float:
    """TwoNN linear fit through the origin on the smallest `fraction` of mu (DADApy's algorithm="base")."""
    fraction = _check_fraction(fraction)
    n = mus.shape[0]
    n_eff = int(n * fraction)
    if n_eff < 1:
        raise InputError(f"TwoNN needs at least one point after keeping fraction={fraction} of {n}")
    x = np.sort(np.log(mus))[:n_eff]
    # 1 - i/N for i = n_eff < N is never 0; with fraction = 1 the last term would be log(0): DADApy switches to
    # the maximum-likelihood form there, and so do we.
    if n_eff == n:
        return twonn_mle_from_mus(mus)
    y = -np.log1p(-np.arange(1, n_eff + 1) / n)
    denom = float(np.dot(x, x))
    if denom <= 0:
        raise InputError("TwoNN is undefined: every point has its two nearest neighbours at the same distance")
    return float(np.dot(x, y) / denom)


def twonn_mle_from_mus(mus: np.ndarray) -> float:
    """TwoNN maximum likelihood d = (N - 1) / sum(log mu) (DADApy's algorithm="ml")."""
    total = float(np.sum(np.log(mus)))
    if total <= 0:
        raise InputError("TwoNN is undefined: every point has its two nearest neighbours at the same distance")
    return (mus.shape[0] - 1) / total


def twonn(graph: NeighbourGraph, fraction: float = 0.9) -> IDEstimate:
    """TwoNN intrinsic dimension from the graph's first two neighbours (linear fit, DADApy "base")."""
    mus = _two_nn_mus(graph.distances)
    d = twonn_from_mus(mus, fraction)
    n = mus.shape[0]
    return IDEstimate(
        id=d,
        err=d / math.sqrt(n),
        n=n,
        duplicates=graph.n_duplicates,
        method="twonn" if fraction < 1 else "twonn-ml",
        fraction=fraction,
        scale=float(np.mean(graph.distances[:, :2])),
    )


def twonn_mle(graph: NeighbourGraph) -> IDEstimate:
    """TwoNN maximum-likelihood intrinsic dimension (all points), error id / sqrt(n)."""
    mus = _two_nn_mus(graph.distances)
    d = twonn_mle_from_mus(mus)
    n = mus.shape[0]
    return IDEstimate(
        id=d,
        err=d / math.sqrt(n),
        n=n,
        duplicates=graph.n_duplicates,
        method="twonn-ml",
        fraction=1.0,
        scale=float(np.mean(graph.distances[:, :2])),
    )


# ---------------------------------------------------------------------------------------------------------------
# Decimation: TwoNN on random subsets, and the ID-versus-N scaling of the paper.


def _subset_two_nn(
    graph: NeighbourGraph, X: np.ndarray | None, subset: np.ndarray, metric: str
) -> np.ndarray:
    """First two neighbour distances of each point of `subset` (original row numbers) within the subset.

    Read from the full graph where a point's list holds two subset members (exact: the list is the exact top-k);
    otherwise recomputed from the rows (needs X).
    """
    in_subset = np.zeros(max(graph.n_input, int(graph.rows.max()) + 1), dtype=bool)
    in_subset[subset] = True
    position = np.full(in_subset.shape[0], -1, dtype=np.int64)
    position[graph.rows] = np.arange(graph.n_points)
    where = position[subset]
    member = in_subset[graph.indices[where]]  # [s, k]
    found = member.sum(axis=1) >= 2
    dist = np.empty((subset.size, 2), dtype=np.float64)
    first = np.argmax(member, axis=1)
    masked = member.copy()
    masked[np.arange(subset.size), first] = False
    second = np.argmax(masked, axis=1)
    dist[:, 0] = graph.distances[where, first]
    dist[:, 1] = graph.distances[where, second]
    missing = np.flatnonzero(~found)
    if missing.size:
        if X is None:
            raise InputError(
                f"decimation: {missing.size} point(s) have fewer than 2 subset members among their {graph.k} "
                "neighbours; pass the rows X (or a graph with larger k)"
            )
        sub_graph = knn_graph(X[subset], 2, metric=metric)
        dist[missing] = sub_graph.distances[np.searchsorted(sub_graph.rows, missing)]
    return dist


@dataclass(frozen=True)
class ScalingPoint(Record):
    """TwoNN at one subset size: mean over the subsets, standard error of that mean, mean r1, r2 distance."""

    n: int
    id: float
    err: float
    scale: float
    n_subsets: int


@dataclass(frozen=True)
class IDScaling(Record):
    """ID versus the number of points (N, N/2, N/4, ...): the paper's check that the ID is measured at a scale
    where it is stable."""

    points: list[ScalingPoint] = field(default_factory=list)
    duplicates: int = 0
    fraction: float = 0.9


def _decimated(
    graph: NeighbourGraph, X: np.ndarray | None, n_subset: int, n_iter: int, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    ids = np.empty(n_iter)
    scales = np.empty(n_iter)
    for it in range(n_iter):
        subset = np.sort(rng.choice(graph.rows, size=n_subset, replace=False))
        dist = _subset_two_nn(graph, X, subset, graph.metric)
        ids[it] = twonn_from_mus(_two_nn_mus(dist), fraction)
        scales[it] = float(np.mean(dist))
    return ids, scales


def twonn_decimation(
    graph: NeighbourGraph,
    X: np.ndarray | None = None,
    data_fraction: float = 0.5,
    n_iter: int | None = None,
    fraction: float = 0.9,
    seed: int = 0,
) -> IDEstimate:
    """TwoNN on `n_iter` random subsets of round(N * data_fraction) points (default n_iter = round(1/data_fraction)).

    The mean is the estimate, the error is the standard error of the mean over the subsets (DADApy's
    `compute_id_2NN(data_fraction=...)`). Neighbours within a subset are read from the graph when its lists are
    long enough, else recomputed from the rows `X` (the same array the graph was built from).
    """
    data_fraction = _check_fraction(data_fraction)
    n = graph.n_points
    n_subset = int(np.rint(n * data_fraction))
    if n_subset < 3:
        raise InputError(f"decimation: a subset of {n_subset} points is too small for TwoNN")
    n_iter = int(np.rint(1.0 / data_fraction)) if n_iter is None else int(n_iter)
    if n_iter < 1:
        raise InputError(f"n_iter must be >= 1, got {n_iter}")
    ids, scales = _decimated(graph, X, n_subset, n_iter, fraction, np.random.default_rng(seed))
    mean = float(np.mean(ids))
    err = float(np.std(ids) / math.sqrt(n_iter)) if n_iter > 1 else mean / math.sqrt(n_subset)
    return IDEstimate(
        id=mean,
        err=err,
        n=n_subset,
        duplicates=graph.n_duplicates,
        method="twonn-decimation",
        fraction=fraction,
        scale=float(np.mean(scales)),
        n_subsets=n_iter,
    )


def twonn_scaling(
    graph: NeighbourGraph,
    X: np.ndarray | None = None,
    n_min: int = 10,
    fraction: float = 0.9,
    seed: int = 0,
    max_subsets: int | None = 64,
) -> IDScaling:
    """TwoNN at N, N/2, N/4, ... points (sizes round(N / 2^i) above n_min, DADApy's `return_id_scaling_2NN`).

    At size N/m the estimate is the mean over m random subsets (at most `max_subsets`), the error the standard
    error of that mean; at full size the error is the asymptotic id / sqrt(N).
    """
    n = graph.n_points
    rng = np.random.default_rng(seed)
    max_ndec = int(math.log(n, 2)) - 1
    sizes = [int(round(n / 2**i)) for i in range(max(max_ndec, 1))]
    sizes = [s for s in sizes if s > n_min and s >= 3]
    points = []
    for size in sizes:
        n_iter = int(np.rint(n / size))
        if max_subsets is not None:
            n_iter = min(n_iter, int(max_subsets))
        if size == n:
            est = twonn(graph, fraction)
            points.append(ScalingPoint(n, est.id, est.err, est.scale, 1))
            continue
        ids, scales = _decimated(graph, X, size, n_iter, fraction, rng)
        err = float(np.std(ids) / math.sqrt(n_iter)) if n_iter > 1 else float(np.mean(ids)) / math.sqrt(size)
        points.append(ScalingPoint(size, float(np.mean(ids)), err, float(np.mean(scales)), n_iter))
    return IDScaling(points=points, duplicates=graph.n_duplicates, fraction=fraction)


# ---------------------------------------------------------------------------------------------------------------
# Gride


@dataclass(frozen=True)
class GrideScale(Record):
    """Gride at one pair of neighbour ranks: scale = mean distance to the n2-th neighbour."""

    n1: int
    n2: int
    scale: float
    id: float
    err: float
    n: int = 0


@dataclass(frozen=True)
class GrideResult:
    """The Gride ID-versus-scale curve and the scale chosen where it is flattest."""

    scales: list[GrideScale]
    chosen: int
    n: int
    duplicates: int
    rule: str

    @property
    def id(self) -> float:
        return self.scales[self.chosen].id

    @property
    def err(self) -> float:
        return self.scales[self.chosen].err

    def to_dict(self) -> dict[str, Any]:
        """Not the record of the fields (`io.as_record`): the chosen scale's id and err at the top, as every ID
        estimate has them, the chosen scale itself and its index."""
        chosen = self.scales[self.chosen]
        return {
            "id": float(chosen.id),
            "err": _float_or_none(chosen.err),
            "n": int(self.n),
            "duplicates": int(self.duplicates),
            "method": "gride",
            "scales": [s.to_dict() for s in self.scales],
            "chosen_scale": chosen.to_dict(),
            "chosen_index": int(self.chosen),
            "rule": self.rule,
        }


def gride_filter_mus(mus: np.ndarray) -> np.ndarray:
    """DADApy's outlier filter: nudge mu == 1 by 10 eps, drop mu >= q50 + 20 (q95 - q50) (returns a copy)."""
    mus = np.array(mus, dtype=np.float64)
    mus[mus == 1] += 10 * _EPS64
    q95, q50 = np.percentile(mus, [95, 50])
    return mus[mus < 20 * (q95 - q50) + q50]


def _gride_score(d: float, mus: np.ndarray, n1: int, n2: int, reg: float = 1e-7) -> float:
    """Minus the derivative of the Gride log-likelihood in d (DADApy's `_neg_dloglik_did`, same regularisation)."""
    one_m = 1.0 - mus ** (-d)
    one_m = np.where(one_m < 2 * reg, 2 * reg, one_m)
    return float(np.sum(((1 - n2 + n1) / one_m + n2 - 1.0) * np.log(mus)) - (mus.shape[0] - 1) / d)


def gride_loglik(d: float, mus: np.ndarray, n1: int, n2: int) -> float:
    """Gride log-likelihood of d for ratios mu = r_n2 / r_n1 (DADApy's N - 1 convention in the d term)."""
    from scipy.special import betaln  # scipy only where an ID is computed: `hidden-geometry knn` never loads it

    n = mus.shape[0]
    return float(
        (n - 1) * np.log(d)
        + np.sum((n2 - n1 - 1) * np.log(mus**d - 1.0))
        - n * betaln(n2 - n1, n1)
        - np.sum(((n2 - 1) * d + 1) * np.log(mus))
    )


def gride_mle(mus: np.ndarray, n1: int, n2: int, d_min: float = 1e-3, d_max: float = 1e3) -> tuple[float, float]:
    """Maximum-likelihood Gride ID and its 1/sqrt(Fisher information) error for one pair of ranks."""
    all_mus = np.array(mus, dtype=np.float64)
    all_mus[all_mus == 1] += 10 * _EPS64
    kept = gride_filter_mus(all_mus)
    lo, hi = _gride_score(d_min, kept, n1, n2), _gride_score(d_max, kept, n1, n2)
    if lo * hi > 0:
        # No sign change inside the bracket: the likelihood is monotone there; report the nearer bound, as
        # DADApy's bisection would.
        d = d_max if abs(hi) < abs(lo) else d_min
    else:
        from scipy.optimize import brentq

        d = brentq(_gride_score, d_min, d_max, args=(kept, n1, n2), xtol=1e-13, rtol=1e-14, maxiter=500)
    return float(d), float(1.0 / math.sqrt(gride_fisher_information(d, all_mus, n1, n2)))


def gride_fisher_information(d: float, mus: np.ndarray, n1: int, n2: int) -> float:
    """Fisher information of the Gride likelihood at d (DADApy's `_fisher_info_scaling`, same regularisation)."""
    reg = 5 * _EPS64
    one_m = 1.0 - mus ** (-d)
    one_m = np.where(one_m < reg, reg, one_m)
    log_mu = np.log(mus)
    return float(mus.shape[0] / d**2 + np.sum((n2 - n1 - 1) * (log_mu / one_m) ** 2 * mus ** (-d)))


def scale_changes(ids: Sequence[float]) -> np.ndarray:
    """Relative ID change of each scale to its neighbouring scales: mean |id_j - id_i| / |id_j| over i = j -+ 1.

    End points have one neighbour and count double, so that they win only when clearly flatter.
    """
    values = np.asarray(ids, dtype=np.float64)
    change = np.empty(values.size)
    for j in range(values.size):
        sides = [abs(values[j] - values[i]) for i in (j - 1, j + 1) if 0 <= i < values.size]
        change[j] = np.mean(sides) / abs(values[j]) if sides else 0.0
    if values.size > 2:
        change[0] *= 2.0
        change[-1] *= 2.0
    return change


def _flattest(change: np.ndarray) -> int:
    """Smallest change first; on ties an interior scale, then the smaller scale."""
    is_end = np.zeros(change.size, dtype=bool)
    is_end[[0, -1]] = True
    return int(np.lexsort((np.arange(change.size), is_end, change))[0])


def flattest_scale(ids: list[float]) -> int:
    """Index of the scale where the ID curve is flattest: smallest mean relative change to its neighbours.

    Ties go to an interior scale, then to the smaller one. With one or two scales the first is returned.
    """
    values = np.asarray(ids, dtype=np.float64)
    if values.size <= 2:
        return 0
    return _flattest(scale_changes(values))


COMMON_RANK_RULE = (
    "one rank pair (n1, n2) for every layer of the model: among the pairs that every layer's curve has, the one "
    "where the curves are jointly flattest, i.e. with the smallest median over layers of the relative ID change "
    "to the neighbouring pairs (end points counted double); ties to an interior pair, then the smaller n2"
)


@dataclass(frozen=True)
class CommonGrideRank(Record):
    """The rank pair chosen for all layers of a model, with each candidate's median relative change (the score)."""

    n1: int
    n2: int
    candidates: list[int] = field(metadata={RECORD_KEY: "candidates_n2"})
    scores: list[float]
    rule: str = COMMON_RANK_RULE


def _curve_scales(curve: Any) -> list[dict[str, Any]]:
    """A layer's Gride curve as a list of {'n1', 'n2', 'id', ...} (from a GrideResult, its dict, or its scales)."""
    if isinstance(curve, GrideResult):
        return [s.to_dict() for s in curve.scales]
    if isinstance(curve, dict):
        curve = curve["scales"]
    return [s.to_dict() if isinstance(s, GrideScale) else dict(s) for s in curve]


def common_gride_rank(curves: Sequence[Any]) -> CommonGrideRank:
    """One Gride rank pair for all layers of a model, chosen from all layers' ID-versus-scale curves (the rule in
    `COMMON_RANK_RULE`). Each curve is a `GrideResult`, its `to_dict()`, or its list of scales.

    Only the pairs present in every curve are candidates (a layer whose graph has a smaller k has fewer); with
    none in common, or no curve, an InputError. The median over layers keeps one odd layer from moving the choice.
    """
    scales = [_curve_scales(curve) for curve in curves]
    if not scales:
        raise InputError("Gride: no layer curve to choose a common scale from")
    common = sorted(set.intersection(*({int(s["n2"]) for s in layer} for layer in scales)))
    if not common:
        raise InputError("Gride: the layers have no neighbour rank in common (graphs with k < 2?)")
    changes = []
    for layer in scales:
        ids = {int(s["n2"]): float(s["id"]) for s in layer}
        changes.append(scale_changes([ids[n2] for n2 in common]) if len(common) > 2 else np.zeros(len(common)))
    score = np.median(np.vstack(changes), axis=0)
    chosen = common[_flattest(score)] if len(common) > 2 else common[0]
    return CommonGrideRank(n1=chosen // 2, n2=chosen, candidates=common, scores=[float(v) for v in score])


def gride_at_rank(curve: Any, n2: int) -> dict[str, Any]:
    """The scale of one layer's Gride curve with rank n2 (a dict: n1, n2, scale, id, err, n)."""
    for scale in _curve_scales(curve):
        if int(scale["n2"]) == int(n2):
            return scale
    raise InputError(f"Gride: this layer's curve has no rank n2 = {n2}")


def gride(graph: NeighbourGraph, max_rank: int | None = None) -> GrideResult:
    """Gride ID for ranks (n1, n2) = (2^j, 2^(j+1)) with n2 <= min(k, max_rank), and the flattest scale."""
    limit = graph.k if max_rank is None else min(int(max_rank), graph.k)
    if limit < 2:
        raise InputError(f"Gride needs k >= 2 neighbours (max_rank={max_rank}, graph k={graph.k})")
    scales = []
    n1 = 1
    while 2 * n1 <= limit:
        n2 = 2 * n1
        r1 = graph.distances[:, n1 - 1]
        r2 = graph.distances[:, n2 - 1]
        if np.any(r1 <= 0):
            raise InputError("Gride: a neighbour at distance 0: remove duplicates first")
        d, err = gride_mle(r2 / r1, n1, n2)
        scales.append(GrideScale(n1=n1, n2=n2, scale=float(np.mean(r2)), id=d, err=err, n=graph.n_points))
        n1 = n2
    chosen = flattest_scale([s.id for s in scales])  # this layer alone; a model's layers share common_gride_rank
    return GrideResult(
        scales=scales,
        chosen=chosen,
        n=graph.n_points,
        duplicates=graph.n_duplicates,
        rule="flattest: smallest mean relative ID change to the neighbouring scales (end points counted double)",
    )

