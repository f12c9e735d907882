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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InputError
from .geometry.neighbours import NeighbourGraph, check_k, validate_representation
from .io import Record


@dataclass(frozen=True)
class ProbeResult(Record):
    """Accuracy mean and spread. Linear probe: mean and std over the folds. kNN probe: leave-one-out accuracy and
    its binomial standard error, n_folds = number of points. mean is NaN (JSON null) when undefined, with `reason`.
    """

    mean: float
    std: float
    n_folds: int
    reason: str = ""
    n: int = 0
    n_classes: int = 0


def _undefined(reason: str, n: int, n_classes: int) -> ProbeResult:
    return ProbeResult(float("nan"), float("nan"), 0, reason, n, n_classes)


def standardise(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both blocks centred and scaled by the TRAINING rows' mean and standard deviation (ddof 0), in float64,
    as scikit-learn's StandardScaler does (a constant feature keeps scale 1)."""
    mean = train.mean(axis=0)
    scale = train.std(axis=0)
    scale[scale < 10 * np.finfo(np.float64).eps] = 1.0
    return (train - mean) / scale, (test - mean) / scale


def fit_softmax_folds(Z: Any, codes: Any, weights: Any, n_classes: int, C: float = 1.0, tol: float = 1e-4,
                      max_iter: int = 1000) -> tuple[Any, Any, int]:
    """Multinomial logistic regressions of all folds at once: scipy's L-BFGS-B on a float32 torch objective.

    Z [folds, m, d]: each fold's training rows, standardised with its own statistics (padded to the longest fold);
    codes [folds, m]: their class codes; weights [folds, m]: 1 / n_train on a fold's rows, 0 on padding. Each fold
    minimises the objective of scikit-learn's LogisticRegression(C=C): mean cross-entropy over its training rows +
    ||W||^2 / (2 C n_train), intercept not penalised. The folds' objectives are summed (they share no parameter, so
    the sum's minimum is each fold's minimum), which turns the folds' matrix products into one batched product; the
    gradient is written out (softmax minus one-hot). Objective and gradient are float32; the steps are scipy's
    L-BFGS-B in float64 with scikit-learn's lbfgs options: it stops when the largest gradient entry is below `tol`
    (scikit-learn's rule and default), when the objective stops decreasing (ftol 64 eps), or after `max_iter`.
    Returns (W [folds, d, n_classes], b [folds, 1, n_classes], iterations) as torch tensors.
    """
    import torch
    from scipy.optimize import minimize

    n_folds, _, d = Z.shape
    n_train = (weights > 0).sum(dim=1).to(torch.float32)
    alpha = (1.0 / (C * n_train)).reshape(n_folds, 1, 1)
    target = codes.unsqueeze(2)
    row_weights = weights.unsqueeze(2)
    ones = torch.ones_like(target, dtype=torch.float32)
    size = n_folds * d * n_classes

    def loss_gradient(theta: np.ndarray) -> tuple[float, np.ndarray]:
        params = torch.from_numpy(theta.astype(np.float32))
        W, b = params[:size].reshape(n_folds, d, n_classes), params[size:].reshape(n_folds, 1, n_classes)
        logits = torch.baddbmm(b, Z, W)
        lse = torch.logsumexp(logits, dim=2, keepdim=True)
        nll = lse.squeeze(2) - logits.gather(2, target).squeeze(2)
        loss = (weights * nll).sum() + 0.5 * (alpha * W * W).sum()
        residual = logits.sub_(lse).exp_().scatter_add_(2, target, -ones).mul_(row_weights)  # softmax - one-hot
        grad_W = torch.baddbmm(alpha * W, Z.transpose(1, 2), residual)
        grad_b = residual.sum(dim=1)
        return float(loss), torch.cat([grad_W.reshape(-1), grad_b.reshape(-1)]).numpy().astype(np.float64)

    theta0 = np.zeros(size + n_folds * n_classes)
    with torch.no_grad():  # the same call as scikit-learn's lbfgs solver (scipy L-BFGS-B, its options)
        result = minimize(loss_gradient, theta0, method="L-BFGS-B", jac=True,
                          options={"maxiter": max_iter, "maxls": 50, "gtol": tol, "ftol": 64 * np.finfo(float).eps})
    params = torch.from_numpy(result.x.astype(np.float32))
    W, b = params[:size].reshape(n_folds, d, n_classes), params[size:].reshape(n_folds, 1, n_classes)
    return W, b, int(result.nit)


def _fold_scores_sklearn(X, labels, splits, C, max_iter, tol):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    scores = []
    for train, test in splits:
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter, C=C, tol=tol))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X[train], labels[train])
        scores.append(float(np.mean(model.predict(X[test]) == labels[test])))
    return scores


def _fold_scores_torch(X, labels, splits, C, max_iter, tol):
    import torch

    classes, codes = np.unique(labels, return_inverse=True)
    codes = codes.reshape(-1)
    longest = max(train.size for train, _ in splits)
    Z = np.zeros((len(splits), longest, X.shape[1]), dtype=np.float32)
    train_codes = np.zeros((len(splits), longest), dtype=np.int64)
    weights = np.zeros((len(splits), longest), dtype=np.float32)
    tests = []
    for f, (train, test) in enumerate(splits):  # every class is in every training part (stratified, >= n_folds)
        Z[f, : train.size], X_test = standardise(X[train], X[test])
        train_codes[f, : train.size] = codes[train]
        weights[f, : train.size] = 1.0 / train.size
        tests.append(X_test.astype(np.float32))
    W, b, _ = fit_softmax_folds(torch.from_numpy(Z), torch.from_numpy(train_codes), torch.from_numpy(weights),
                                classes.size, C=C, tol=tol, max_iter=max_iter)
    scores = []
    for f, (_, test) in enumerate(splits):
        predicted = torch.addmm(b[f], torch.from_numpy(tests[f]), W[f]).argmax(dim=1).numpy()
        scores.append(float(np.mean(predicted == codes[test])))
    return scores


def linear_probe(
    X: np.ndarray, y: Sequence[Any] | np.ndarray, folds: int = 5, seed: int = 0, max_iter: int = 1000, C: float = 1.0,
    solver: str = "torch", tol: float = 1e-4,
) -> ProbeResult:
    """Logistic regression on standardised features, stratified k-fold accuracy (mean, std over folds).

    solver "torch" (default): all folds in one fit (`fit_softmax_folds`: scipy's L-BFGS-B, as scikit-learn's lbfgs,
    on a float32 torch objective); solver "sklearn": scikit-learn's LogisticRegression per fold (float64), the
    reference. Both minimise the same objective on the same folds (`fold_splits`) and the same standardisation
    (training statistics), and stop at a largest gradient entry below `tol` (scikit-learn's default 1e-4) or after
    `max_iter` iterations; docs/benchmarks.md (linear probe) compares them.
    Classes with a single member cannot be split and are dropped (named in `reason`); with fewer members than
    `folds` in some class, the folds are reduced to that count (at least 2). One class left: NaN with a reason.
    """
    X = validate_representation(X)
    labels = np.asarray(y)
    if labels.ndim != 1 or labels.shape[0] != X.shape[0]:
        shape = labels.shape[0] if labels.ndim == 1 else labels.shape
        raise InputError(f"labels: {shape} values for {X.shape[0]} rows")
    if folds < 2:
        raise InputError(f"folds must be >= 2, got {folds}")
    if solver not in ("torch", "sklearn"):
        raise InputError(f"linear probe solver must be 'torch' or 'sklearn', got {solver!r}")
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
        return _undefined(
            "; ".join(notes + [f"only {len(counts)} class: accuracy is undefined"]), labels.size, len(counts)
        )
    smallest = min(counts.values())
    n_folds = folds
    if smallest < folds:
        n_folds = smallest
        notes.append(f"folds reduced from {folds} to {n_folds}: the smallest class has {smallest} members")
    splits = list(fold_splits(labels, n_folds, seed))
    if solver == "sklearn":
        scores = _fold_scores_sklearn(X, labels, splits, C, max_iter, tol)
    else:
        scores = _fold_scores_torch(X, labels, splits, C, max_iter, tol)
    return ProbeResult(
        float(np.mean(scores)), float(np.std(scores)), n_folds, "; ".join(notes), labels.size, len(counts)
    )


def fold_splits(labels: np.ndarray, n_folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The probe's (train, test) index pairs: scikit-learn's StratifiedKFold, shuffled with `seed`."""
    from sklearn.model_selection import StratifiedKFold

    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros((labels.size, 1)), labels))


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
