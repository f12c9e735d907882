"""Probes of what a layer encodes: a linear probe on the rows and a kNN label probe on the neighbour graph.

Both return a `ProbeResult`; when a probe is undefined (a single class, too few points) the mean is NaN and
`reason` says why, instead of raising, so that a whole profile of layers can still be tabulated.
Unlabelled items (`hidden_geometry.data.labels.is_unlabelled`) are left out of both probes: never scored, never a
training row, never a vote; a missing label is not a class.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .errors import InputError
from .geometry.neighbours import NeighbourGraph, check_k, validate_representation


@dataclass(frozen=True)
class ProbeResult:
    """Accuracy mean and spread. Linear probe: mean and std over the folds. kNN probe: leave-one-out accuracy and
    its binomial standard error, n_folds = number of points. mean is NaN (JSON null) when undefined, with `reason`.
    """

    mean: float
    std: float
    n_folds: int
    reason: str = ""
    n: int = 0
    n_classes: int = 0

    def to_dict(self) -> dict[str, Any]:
        def clean(v: float) -> float | None:
            return None if not math.isfinite(v) else float(v)

        return {
            "mean": clean(self.mean),
            "std": clean(self.std),
            "n_folds": int(self.n_folds),
            "reason": self.reason,
            "n": int(self.n),
            "n_classes": int(self.n_classes),
        }


def _undefined(reason: str, n: int, n_classes: int) -> ProbeResult:
    return ProbeResult(float("nan"), float("nan"), 0, reason, n, n_classes)


def linear_probe(
    X: np.ndarray, y: Sequence[Any] | np.ndarray, folds: int = 5, seed: int = 0, max_iter: int = 1000, C: float = 1.0
) -> ProbeResult:
    """Logistic regression on standardised features, stratified k-fold accuracy (mean, std over folds).

    Classes with a single member cannot be split and are dropped (named in `reason`); with fewer members than
    `folds` in some class, the folds are reduced to that count (at least 2). One class left: NaN with a reason.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = validate_representation(X)
    labels = np.asarray(y)
    if labels.ndim != 1 or labels.shape[0] != X.shape[0]:
        raise InputError(f"labels: {labels.shape[0] if labels.ndim == 1 else labels.shape} values for {X.shape[0]} rows")
    if folds < 2:
        raise InputError(f"folds must be >= 2, got {folds}")
    from .data.labels import unlabelled_mask

    notes = []
    unlabelled = unlabelled_mask(labels)
    if unlabelled.any():
        X, labels = X[~unlabelled], labels[~unlabelled]
        notes.append(f"left out {int(unlabelled.sum())} unlabelled item(s)")
    counts = Counter(labels.tolist())
    singletons = sorted(str(c) for c, m in counts.items() if m < 2)
    if singletons:
        keep = np.array([counts[v] >= 2 for v in labels.tolist()])
        X, labels = X[keep], labels[keep]
        notes.append(f"dropped {len(singletons)} class(es) with one member ({', '.join(singletons[:5])})")
        counts = Counter(labels.tolist())
    if len(counts) < 2:
        return _undefined("; ".join(notes + [f"only {len(counts)} class: accuracy is undefined"]), labels.size, len(counts))
    smallest = min(counts.values())
    n_folds = folds
    if smallest < folds:
        n_folds = smallest
        notes.append(f"folds reduced from {folds} to {n_folds}: the smallest class has {smallest} members")
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    scores = []
    for train, test in splitter.split(X, labels):
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter, C=C))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X[train], labels[train])
        scores.append(float(np.mean(model.predict(X[test]) == labels[test])))
    return ProbeResult(float(np.mean(scores)), float(np.std(scores)), n_folds, "; ".join(notes), labels.size, len(counts))


def knn_votes(neighbour_codes: np.ndarray, n_codes: int) -> np.ndarray:
    """Majority label code of each row of neighbour label codes; ties go to the class of the nearest tied vote.

    A code equal to `n_codes` is no vote (an unlabelled or unused neighbour); a row of no votes gets `n_codes`."""
    neighbour_codes = np.asarray(neighbour_codes)
    if neighbour_codes.size and int(neighbour_codes.max()) >= n_codes:
        votes = _knn_votes(neighbour_codes, n_codes + 1, ignore=n_codes)
        return votes
    return _knn_votes(neighbour_codes, n_codes)


def _knn_votes(neighbour_codes: np.ndarray, n_codes: int, ignore: int | None = None) -> np.ndarray:
    m, k = neighbour_codes.shape
    out = np.empty(m, dtype=np.int64)
    chunk = max(1, (1 << 22) // max(n_codes, 1))  # rows per block of vote counts (about 4 M counters)
    for start in range(0, m, chunk):
        codes = neighbour_codes[start : start + chunk]
        rows = np.arange(codes.shape[0])
        keys = (rows[:, None] * n_codes + codes).ravel()
        counts = np.bincount(keys, minlength=codes.shape[0] * n_codes).reshape(codes.shape[0], n_codes)
        if ignore is not None:
            counts[:, ignore] = 0
        tied = counts == counts.max(axis=1, keepdims=True)
        nearest_tied = np.argmax(tied[rows[:, None], codes], axis=1)  # first (nearest) vote of a tied class
        out[start : start + chunk] = codes[rows, nearest_tied]
    return out


def knn_probe(graph: NeighbourGraph, labels: Sequence[Any] | np.ndarray, k: int | None = None) -> ProbeResult:
    """Leave-one-out kNN classification accuracy from the graph (majority of the first k neighbours' labels).

    labels are indexed by ORIGINAL row number. The error is the binomial standard error sqrt(p (1 - p) / n).
    """
    k = check_k(k, graph.k, "graph")
    arr = np.asarray(labels)
    needed = graph.n_input if graph.n_input > 0 else int(graph.rows.max()) + 1
    if arr.ndim != 1 or arr.shape[0] != needed:
        raise InputError(f"labels: {arr.shape[0] if arr.ndim == 1 else arr.shape} values for {needed} rows")
    from .data.labels import unlabelled_mask

    unlabelled = unlabelled_mask(arr)
    classes, codes = np.unique(arr.astype(str) if arr.dtype == object else arr, return_inverse=True)
    codes = codes.reshape(-1)
    n_codes = classes.size
    codes[unlabelled] = n_codes  # no class: never scored, never a vote
    scored = ~unlabelled[graph.rows]
    own = codes[graph.rows][scored]
    note = f"left out {int((~scored).sum())} unlabelled item(s)" if not scored.all() else ""
    n_classes = int(np.unique(own).size)
    if n_classes < 2:
        reason = f"only {n_classes} class among the graph's labelled points: accuracy is undefined"
        return _undefined("; ".join(filter(None, [note, reason])), own.size, n_classes)
    neighbour_codes = codes[graph.indices[scored]]
    if unlabelled.any():  # the first k LABELLED neighbours vote
        labelled = neighbour_codes != n_codes
        neighbour_codes = np.where(labelled & (np.cumsum(labelled, axis=1) <= k), neighbour_codes, n_codes)
    else:
        neighbour_codes = neighbour_codes[:, :k]
    predicted = knn_votes(neighbour_codes, n_codes)
    p = float(np.mean(predicted == own))
    return ProbeResult(p, math.sqrt(p * (1 - p) / own.size), own.size, note, own.size, n_classes)
