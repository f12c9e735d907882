"""Unsupervised choice of a layer from its ID profile (Valeriani et al. 2023).

The paper's rule: the representations most useful for semantic tasks lie after the first peak of the intrinsic
dimension, where the ID reaches its following relative minimum or the start of its plateau. Implemented as:

1. Smooth the profile with a centred moving average over `window` layers (edges use the layers available), so
   that one noisy layer cannot create or hide a peak.
2. The first peak is the first local maximum of the smoothed profile whose prominence is at least
   `min_prominence` times the profile's range (layer 0 counts: a profile that only falls peaks there).
3. After the peak, the descent runs until the next such peak (or the last layer); its lowest value is the floor.
   The chosen layer is the first layer of the descent within `plateau_tol` of the drop above that floor: the
   relative minimum itself when the descent is sharp, the start of the plateau when it levels off.
4. With no prominent peak (a flat or rising profile) the chosen layer is the global maximum's layer's descent,
   as in step 3, and the rule says so.

The phases the paper names are read off the same smoothed profile (`id_phases`): `expansion` from layer 0 up to
the first peak, `contraction` from the peak down to the chosen layer, `plateau` from the chosen layer while the
profile stays within `plateau_tol` of the drop above the floor, and `second_peak` from the end of the plateau up
to a later prominent peak (when there is one). Phases that do not occur are absent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..errors import InputError
from ..io import Record


@dataclass(frozen=True)
class LayerChoice(Record):
    """The chosen layer with its evidence (layers are indices into the profile, 0 = embedding layer)."""

    peak_layer: int
    chosen_layer: int
    peak_relative_depth: float
    chosen_relative_depth: float
    ids: list[float]
    smoothed_ids: list[float]
    relative_depths: list[float]
    rule: str
    found_peak: bool = True
    parameters: dict[str, float] = field(default_factory=dict)
    phases: list[dict[str, int | str]] = field(default_factory=list)
    second_peak_layer: int | None = None


def smooth_profile(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average over `window` layers (odd; edges average the layers that exist)."""
    if window <= 1 or values.size < 3:
        return values.astype(np.float64).copy()
    half = window // 2
    out = np.empty(values.size, dtype=np.float64)
    for i in range(values.size):
        out[i] = values[max(0, i - half) : i + half + 1].mean()
    return out


def _descent_end(smoothed: np.ndarray, peak: int, stop: int, plateau_tol: float) -> int:
    """First layer in (peak, stop] within plateau_tol of the drop from the peak to the lowest value there."""
    if peak >= stop:
        return peak
    segment = smoothed[peak + 1 : stop + 1]
    floor = float(segment.min())
    drop = float(smoothed[peak]) - floor
    if drop <= 0:
        return peak
    within = np.flatnonzero(segment <= floor + plateau_tol * drop)
    return peak + 1 + int(within[0])


def _later_peaks(smoothed: np.ndarray, peak: int, threshold: float) -> list[int]:
    """Prominent peaks after `peak`; here the last layer can be one (a profile that rises again to the end)."""
    from scipy.signal import find_peaks  # imported where used: `hidden-geometry knn` never loads scipy

    padded = np.concatenate([[-np.inf], smoothed, [-np.inf]])
    peaks, _ = find_peaks(padded, prominence=threshold)
    return [int(p) - 1 for p in peaks if p - 1 > peak]


def id_phases(
    smoothed: np.ndarray, peak: int, chosen: int, later_peaks: Sequence[int], plateau_tol: float
) -> tuple[list[dict[str, int | str]], int | None]:
    """The phases of a smoothed ID profile (module docstring) as [{'phase', 'start', 'end'}] with inclusive layer
    bounds, and the layer of the later second peak (None when there is none)."""
    n = smoothed.size
    phases: list[dict[str, int | str]] = []
    if peak > 0:
        phases.append({"phase": "expansion", "start": 0, "end": int(peak)})
    if chosen > peak:
        phases.append({"phase": "contraction", "start": int(peak), "end": int(chosen)})
    plateau_end = chosen
    drop = float(smoothed[peak] - smoothed[chosen])
    if chosen > peak and drop > 0:
        floor = float(smoothed[peak:].min()) if not later_peaks else float(smoothed[peak : later_peaks[0] + 1].min())
        band = floor + plateau_tol * (float(smoothed[peak]) - floor)
        while plateau_end + 1 < n and smoothed[plateau_end + 1] <= band:
            plateau_end += 1
        if plateau_end > chosen:
            phases.append({"phase": "plateau", "start": int(chosen), "end": int(plateau_end)})
    second = next((int(p) for p in later_peaks if p > plateau_end), None)
    if second is not None:
        phases.append({"phase": "second_peak", "start": int(plateau_end), "end": second})
    return phases, second


def choose_layer(
    id_profile: Sequence[float],
    relative_depths: Sequence[float] | None = None,
    window: int = 3,
    min_prominence: float = 0.1,
    plateau_tol: float = 0.1,
) -> LayerChoice:
    """Choose the layer after the first ID peak (see the module docstring for the rule)."""
    ids = np.asarray(id_profile, dtype=np.float64)
    if ids.ndim != 1 or ids.size < 2:
        raise InputError(f"an ID profile needs at least 2 layers, got {ids.size}")
    if not np.all(np.isfinite(ids)):
        raise InputError(f"ID profile has a non-finite value at layer {int(np.flatnonzero(~np.isfinite(ids))[0])}")
    n = ids.size
    if relative_depths is None:
        depths = np.arange(n) / (n - 1)
    else:
        depths = np.asarray(relative_depths, dtype=np.float64)
        if depths.shape != ids.shape:
            raise InputError(f"relative_depths has {depths.size} values for {n} layers")
    window = int(window)
    if window < 1 or window % 2 == 0:
        raise InputError(f"window must be a positive odd number of layers, got {window}")
    smoothed = smooth_profile(ids, window if n >= 2 * window else 1)
    span = float(smoothed.max() - smoothed.min())
    threshold = min_prominence * span
    # A -inf in front lets layer 0 be a peak (a profile that only falls); the end cannot be a "first peak".
    from scipy.signal import find_peaks

    padded = np.concatenate([[-np.inf], smoothed])
    peaks, _ = find_peaks(padded, prominence=threshold if span > 0 else None)
    peaks = peaks - 1
    if span > 0 and peaks.size:
        peak = int(peaks[0])
        following = peaks[peaks > peak]
        stop = int(following[0]) if following.size else n - 1
        chosen = _descent_end(smoothed, peak, stop, plateau_tol)
        later = _later_peaks(smoothed, peak, threshold)
        found = True
        rule = (
            f"first peak of the {window}-layer moving average with prominence >= {min_prominence:g} x range; "
            f"chosen: first layer after it within {plateau_tol:g} of the drop to the following minimum or plateau"
        )
    else:
        peak = int(np.argmax(smoothed))
        chosen = _descent_end(smoothed, peak, n - 1, plateau_tol)
        later = []
        found = False
        rule = "no prominent peak: global maximum of the smoothed profile and the end of its descent"
    phases, second = id_phases(smoothed, peak, chosen, later, plateau_tol)
    return LayerChoice(
        peak_layer=peak,
        chosen_layer=chosen,
        peak_relative_depth=float(depths[peak]),
        chosen_relative_depth=float(depths[chosen]),
        ids=[float(v) for v in ids],
        smoothed_ids=[float(v) for v in smoothed],
        relative_depths=[float(v) for v in depths],
        rule=rule,
        found_peak=found,
        parameters={"window": window, "min_prominence": min_prominence, "plateau_tol": plateau_tol},
        phases=phases,
        second_peak_layer=second,
    )
