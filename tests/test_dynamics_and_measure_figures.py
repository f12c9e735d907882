"""training.tsv rows, the step x layer grid, and the new figures (drawn from known values, saved as PNG)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hidden_geometry.dynamics import step_layer_grid, training_rows
from hidden_geometry.errors import InputError
from hidden_geometry.plots import LayerProfile, save_figure
from hidden_geometry.plots_measures import (
    anisotropy_depth_figure,
    study_figure,
    training_dynamics_figure,
)


def table(step: int) -> dict[str, np.ndarray]:
    return {"layer": np.arange(3.0), "id_twonn": np.array([5.0, 8.0, 6.0]) + step, "anisotropy": np.full(3, 0.1 * step)}


def test_training_rows_and_grid() -> None:
    columns, rows = training_rows({50: table(50), 0: table(0), 10: table(10)})
    assert columns == ["step", "layer", "id_twonn", "anisotropy"]
    assert [(r["step"], r["layer"]) for r in rows][:4] == [(0, 0), (0, 1), (0, 2), (10, 0)]
    steps, grid = step_layer_grid(rows, "id_twonn")
    assert steps == [0, 10, 50]
    np.testing.assert_array_equal(grid[2], [55.0, 58.0, 56.0])
    with pytest.raises(InputError, match="at least 2 checkpoints"):
        training_rows({0: table(0)})
    short = {"layer": np.arange(2.0), "id_twonn": np.ones(2), "anisotropy": np.ones(2)}
    with pytest.raises(InputError, match="layers"):
        training_rows({0: table(0), 5: short})


def test_figures_are_drawn(tmp_path: Path) -> None:
    depth = np.linspace(0, 1, 4)
    enc = LayerProfile("enc", {"relative_depth": depth, "anisotropy": np.full(4, 0.1),
                               "token_anisotropy": np.array([0.1, np.nan, 0.2, 0.2])})
    dec = LayerProfile("dec", {"relative_depth": depth, "anisotropy": np.array([0.1, 0.5, 0.6, 0.2]),
                               "token_anisotropy": np.array([0.1, 0.7, 0.8, 0.3])})
    fig = anisotropy_depth_figure([enc, dec], ["encoder", "decoder"], "demo")
    styles = [line.get_linestyle() for line in fig.axes[0].lines]
    assert styles == ["-", "--"]
    assert len(fig.axes[1].lines[0].get_xdata()) == 3  # the NaN layer is left out
    save_figure(fig, [tmp_path / "a.png"], dpi=50)
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(InputError, match="role"):
        anisotropy_depth_figure([enc], ["both"], "demo")
    grid = np.arange(12.0).reshape(4, 3)
    fig = training_dynamics_figure([0, 10, 20, 40], {"id_twonn": grid, "anisotropy": grid / 20}, 1, "m", "d")
    bottom_left = fig.axes[2]  # subplots come first (2 x 2, row by row), colour bars after
    assert list(bottom_left.lines[0].get_ydata()) == [1.0, 4.0, 7.0, 10.0]  # layer 1 over the steps
    save_figure(fig, [tmp_path / "t.png"], dpi=50)
    line = {"pearson_r": 1.0, "spearman_rho": 1.0, "slope": 2.0, "intercept": 0.0}
    fig = study_figure({"chosen": [1, 2, 3, 4], "last": [1, 2, 3, float("nan")]}, [2, 4, 6, 8], list("abcd"),
                       "isoscore", {"chosen": line, "last": {"pearson_r": None, "reason": "undefined for some model"}})
    assert "r = 1.00" in fig.axes[0].get_title() and "undefined" in fig.axes[1].get_title()
    save_figure(fig, [tmp_path / "s.png"], dpi=50)
