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
from .hardware import bf16_products_are_native, ieee_float32, torch_threads  # shared with the neighbour graph
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


# the torch solver's anchored evaluations (`SoftmaxFolds`): a fold is re-anchored (one float32 evaluation) when its
# largest gradient entry has fallen to this fraction of its value at the fold's last anchor
REANCHOR = 0.1
# the torch solver's line search also accepts a step whose objective rose by at most this fraction if the slope
# there meets the approximate Wolfe conditions (Hager and Zhang 2005, their epsilon)
APPROXIMATE_WOLFE = 1e-6
ANCHOR_BYTES = 2 << 30  # above this much memory for the anchors' logits and residuals, float32 evaluations only
# the torch solver's coordinates: Böhning's bound raised to at least this fraction of its mean eigenvalue. With 0
# (the bound itself) the fits stopped at scikit-learn's rule 0.0054 below its accuracy on layer 2 of the real
# vectors (least converged in the directions of least variance) and took twice the iterations on synthetic rows
BOUND_FLOOR = 0.1
CHUNK_ROWS = 1024  # rows per block of the torch solver's objective (logits of a block stay in the processor's cache)


def _undefined(reason: str, n: int, n_classes: int) -> ProbeResult:
    return ProbeResult(float("nan"), float("nan"), 0, reason, n, n_classes)


def standardise(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both blocks centred and scaled by the TRAINING rows' mean and standard deviation (ddof 0), in float64,
    as scikit-learn's StandardScaler does (a constant feature keeps scale 1)."""
    mean = train.mean(axis=0)
    scale = train.std(axis=0)
    scale[scale < 10 * np.finfo(np.float64).eps] = 1.0
    return (train - mean) / scale, (test - mean) / scale


class SoftmaxFolds:
    """The objective of every fold's multinomial logistic regression, evaluated for any subset of folds at once.

    Z [folds, m, d] float32: each fold's training rows, standardised with its own statistics (zero rows pad the
    shorter folds); codes [folds, m]: their class codes (any code on padding); n_train [folds]. Fold f's objective is
    scikit-learn's LogisticRegression(C=C): mean cross-entropy over its n_train[f] rows + ||W||^2 / (2 C n_train[f]),
    intercept not penalised. Parameters of a fold are one flat vector (W [d, K] row-major, then b [K]).
    Other coordinates (`bound_coordinates`): Z holds A @ transform (A the standardised rows of D features) and W is
    V with W_features = transform @ V; `report` [folds, D, d] maps the gradient of V to the gradient of W_features,
    whose largest entry is then the one reported, and `penalty` [folds, d] weighs the rows of V in the L2 term:
    ||W_features||^2 = sum_i penalty[i] ||V_i||^2 (zero-padded columns need a positive weight, e.g. 1).

    Two precisions (`evaluate`'s `mode`): "float32", and "anchored": the float32 values at the fold's anchor plus
    bfloat16 products of the CHANGES since it, logits = L_a + Z (W - W_a) and gradient = Z'R_a + Z'(w (p - p_a)),
    where L_a, the probabilities p_a and Z'R_a (R = w (p - onehot), w = 1 / n_train) come from a float32 evaluation
    with `anchor=True` at W_a. Its rounding errors scale with the distance from the anchor, not with the logits and
    residuals themselves (bfloat16 products of those stalled at a largest gradient entry of about 1e-4), and at the
    anchor it is the float32 evaluation. The anchors hold two float32 values per row and class of every fold
    (`anchor_bytes`). The softmax passes are fused numba kernels (`_probe_kernels`).
    """

    def __init__(self, Z: Any, codes: Any, n_train: Sequence[int], n_classes: int, C: float = 1.0,
                 report: Any = None, penalty: Any = None, chunk_rows: int = CHUNK_ROWS) -> None:
        import torch

        n_folds, m, d = Z.shape
        self.n_folds, self.d, self.n_classes, self.report = n_folds, d, n_classes, report
        counts = torch.as_tensor(np.asarray(n_train), dtype=torch.float32)
        self.alpha = (1.0 / (C * counts)).reshape(n_folds, 1, 1)
        if penalty is not None:
            self.alpha = self.alpha * torch.as_tensor(penalty, dtype=torch.float32).reshape(n_folds, d, 1)
        rows = torch.arange(m).unsqueeze(0) < counts.unsqueeze(1)
        weights = torch.where(rows, 1.0 / counts.unsqueeze(1), torch.zeros((), dtype=torch.float32)).numpy()
        codes = np.ascontiguousarray(np.asarray(codes), dtype=np.int64)
        # blocks of rows, each block's pass (logits, softmax, gradient) staying in the processor's cache
        spans = [slice(start, start + chunk_rows) for start in range(0, m, chunk_rows)]
        self.Z = [Z[:, span].contiguous() for span in spans]
        self.weights = [np.ascontiguousarray(weights[:, span]) for span in spans]
        self.target = [np.ascontiguousarray(codes[:, span]) for span in spans]
        # the blocks and `report` in bfloat16, made when first asked for
        self.low: tuple[list[Any], Any] | None = None
        # anchors (made by the first evaluation with anchor=True): W_a [folds, d, K], b_a [folds, 1, K], Z'R_a, and
        # per block the logits L_a and probabilities p_a [folds, rows, K]
        self.anchors: dict[str, Any] | None = None
        self.anchor_bytes = 2 * 4 * n_folds * m * n_classes

    @property
    def size(self) -> int:
        return (self.d + 1) * self.n_classes

    def _zero_anchors(self) -> dict[str, Any]:
        """Every fold anchored at zero: W_a = b_a = 0, logits 0, p = 1/K; Z'R_a is the caller's to set."""
        import torch

        n_folds, d, k = self.n_folds, self.d, self.n_classes
        f32 = torch.float32
        return {"W": torch.zeros(n_folds, d, k, dtype=f32), "b": torch.zeros(n_folds, 1, k, dtype=f32),
                "grad": torch.zeros(n_folds, d, k, dtype=f32),
                "logits": [np.zeros(z.shape[:2] + (k,), np.float32) for z in self.Z],
                "p": [np.full(z.shape[:2] + (k,), 1.0 / k, np.float32) for z in self.Z]}

    def at_zero(self, anchor: bool = False) -> tuple[Any, Any, Any]:
        """`evaluate` of every fold in float32 at zero weights and intercepts, where no product is needed: the logits
        are 0, p = 1/K, the objective log K and the gradient Z'w (1/K - onehot), from the weighted sums of the rows
        and of each class's rows. `anchor`: every fold's anchor is then this point."""
        import torch

        k, d, n_folds = self.n_classes, self.d, self.n_folds
        rows_sum, class_sums = torch.zeros(n_folds, d, dtype=torch.float64), torch.zeros(n_folds, d, k,
                                                                                          dtype=torch.float64)
        weight_sum, class_weights = np.zeros(n_folds), np.zeros((n_folds, k))
        for Z, weights, target in zip(self.Z, self.weights, self.target):
            weighted = Z.double() * torch.from_numpy(weights).double().unsqueeze(2)
            rows_sum += weighted.sum(dim=1)
            for f in range(n_folds):
                class_sums[f].index_add_(1, torch.from_numpy(target[f]), weighted[f].T)
                np.add.at(class_weights[f], target[f], weights[f])
            weight_sum += weights.sum(axis=1, dtype=np.float64)
        grad_W = (rows_sum.unsqueeze(2) / k - class_sums).float()
        grad_b = torch.from_numpy(weight_sum[:, None] / k - class_weights).float()
        loss = torch.from_numpy(weight_sum * math.log(k))
        if anchor:
            self.anchors = self._zero_anchors()
            self.anchors["grad"] = grad_W.clone()
        feature_grad = grad_W if self.report is None else torch.bmm(self.report, grad_W)
        largest = torch.maximum(feature_grad.abs().amax(dim=(1, 2)), grad_b.abs().amax(dim=1))
        return loss, torch.cat([grad_W.reshape(n_folds, -1), grad_b], dim=1), largest

    def evaluate(self, params: Any, folds: Sequence[int], mode: str = "float32",
                 anchor: bool = False) -> tuple[Any, Any, Any]:
        """(objective [a] float64, gradient [a, size] float32, largest gradient entry [a]) at params [a, size] of
        the folds `folds` (a of them). `mode`: "float32" or "anchored" (every fold asked for must have an anchor).
        `anchor` (float32 only): these folds' anchors become this evaluation."""
        import torch

        from . import _probe_kernels as kernels

        if mode not in ("float32", "anchored") or (anchor and mode != "float32"):
            raise ValueError(f"evaluate: mode {mode!r} with anchor={anchor}")
        if mode == "anchored" and self.anchors is None:
            raise ValueError("evaluate: anchored mode before any anchor")
        a, d, k = len(folds), self.d, self.n_classes
        fold_ids = np.asarray(folds, dtype=np.int64)
        index = torch.from_numpy(fold_ids)
        every = a == self.n_folds and bool((fold_ids == np.arange(a)).all())

        def pick(t: Any) -> Any:  # the folds' slices (no copy when all folds are asked for)
            return t if every else t[index]

        W = params[:, : d * k].reshape(a, d, k)
        b = params[:, d * k :].reshape(a, 1, k)
        alpha = pick(self.alpha)
        loss = np.zeros(a)
        grad_b = np.zeros((a, k))
        if anchor and self.anchors is None:
            self.anchors = self._zero_anchors()
        anchors = self.anchors
        unused = np.zeros((0, 0, 0), np.float32)
        if mode == "anchored":
            if self.low is None:
                self.low = ([z.to(torch.bfloat16) for z in self.Z],
                            None if self.report is None else self.report.to(torch.bfloat16))
            factor = (W - pick(anchors["W"])).to(torch.bfloat16)
            shift = (b - pick(anchors["b"])).reshape(a, k).contiguous().numpy()
            data_W = pick(anchors["grad"]).clone()
            blocks = self.low[0]
        else:
            data_W = torch.zeros(a, d, k, dtype=torch.float32)
            blocks = self.Z
        for block, (Z, weights, target) in enumerate(zip(blocks, self.weights, self.target)):
            ZT = Z.transpose(1, 2)  # a view: torch's products read it as fast as a transposed copy (measured)
            if mode == "float32":
                logits = torch.empty(a, Z.shape[1], k, dtype=torch.float32)
                _products(Z, W, logits, fold_ids, every, bias=b)
                kernels.float32_block(logits.numpy(), fold_ids, target, weights, loss, grad_b,
                                      anchors["logits"][block] if anchor else unused,
                                      anchors["p"][block] if anchor else unused, anchor)
                _accumulate(data_W, ZT, logits, fold_ids, every)
            else:
                product = torch.empty(a, Z.shape[1], k, dtype=torch.bfloat16)
                _products(Z, factor, product, fold_ids, every)
                delta = torch.empty_like(product)
                kernels.anchored_block(product.view(torch.int16).numpy(), fold_ids, shift, target, weights,
                                       anchors["logits"][block], anchors["p"][block],
                                       delta.view(torch.int16).numpy(), loss, grad_b)
                _accumulate(data_W, ZT, delta, fold_ids, every)
        if anchor:
            anchors["W"][index], anchors["b"][index], anchors["grad"][index] = W, b, data_W
        grad_W = data_W.add_(alpha * W)
        grad_b = torch.from_numpy(grad_b).float()
        loss = torch.from_numpy(loss) + 0.5 * (alpha * W * W).sum(dim=(1, 2)).double()
        grad = torch.cat([grad_W.reshape(a, -1), grad_b], dim=1)
        if self.report is None:
            feature_grad = grad_W
        elif mode == "float32":
            feature_grad = torch.bmm(pick(self.report), grad_W)
        else:  # anchored values are approximate anyway: the features' gradient in bfloat16 (AMX) too
            feature_grad = torch.bmm(pick(self.low[1]), grad_W.to(torch.bfloat16))
        largest = torch.maximum(feature_grad.abs().amax(dim=(1, 2)), grad_b.abs().amax(dim=1))
        return loss, grad, largest


def _products(rows: Any, weights: Any, out: Any, folds: np.ndarray, every: bool, bias: Any = None) -> None:
    """out[i] = rows[folds[i]] @ weights[i] (+ bias[i]), in one batched call when every fold is asked for, else fold
    by fold on views (no copies of the folds' rows)."""
    import torch

    if every:
        if bias is None:
            torch.bmm(rows, weights, out=out)
        else:
            torch.baddbmm(bias, rows, weights, out=out)
        return
    for i, f in enumerate(folds):
        if bias is None:
            torch.mm(rows[f], weights[i], out=out[i])
        else:
            torch.addmm(bias[i], rows[f], weights[i], out=out[i])


def _accumulate(data_W: Any, rows_T: Any, residual: Any, folds: np.ndarray, every: bool) -> None:
    """data_W[i] += rows_T[folds[i]] @ residual[i] (float32 accumulation of float32 or bfloat16 products)."""
    import torch

    if every:
        if residual.dtype == data_W.dtype:
            data_W.baddbmm_(rows_T, residual)
        else:
            data_W += torch.bmm(rows_T, residual)
        return
    for i, f in enumerate(folds):
        if residual.dtype == data_W.dtype:
            data_W[i].addmm_(rows_T[f], residual[i])
        else:
            data_W[i] += torch.mm(rows_T[f], residual[i])


def lbfgs_folds(objective: SoftmaxFolds, n_folds: int, tol: float = 1e-4, max_iter: int = 1000, memory: int = 10,
                anchored: bool = False, max_line_search: int = 50,
                reanchor: float = REANCHOR) -> tuple[Any, np.ndarray]:
    """One L-BFGS per fold, run side by side: the folds' objectives and gradients are computed in one batched call,
    but every fold has its own curvature pairs, step length and stopping rule (as scikit-learn's per-fold fits).

    From zero, each fold stops when its largest gradient entry is <= `tol` (scikit-learn's lbfgs rule and default),
    when its objective stops decreasing (relative decrease <= 64 eps, scipy's ftol there), when the line search
    fails, or after `max_iter` iterations. Steps: two-loop recursion over the last `memory` pairs, initial Hessian
    scale s'y / y'y, the first step of length 1 / ||g|| (as L-BFGS-B), backtracking with quadratic interpolation
    until the Armijo condition holds (c1 = 1e-4; the objective is strictly convex, so s'y > 0) or, for an objective
    within `APPROXIMATE_WOLFE` of the start, Hager and Zhang's approximate Wolfe conditions on the slope at the trial
    point (delta 0.1, sigma 0.9); only an Armijo step counts towards the relative-decrease stall.
    `anchored`: evaluations in `SoftmaxFolds`' anchored mode; a fold is re-anchored (a float32 evaluation at its
    current point) when its largest gradient entry has fallen to `reanchor` times its value at the last anchor, or
    below `tol`, or when it stalls (no decrease, a failed line search); the stopping rule is only applied to float32
    values (at a fresh anchor), and a fold that stalls there goes on in float32, where a second stall ends it.
    Returns (params [folds, size] float32, iterations per fold).
    """
    import torch

    from . import _probe_kernels as kernels

    ftol = 64 * np.finfo(np.float64).eps
    params = torch.zeros(n_folds, objective.size, dtype=torch.float32)  # float32 whatever torch's default dtype
    folds = list(range(n_folds))
    # exact[f]: fold f is evaluated in float32 (all folds without anchors; an anchored fold after it stalls at a
    # fresh anchor, where anchored values can no longer tell a decrease from their rounding); fresh[f]: its current
    # values come from a float32 evaluation
    exact = np.full(n_folds, not anchored)
    fresh = np.ones(n_folds, dtype=bool)

    def evaluate(at: Any, which: list[int]) -> tuple[Any, Any, Any]:  # each fold in its own precision
        loss = torch.empty(len(which), dtype=torch.float64)
        grad = torch.empty(len(which), objective.size, dtype=torch.float32)
        largest = torch.empty(len(which), dtype=torch.float32)
        for precise in (True, False):
            rows = [i for i, f in enumerate(which) if exact[f] == precise]
            if rows:
                out = objective.evaluate(at[rows], [which[i] for i in rows], "float32" if precise else "anchored")
                loss[rows], grad[rows], largest[rows] = out
        return loss, grad, largest

    loss, grad, largest = objective.at_zero(anchor=anchored)
    at_anchor = largest.clone()  # each fold's largest gradient entry at its last anchor
    stalled = np.zeros(n_folds, dtype=bool)
    # curvature pairs: memory + 1 slots per fold (a new pair is written to the free one, and kept only if s'y > 0);
    # slots[f] lists fold f's pairs oldest first
    S = np.empty((n_folds, memory + 1, objective.size), dtype=np.float32)
    Y = np.empty_like(S)
    sy, yy = np.zeros((n_folds, memory + 1)), np.zeros((n_folds, memory + 1))
    slots: list[list[int]] = [[] for _ in folds]
    params_np, grad_np = params.numpy(), grad.numpy()
    iterations = np.zeros(n_folds, dtype=np.int64)
    done = np.zeros(n_folds, dtype=bool)
    while True:
        due = [f for f in folds if not done[f] and not fresh[f] and iterations[f] < max_iter
               and (stalled[f] or exact[f] or float(largest[f]) <= max(tol, reanchor * float(at_anchor[f])))]
        if due:  # re-anchored: float32 values at the current point
            loss[due], grad[due], largest[due] = objective.evaluate(params[due], due, anchor=True)
            at_anchor[due], fresh[due], stalled[due] = largest[due], True, False
        done |= fresh & (largest <= tol).numpy()
        running = [f for f in folds if not done[f] and iterations[f] < max_iter]
        if not running:
            break
        direction = torch.empty(len(running), objective.size, dtype=torch.float32)
        slope = np.empty(len(running))
        step = np.ones(len(running))
        for j, f in enumerate(running):
            slope[j] = kernels.two_loop(grad_np[f], S[f], Y[f], sy[f], yy[f], np.array(slots[f], dtype=np.int64),
                                        direction[j].numpy())
            if not slots[f]:  # the first step: length 1 / ||g|| at most (as L-BFGS-B)
                step[j] = min(1.0, 1.0 / math.sqrt(-slope[j]))
        start, accepted = params[running], [None] * len(running)
        start_loss = loss[running].numpy()
        start_fresh = fresh[running].copy()
        pending = list(range(len(running)))
        for _ in range(max_line_search):
            trial = start[pending] + torch.from_numpy(step[pending, None]).float() * direction[pending]
            new = evaluate(trial, [running[j] for j in pending])
            new_losses = new[0].numpy()
            still = []
            for i, j in enumerate(pending):
                f0, t, new_loss = float(start_loss[j]), float(step[j]), float(new_losses[i])
                if new_loss <= f0 + 1e-4 * t * slope[j]:
                    accepted[j] = (trial[i], new[0][i], new[1][i], new[2][i], True)
                    continue
                # near the optimum the decrease is below the rounding of the objective (float32 logits): Hager and
                # Zhang's approximate Wolfe conditions judge the step by the slope at the trial point instead
                if new_loss <= f0 + APPROXIMATE_WOLFE * abs(f0):
                    new_slope = float(torch.dot(new[1][i], direction[j]))
                    if 0.9 * slope[j] <= new_slope <= -0.8 * slope[j]:
                        accepted[j] = (trial[i], new[0][i], new[1][i], new[2][i], False)
                        continue
                curvature = 2.0 * (new_loss - f0 - t * slope[j])
                guess = -slope[j] * t * t / curvature if curvature > 0 else 0.5 * t
                step[j] = min(max(guess, 0.1 * t), 0.5 * t)
                still.append(j)
            pending = still
            if not pending:
                break
        for j, f in enumerate(running):
            iterations[f] += 1
            if accepted[j] is None:  # the line search failed: no decrease found along the direction
                stall = True
            else:
                new_params, new_loss, new_grad, new_largest, armijo = accepted[j]
                free = next(slot for slot in range(memory + 1) if slot not in slots[f])
                sy[f, free], yy[f, free] = kernels.curvature_pair(new_params.numpy(), params_np[f], new_grad.numpy(),
                                                                  grad_np[f], S[f, free], Y[f, free])
                if sy[f, free] > 1e-10 * yy[f, free]:
                    slots[f] = (slots[f] + [free])[-memory:]
                old_loss, new_loss = float(loss[f]), float(new_loss)
                decrease = (old_loss - new_loss) / max(abs(old_loss), abs(new_loss), 1.0)
                params[f], loss[f], grad[f], largest[f] = new_params, new_loss, new_grad, new_largest
                fresh[f] = exact[f]
                stall = armijo and decrease <= ftol
            # a stall in float32 ends the fold; a stall of anchored steps from a fresh anchor turns the fold to
            # float32 (anchored values can no longer tell a decrease from their rounding); any other stall of
            # anchored steps re-anchors it
            if stall and exact[f]:
                done[f] = True
            elif stall and start_fresh[j]:
                exact[f] = True
            stalled[f] = stall
    return params, iterations


def row_space(A: np.ndarray, rtol: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """The eigenvalues [r] and eigenvectors [D, r] of A'A above rtol times the largest: an orthonormal basis of the
    span of A's rows. W and basis @ basis.T @ W give every row the same logits, and the penalty ||W||^2 is smallest
    with W in that span, so the L2-regularised optimum lies there: fitting on A @ basis is the same problem with r
    instead of D features."""
    import torch

    A = np.asarray(A, dtype=np.float64)  # float32 rows: float32 rounding would make up eigenvalues above rtol
    gram = torch.from_numpy(np.ascontiguousarray(A.T @ A))
    values, vectors = torch.linalg.eigh(gram)
    keep = values > rtol * max(float(values[-1]), 0.0)
    return values[keep].numpy(), vectors[:, keep].numpy()


@dataclass(frozen=True)
class BoundCoordinates:
    """Coordinates V of the weights in which Böhning's bound on the Hessian is the identity (see `bound_coordinates`).

    W = transform @ V [D, r] (the D features' weights); the gradient of the D features' weights is report @ grad_V
    [D, r] (used for scikit-learn's stopping rule); ||W||^2 = sum_i penalty[i] ||V_i||^2."""

    transform: np.ndarray
    report: np.ndarray
    penalty: np.ndarray


def bound_coordinates(A: np.ndarray, C: float = 1.0, rtol: float = 1e-10,
                      floor: float = BOUND_FLOOR) -> BoundCoordinates:
    """Coordinates that precondition the fit of scikit-learn's multinomial logistic regression on the standardised
    (centred) training rows A [n, D]. Böhning's bound: the Hessian of the mean cross-entropy is at most
    (A'A / n) (x) (I_K - 11'/K) / 2, so with the L2 term alpha = 1 / (C n) the Hessian of the objective is at most
    M (x) I_K, M = A'A / (2 n) + alpha I. With A'A = U diag(s) U' (eigenvalues above rtol of the largest, the rows'
    span: `row_space`) and m = s / (2 n) + alpha, W = U diag(m^-1/2) V turns M into the identity on the span: the
    same problem (same logits, same optimum), whose curvature no longer depends on how unevenly the features vary.
    The intercept needs nothing: A's columns are centred, so the bound does not couple it to W.
    `floor`: m is raised to at least floor times the mean of s / (2 n) (a larger M is still a bound), so that
    directions in which the rows hardly vary are not blown up to the scale of the others (see `BOUND_FLOOR`)."""
    n = A.shape[0]
    values, vectors = row_space(A, rtol)
    typical = float(values.mean()) if values.size else 0.0  # no span (constant rows): no coordinates, intercepts only
    m = np.maximum(values / (2.0 * n) + 1.0 / (C * n), floor * typical / (2.0 * n))
    return BoundCoordinates(vectors / np.sqrt(m), vectors * np.sqrt(m), 1.0 / m)


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


# IEEE float32 products throughout, whatever the caller's torch settings: the float32 evaluations (anchors, the
# stopping rule) and the predictions are float32 by design; with set_float32_matmul_precision("medium") torch would run
# them in bfloat16 on this CPU (layer 5 of the benchmark: accuracy 0.8125 instead of 0.8134, with nothing to say so)
# and on one thread: with more, the products sum in another order and each fold's L-BFGS takes another path to another
# point that meets the stopping rule, so the result would depend on the caller's thread count (`torch_threads`)
@ieee_float32("cpu")
@torch_threads(1)
def _fold_scores_torch(X, labels, splits, C, max_iter, tol, bf16):
    import torch

    classes, codes = np.unique(labels, return_inverse=True)
    codes = codes.reshape(-1)
    X = np.asarray(X, dtype=np.float64)  # float32 rows: their Gram matrix in float64, or the rank is lost in rounding
    # fold by fold, so that only one fold's float64 rows are held at a time (every fresh page costs in a new process)
    coordinates, rows = [], []
    for train, test in splits:
        train_rows, test_rows = standardise(X[train], X[test])
        c = bound_coordinates(train_rows, C)
        coordinates.append(c)
        rows.append(((train_rows @ c.transform).astype(np.float32), (test_rows @ c.transform).astype(np.float32)))
        del train_rows, test_rows
    width = max(c.transform.shape[1] for c in coordinates)
    longest = max(train.size for train, _ in splits)
    Z = np.zeros((len(splits), longest, width), dtype=np.float32)
    train_codes = np.zeros((len(splits), longest), dtype=np.int64)
    reports = np.zeros((len(splits), X.shape[1], width), dtype=np.float32)
    penalties = np.ones((len(splits), width), dtype=np.float32)
    tests = []
    for f, ((train, test), (train_rows, test_rows), c) in enumerate(zip(splits, rows, coordinates)):
        # every class is in every training part (stratified, >= n_folds members); coordinates beyond a fold's
        # rank are zero columns, whose weights stay zero
        r = c.transform.shape[1]
        reports[f, :, :r], penalties[f, :r] = c.report, c.penalty
        Z[f, : train.size, :r] = train_rows
        train_codes[f, : train.size] = codes[train]
        test_block = np.zeros((test.size, width), dtype=np.float32)
        test_block[:, :r] = test_rows
        tests.append(test_block)
    del rows
    objective = SoftmaxFolds(torch.from_numpy(Z), torch.from_numpy(train_codes), [t.size for t, _ in splits],
                             classes.size, C=C, report=torch.from_numpy(reports), penalty=torch.from_numpy(penalties))
    del Z  # the objective holds the rows in blocks
    anchored = bf16 and objective.anchor_bytes <= ANCHOR_BYTES
    # subnormal probabilities (below 1.2e-38) count as zero: float32 products with subnormal residuals took three
    # times as long here, and their share of any gradient entry is below 1e-37. The setting is this thread's, and
    # threads started while it holds inherit it: the fit runs on this thread alone (`torch_threads(1)` above), so no
    # torch worker thread starts during it, to flush subnormals in every later torch operation of the process
    torch.set_flush_denormal(True)
    try:
        with torch.no_grad():
            params, _ = lbfgs_folds(objective, len(splits), tol=tol, max_iter=max_iter, anchored=anchored)
    finally:
        torch.set_flush_denormal(False)
    size = width * classes.size
    scores = []
    for f, (_, test) in enumerate(splits):
        W, b = params[f, :size].reshape(width, classes.size), params[f, size:]
        predicted = torch.addmm(b, torch.from_numpy(tests[f]), W).argmax(dim=1).numpy()
        scores.append(float(np.mean(predicted == codes[test])))
    return scores


def linear_probe(
    X: np.ndarray, y: Sequence[Any] | np.ndarray, folds: int = 5, seed: int = 0, max_iter: int = 1000, C: float = 1.0,
    solver: str = "torch", tol: float = 1e-4, bf16: bool | None = None,
) -> ProbeResult:
    """Logistic regression on standardised features, stratified k-fold accuracy (mean, std over folds).

    solver "torch" (default): one L-BFGS per fold, the folds side by side in torch (`lbfgs_folds` on
    `SoftmaxFolds`), each fold's weights in the coordinates where Böhning's bound on its Hessian is the identity, on
    the span of its rows (`bound_coordinates`, `row_space`: the same problem, exactly); solver "sklearn":
    scikit-learn's LogisticRegression per fold (float64), the reference. Both minimise the same objective on the same
    folds (`fold_splits`) and the same standardisation (training statistics, float64), and stop at a largest
    gradient entry of the features' weights below `tol` (scikit-learn's default 1e-4) or after `max_iter`
    iterations; docs/benchmarks.md (linear probe) compares them. `bf16` (torch): the folds are evaluated in
    `SoftmaxFolds`' anchored mode (bfloat16 products of the change since a float32 anchor; the stopping rule on
    float32 values), else in float32 (None: where the CPU multiplies bfloat16 natively, `bf16_products_are_native`,
    and the anchors fit in `ANCHOR_BYTES`). The torch fit runs on one torch thread with IEEE float32 products and its
    own dtypes, whatever the caller's torch settings, so its result does not depend on them.
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
        use_bf16 = bf16_products_are_native() if bf16 is None else bf16
        scores = _fold_scores_torch(X, labels, splits, C, max_iter, tol, use_bf16)
    return ProbeResult(
        float(np.mean(scores)), float(np.std(scores)), n_folds, "; ".join(notes), labels.size, len(counts)
    )


def fold_splits(labels: np.ndarray, n_folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The probe's (train, test) index pairs: stratified folds, shuffled with `seed`. They are the folds of
    scikit-learn's `StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)` (tested on many label
    sets), made here so that a probe process does not import scikit-learn (about 1.1 s of each workflow job).

    Every class must have at least `n_folds` members (`linear_probe` lowers the folds otherwise). The classes are
    numbered by first appearance. Fold f holds as many members of class c as c has among the positions f,
    f + n_folds, f + 2 n_folds, ... of all items sorted by class number. Each class's fold numbers are laid out in
    blocks (fold 0 first), shuffled with one numpy RandomState(seed), class after class, and given to the class's
    members in item order."""
    labels = np.asarray(labels)
    _, first_seen, code = np.unique(labels, return_index=True, return_inverse=True)
    number = np.empty(first_seen.size, dtype=np.int64)
    number[np.argsort(first_seen)] = np.arange(first_seen.size)  # class code -> number by first appearance
    classes = number[code.reshape(-1)]
    by_class = np.sort(classes)
    share = np.array([np.bincount(by_class[f::n_folds], minlength=first_seen.size) for f in range(n_folds)])
    shuffler = np.random.RandomState(seed)
    test_fold = np.empty(labels.size, dtype=np.int64)
    for c in range(first_seen.size):
        folds = np.repeat(np.arange(n_folds), share[:, c])
        shuffler.shuffle(folds)
        test_fold[classes == c] = folds
    items = np.arange(labels.size)
    return [(items[test_fold != f], items[test_fold == f]) for f in range(n_folds)]


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
