"""Figures of the measures beyond the paper: anisotropy against depth (encoders against decoders), training
dynamics (heat maps over step x layer), and a study's measure against an external score. Saved with
`plots.save_figure` (same data, same bytes); NaN values are left out of lines and shown blank in heat maps.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from .errors import InputError
from .plots import LayerProfile

LINESTYLES = {"encoder": "-", "decoder": "--", "unknown": ":"}  # unknown: results extracted before roles


def anisotropy_depth_figure(profiles: Sequence[LayerProfile], roles: Sequence[str], dataset: str) -> Figure:
    """Pooled (`anisotropy`) and token-level (`token_anisotropy`) anisotropy against relative depth.

    Encoders are drawn solid, decoders dashed, an unknown role dotted (`roles[i]` of `profiles[i]`).
    """
    if len(roles) != len(profiles):
        raise InputError(f"{len(roles)} roles for {len(profiles)} models")
    fig, axes = plt.subplots(1, 2, figsize=(10.0, 4.0), sharey=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    panels = (("anisotropy", "pooled vectors"), ("token_anisotropy", "token states"))
    for ax, (column, title) in zip(axes, panels):
        for i, (profile, role) in enumerate(zip(profiles, roles)):
            if role not in LINESTYLES:
                raise InputError(f"role {role!r} of {profile.label!r} is not encoder, decoder or unknown")
            x, y = profile.column("relative_depth"), profile.column(column)
            ok = ~np.isnan(y)
            ax.plot(x[ok], y[ok], LINESTYLES[role], marker="o", markersize=3, color=colours[i % len(colours)],
                    label=f"{profile.label} ({role})")
        ax.set_xlabel("relative depth")
        ax.set_title(f"{dataset}: anisotropy of {title}")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("PC1 share of variance")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def training_dynamics_figure(steps: Sequence[int], values: Mapping[str, np.ndarray], chosen_layer: int | None,
                             label: str, dataset: str) -> Figure:
    """Top row: one heat map per measure (rows = layers, columns = steps); bottom row: the measure at the chosen
    layer against step. `values[measure]` is float [n_steps, n_layers]."""
    names = list(values)
    if not names:
        raise InputError("training dynamics: no measure to draw")
    fig, axes = plt.subplots(2, len(names), figsize=(4.0 * len(names), 6.5), squeeze=False)
    x = np.arange(len(steps))
    for j, name in enumerate(names):
        grid = np.asarray(values[name], dtype=np.float64)
        if grid.shape[0] != len(steps):
            raise InputError(f"training dynamics: {name} has {grid.shape[0]} steps, expected {len(steps)}")
        ax = axes[0, j]
        image = ax.imshow(np.ma.masked_invalid(grid.T), aspect="auto", origin="lower", cmap="viridis")
        ax.set_xticks(x, [str(s) for s in steps], rotation=45, fontsize=7)
        ax.set_xlabel("step")
        ax.set_ylabel("layer")
        ax.set_title(name)
        fig.colorbar(image, ax=ax)
        below = axes[1, j]
        if chosen_layer is not None:
            line = grid[:, chosen_layer]
            ok = ~np.isnan(line)
            below.plot(np.asarray(steps)[ok], line[ok], marker="o")
            below.set_title(f"{name} at layer {chosen_layer}")
        else:
            below.set_title(f"{name}: no chosen layer")
        below.set_xlabel("step")
        below.grid(alpha=0.3)
    fig.suptitle(f"{label} on {dataset}: geometry during training")
    fig.tight_layout()
    return fig


def study_figure(points: Mapping[str, Sequence[float]], scores: Sequence[float], models: Sequence[str],
                 measure: str, associations: Mapping[str, Mapping[str, object]], score_name: str = "score") -> Figure:
    """One panel per summary (chosen, last, mean layer): the measure against the external score, one point per
    model, with the fitted line and r / rho in the title (or why they are undefined)."""
    fig, axes = plt.subplots(1, len(points), figsize=(4.2 * len(points), 3.8), squeeze=False, sharey=True)
    y = np.asarray(scores, dtype=np.float64)
    for ax, (summary, values) in zip(axes[0], points.items()):
        x = np.asarray(values, dtype=np.float64)
        ax.scatter(x, y)
        for xi, yi, name in zip(x, y, models):
            if math.isfinite(xi):
                ax.annotate(name, (xi, yi), fontsize=7, xytext=(3, 3), textcoords="offset points")
        association = associations[summary]
        r, rho = association.get("pearson_r"), association.get("spearman_rho")
        slope, intercept = association.get("slope"), association.get("intercept")
        if r is not None and slope is not None and intercept is not None:
            grid = np.linspace(np.nanmin(x), np.nanmax(x), 20)
            ax.plot(grid, float(slope) * grid + float(intercept), "k--", linewidth=1)
            ax.set_title(f"{summary} layer: r = {r:.2f}, rho = {rho:.2f}", fontsize=9)
        else:
            ax.set_title(f"{summary} layer: undefined ({association.get('reason')})", fontsize=8)
        ax.set_xlabel(f"{measure} ({summary} layer)")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel(score_name)
    fig.tight_layout()
    return fig
