"""Fused softmax passes of the linear probe's objective (`probes.SoftmaxFolds`) and its L-BFGS two-loop recursion
(`probes.lbfgs_folds`), compiled by numba.

One pass per row of logits does what took torch about ten passes over a block (shift, maximum, exponential, sum,
loss, residual, intercept gradient, rounding to bfloat16), and the exponential is computed here: torch's vectorised
exp takes a slow path, about 60 times slower, for arguments below float32's underflow threshold, which a trained
probe's logits give for most entries. Exponentials of arguments below -64 (relative to the row's largest logit) are
taken at -64: each such probability is then off by less than e^-64 = 1.6e-28, and the products with the row
weights (1 / n_train) stay above float32's subnormal range (subnormal operands made the kernels four times slower).
"""

from __future__ import annotations

import numpy as np
from numba import njit

LOG2E = np.float32(1.4426950408889634)
LN2_HI = np.float32(0.693145751953125)  # ln 2 in two parts: n * LN2_HI is exact for |n| < 2^9
LN2_LO = np.float32(1.4286068203094173e-06)
LOWEST = np.float32(-64.0)
# sums may be reordered (vectorised) and multiply-adds fused; no flag that assumes finite values, so that an
# overflowing trial step still gives a non-finite objective, which the line search rejects
FAST = {"reassoc", "contract", "arcp", "nsz"}
INV = (np.float32(1 / 2), np.float32(1 / 6), np.float32(1 / 24), np.float32(1 / 120), np.float32(1 / 720),
       np.float32(1 / 5040))


@njit(cache=True, nogil=True, fastmath=FAST)
def _exp_shifted(x, top, out, power, scale):
    """out[j] = exp(max(x[j] - top, -64)) in float32 (range reduction to |r| <= ln2 / 2, then a degree-7 Taylor
    polynomial: within 3e-7 of float64's exp, measured); returns the sum of out in float64; a NaN argument makes the
    sum NaN (the row's maximum skips it, the floor does not hide it). `power` int32 [k] and `scale`, its
    float32 view, are scratch rows (2^n is built from its bits)."""
    for j in range(x.shape[0]):
        t = max(x[j] - top, LOWEST)
        n = np.floor(t * LOG2E + np.float32(0.5))
        r = (t - n * LN2_HI) - n * LN2_LO
        p = INV[4] + r * INV[5]
        p = INV[3] + r * p
        p = INV[2] + r * p
        p = INV[1] + r * p
        p = INV[0] + r * p
        p = np.float32(1.0) + r * p
        out[j] = np.float32(1.0) + r * p
        power[j] = (np.int32(n) + 127) << 23
    total = 0.0
    for j in range(x.shape[0]):
        out[j] *= scale[j]
        total += out[j]
    return total


@njit(cache=True, nogil=True, fastmath=FAST, inline="always")
def _row_max(x, lanes):
    """The largest entry of x (16 running maxima, then their maximum: a loop that vectorises)."""
    k = x.shape[0]
    lanes[:] = x[0]
    for start in range(0, k - 15, 16):
        for j in range(16):
            v = x[start + j]
            lanes[j] = v if v > lanes[j] else lanes[j]
    top = lanes[0]
    for j in range(1, 16):
        top = lanes[j] if lanes[j] > top else top
    for j in range(k - k % 16, k):
        top = x[j] if x[j] > top else top
    return top


@njit(cache=True, nogil=True, fastmath=FAST)
def float32_block(logits, folds, target, weights, loss, grad_b, anchor_logits, anchor_p, anchor):
    """Float32 logits [a, rows, k] of the folds `folds` (a of them) -> the weighted residuals w (p - onehot), in
    place; loss[i] += sum over rows of w (logsumexp - logit of the target) (float64), grad_b[i] += the residuals'
    sum over rows. target [F, rows] and weights [F, rows] (0 on padding rows) are indexed by fold number.
    `anchor`: also anchor_logits[f] = the logits and anchor_p[f] = the probabilities p."""
    a, rows, k = logits.shape
    e = np.empty(k, np.float32)
    power = np.empty(k, np.int32)
    scale = power.view(np.float32)
    lanes = np.empty(16, np.float32)
    column = np.empty(k, np.float32)  # the block's sum of w p over rows, in float32 (then added in float64)
    for i in range(a):
        f = folds[i]
        column[:] = 0.0
        for row in range(rows):
            x = logits[i, row]
            w = weights[f, row]
            if anchor:
                anchor_logits[f, row, :] = x
            top = _row_max(x, lanes)
            total = _exp_shifted(x, top, e, power, scale)
            c = target[f, row]
            loss[i] += w * (top + np.log(total) - x[c])
            scaled = np.float32(w / total)
            if anchor:
                inverse = np.float32(1.0 / total)
                for j in range(k):
                    anchor_p[f, row, j] = e[j] * inverse
            for j in range(k):
                x[j] = e[j] * scaled
                column[j] += x[j]
            x[c] -= w
            grad_b[i, c] -= w
        for j in range(k):
            grad_b[i, j] += column[j]


@njit(cache=True, nogil=True, fastmath=FAST)
def anchored_block(product, folds, shift, target, weights, anchor_logits, anchor_p, delta, loss, grad_b):
    """Anchored logits anchor_logits[f] + product [a, rows, k] (bfloat16, as int16 bits) + shift [a, k] -> delta
    [a, rows, k] = w (p - anchor_p[f]) rounded to bfloat16 (int16 bits, nearest even); loss and grad_b as in
    `float32_block`."""
    a, rows, k = product.shape
    x = np.empty(k, np.float32)
    e = np.empty(k, np.float32)
    power = np.empty(k, np.int32)
    scale = power.view(np.float32)
    lanes = np.empty(16, np.float32)
    widened = np.empty(k, np.int32)
    wide = widened.view(np.float32)
    change = np.empty(k, np.float32)
    change_bits = change.view(np.uint32)
    column = np.empty(k, np.float32)
    for i in range(a):
        f = folds[i]
        column[:] = 0.0
        for row in range(rows):
            w = weights[f, row]
            if w == 0.0:  # padding: no loss, no gradient
                delta[i, row, :] = 0
                continue
            for j in range(k):
                widened[j] = (np.int32(product[i, row, j]) & 0xFFFF) << 16
            for j in range(k):
                x[j] = anchor_logits[f, row, j] + wide[j] + shift[i, j]
            top = _row_max(x, lanes)
            total = _exp_shifted(x, top, e, power, scale)
            c = target[f, row]
            loss[i] += w * (top + np.log(total) - x[c])
            scaled = np.float32(w / total)
            for j in range(k):
                q = e[j] * scaled
                column[j] += q
                change[j] = q - w * anchor_p[f, row, j]
            grad_b[i, c] -= w
            for j in range(k):
                u = change_bits[j]
                widened[j] = np.int32((u + np.uint32(0x7FFF) + ((u >> 16) & np.uint32(1))) >> 16)
            for j in range(k):
                delta[i, row, j] = np.int16(widened[j])
        for j in range(k):
            grad_b[i, j] += column[j]


@njit(cache=True, nogil=True, fastmath=FAST)
def two_loop(grad, S, Y, sy, yy, slots, out):
    """The L-BFGS direction out = -H grad (float32 [P]) from the curvature pairs S[i], Y[i] (float32 [slots, P]) with
    sy[i] = s'y and yy[i] = y'y, for i in `slots` (oldest first); the initial matrix is (s'y / y'y) I of the newest
    pair (I without pairs). Returns the slope grad'out. The two-loop recursion with each inner product computed in
    the same pass as the update before it (2 n + 1 passes over the vectors for n pairs, dots summed in float64)."""
    n = slots.shape[0]
    size = grad.shape[0]
    if n == 0:
        slope = 0.0
        for t in range(size):
            out[t] = -grad[t]
            slope -= np.float64(grad[t]) * np.float64(grad[t])
        return slope
    alpha = np.empty(n)
    s = S[slots[n - 1]]
    dot = 0.0
    for t in range(size):
        q = -grad[t]
        out[t] = q
        dot += np.float64(s[t]) * np.float64(q)
    for i in range(n - 1, -1, -1):  # newest to oldest: alpha_i = s_i'q / s_i'y_i, q -= alpha_i y_i
        a = dot / sy[slots[i]]
        alpha[i] = a
        step = np.float32(a)
        y = Y[slots[i]]
        dot = 0.0
        if i > 0:
            s = S[slots[i - 1]]
            for t in range(size):
                v = out[t] - step * y[t]
                out[t] = v
                dot += np.float64(s[t]) * np.float64(v)
        else:  # then the initial matrix, and the first dot of the second loop
            gamma = np.float32(sy[slots[n - 1]] / yy[slots[n - 1]])
            first = Y[slots[0]]
            for t in range(size):
                v = (out[t] - step * y[t]) * gamma
                out[t] = v
                dot += np.float64(first[t]) * np.float64(v)
    slope = 0.0
    for i in range(n):  # oldest to newest: q += (alpha_i - y_i'q / s_i'y_i) s_i
        c = np.float32(alpha[i] - dot / sy[slots[i]])
        s = S[slots[i]]
        dot = 0.0
        if i < n - 1:
            y = Y[slots[i + 1]]
            for t in range(size):
                v = out[t] + c * s[t]
                out[t] = v
                dot += np.float64(y[t]) * np.float64(v)
        else:
            for t in range(size):
                v = out[t] + c * s[t]
                out[t] = v
                slope += np.float64(grad[t]) * np.float64(v)
    return slope


@njit(cache=True, nogil=True, fastmath=FAST)
def curvature_pair(new_params, params, new_grad, grad, s, y):
    """s = new_params - params and y = new_grad - grad (float32 [P]), in one pass; returns (s'y, y'y) in float64."""
    sy = 0.0
    yy = 0.0
    for t in range(s.shape[0]):
        a = new_params[t] - params[t]
        b = new_grad[t] - grad[t]
        s[t] = a
        y[t] = b
        sy += np.float64(a) * np.float64(b)
        yy += np.float64(b) * np.float64(b)
    return sy, yy

