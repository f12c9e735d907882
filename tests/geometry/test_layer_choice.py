"""Unsupervised layer choice from an ID profile: the first peak, then the following minimum or plateau start."""

from __future__ import annotations

import numpy as np
import pytest

from hidden_geometry.errors import InputError
from hidden_geometry.geometry import choose_layer


def paper_like_profile(n_layers: int = 33) -> np.ndarray:
    """Rise to a peak at 1/4 depth, fall to a plateau from about 1/2 depth, a late bump at the end."""
    depth = np.linspace(0, 1, n_layers)
    return 10 + 30 * np.exp(-(((depth - 0.25) / 0.08) ** 2)) + 15 * np.clip((depth - 0.85) / 0.15, 0, 1)


def test_clean_profile_peak_and_plateau_start():
    profile = paper_like_profile()
    choice = choose_layer(profile)
    assert choice.peak_layer == 8
    # The Gaussian bump has fallen to within 10% of its drop by ~1.7 widths after the peak.
    assert 12 <= choice.chosen_layer <= 14
    assert choice.found_peak
    assert choice.chosen_relative_depth == pytest.approx(choice.chosen_layer / 32)
    d = choice.to_dict()
    assert d["ids"] == pytest.approx(list(profile)) and "rule" in d and d["peak_layer"] == 8


def test_relative_minimum_is_chosen_when_the_profile_rises_again():
    profile = [5, 12, 20, 14, 8, 6, 9, 14, 18, 17]
    choice = choose_layer(profile, window=1)
    assert (choice.peak_layer, choice.chosen_layer) == (2, 5)


def test_robust_to_noise():
    clean = choose_layer(paper_like_profile())
    for seed in range(20):
        noisy = paper_like_profile() + np.random.default_rng(seed).normal(0, 1.0, 33)
        choice = choose_layer(noisy)
        assert abs(choice.peak_layer - clean.peak_layer) <= 1
        assert abs(choice.chosen_layer - clean.chosen_layer) <= 2


def test_a_single_noisy_spike_is_not_the_first_peak():
    profile = paper_like_profile()
    profile[2] += 4.0  # a spike before the real peak, below the prominence threshold after smoothing
    assert choose_layer(profile).peak_layer == 8


def test_falling_profile_peaks_at_layer_zero():
    choice = choose_layer([30, 25, 18, 12, 11, 10.5, 10.4], window=1)
    # Drop 30 -> 10.4 = 19.6; layer 3 (12) is the first within 10% of it (12 <= 10.4 + 1.96).
    assert choice.peak_layer == 0 and choice.chosen_layer == 3


def test_rising_profile_has_no_peak():
    choice = choose_layer([1, 2, 3, 4, 5, 6])
    assert not choice.found_peak and choice.peak_layer == 5 and choice.chosen_layer == 5


def test_relative_depths_and_bad_inputs():
    choice = choose_layer([1, 5, 2, 2], relative_depths=[0, 0.2, 0.6, 1.0], window=1)
    assert choice.peak_relative_depth == 0.2 and choice.chosen_relative_depth == 0.6
    with pytest.raises(InputError, match="at least 2"):
        choose_layer([1.0])
    with pytest.raises(InputError, match="layer 1"):
        choose_layer([1.0, float("nan"), 2.0])
    with pytest.raises(InputError, match="relative_depths"):
        choose_layer([1, 2, 3], relative_depths=[0, 1])
    with pytest.raises(InputError, match="odd"):
        choose_layer([1, 2, 3], window=2)


def test_phases_of_the_paper_like_profile():
    choice = choose_layer(paper_like_profile())
    names = [phase["phase"] for phase in choice.phases]
    assert names == ["expansion", "contraction", "plateau", "second_peak"]
    bounds = {phase["phase"]: (phase["start"], phase["end"]) for phase in choice.phases}
    assert bounds["expansion"] == (0, 8) and bounds["contraction"] == (8, choice.chosen_layer)
    # The plateau runs from the chosen layer until the late rise (which starts at depth 0.85, layer 27.2).
    assert bounds["plateau"][0] == choice.chosen_layer and 24 <= bounds["plateau"][1] <= 28
    assert bounds["second_peak"] == (bounds["plateau"][1], 32) and choice.second_peak_layer == 32
    assert choice.to_dict()["phases"] == choice.phases and choice.to_dict()["second_peak_layer"] == 32


def test_phases_absent_where_they_do_not_occur():
    falling = choose_layer([30, 25, 18, 12, 11, 10.5, 10.4], window=1)
    assert [p["phase"] for p in falling.phases] == ["contraction", "plateau"] and falling.second_peak_layer is None
    rising = choose_layer([1, 2, 3, 4, 5, 6])
    assert [p["phase"] for p in rising.phases] == ["expansion"] and rising.second_peak_layer is None
    minimum = choose_layer([5, 12, 20, 14, 8, 6, 9, 14, 18, 17], window=1)
    assert minimum.phases == [
        {"phase": "expansion", "start": 0, "end": 2},
        {"phase": "contraction", "start": 2, "end": 5},
        {"phase": "second_peak", "start": 5, "end": 8},
    ]
    assert minimum.second_peak_layer == 8
