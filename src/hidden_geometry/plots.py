"""Figures of the workflow (matplotlib, Agg backend), written reproducibly.

Each `*_figure` function takes plain data (per-layer profiles read from layers.tsv, Gride curves) and returns a
matplotlib Figure; `save_figure` writes it to PNG/PDF through `atomic_path` with fixed metadata, so the same data
gives the same bytes. Undefined values (NaN) are left out of lines rather than drawn as zeros.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the backend
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from .atomic import atomic_path  # noqa: E402
from .errors import InputError  # noqa: E402
from .io import RECORD_KEY, Record, read_table_columns  # noqa: E402

# No dates or versions in the files: the same figure gives the same bytes.
_METADATA = {
    "png": {"Software": None},
    "pdf": {"Creator": None, "Producer": None, "CreationDate": None},
}


@dataclass(frozen=True)
class LayerProfile(Record):
    """Per-layer values of one model (from its layers.tsv), with its legend label and chosen layer."""

    label: str
    columns: Mapping[str, np.ndarray]
    chosen_layer: int | None = None
    extra: Mapping[str, object] = field(default_factory=dict, metadata={RECORD_KEY: None})

    def column(self, name: str) -> np.ndarray:
        if name not in self.columns:
            raise InputError(f"layers table of {self.label!r}: no column {name!r}")
        return self.columns[name]


def read_layers_table(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """layers.tsv as float arrays per column ('NA' -> NaN): `io.read_table_columns`."""
    return read_table_columns(path)


def _new_axes(figsize: tuple[float, float] = (6.0, 4.0)) -> tuple[Figure, plt.Axes]:
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def plain_text(text: str) -> str:
    """Free text (a model label, a dataset name) drawn as written: dollar signs escaped so that matplotlib never
    reads it as mathtext (an unbalanced `$x^` would otherwise crash the figure job)."""
    return str(text).replace("$", r"\$")


def _finish(ax: plt.Axes, xlabel: str, ylabel: str, title: str, legend: bool = True) -> None:
    ax.set_xlabel(plain_text(xlabel))
    ax.set_ylabel(plain_text(ylabel))
    ax.set_title(plain_text(title), fontsize=10)
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if legend and handles:
        ax.legend(handles, [plain_text(label) for label in labels], fontsize=7, frameon=False)


def _mark_chosen(ax: plt.Axes, x: np.ndarray, y: np.ndarray, chosen: int | None, colour: str) -> None:
    if chosen is not None and 0 <= chosen < len(x) and math.isfinite(y[chosen]):
        ax.plot([x[chosen]], [y[chosen]], marker="*", markersize=13, color=colour, markeredgecolor="black",
                linestyle="none")


def profile_figure(profiles: Sequence[LayerProfile], column: str, ylabel: str, title: str,
                   err_column: str | None = None, dashed_column: str | None = None,
                   mark_chosen: bool = False) -> Figure:
    """One line per model of `column` against relative depth (optionally error bars, a dashed second measure
    and the chosen layer as a star)."""
    fig, ax = _new_axes()
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for index, profile in enumerate(profiles):
        colour = colours[index % len(colours)]
        x, y = profile.column("relative_depth"), profile.column(column)
        err = profile.column(err_column) if err_column else None
        ax.errorbar(x, y, yerr=err, color=colour, marker="o", markersize=3, linewidth=1.4, capsize=2,
                    label=profile.label)
        if dashed_column:
            ax.plot(x, profile.column(dashed_column), color=colour, linestyle="--", linewidth=0.9, alpha=0.7)
        if mark_chosen:
            _mark_chosen(ax, x, y, profile.chosen_layer, colour)
    ax.set_xlim(-0.03, 1.03)
    _finish(ax, "relative depth", ylabel, title)
    return fig


def id_depth_figure(profiles: Sequence[LayerProfile], dataset: str) -> Figure:
    """The paper's Fig. 1: ID (Gride, TwoNN dashed) against relative depth, chosen layers starred."""
    return profile_figure(profiles, "id_gride", "intrinsic dimension (Gride; TwoNN dashed)",
                          f"{dataset}: intrinsic dimension across layers", err_column="id_gride_err",
                          dashed_column="id_twonn", mark_chosen=True)


def overlap_next_figure(profiles: Sequence[LayerProfile], dataset: str, k: int) -> Figure:
    """The paper's Fig. 2: neighbourhood overlap of consecutive layers against relative depth."""
    return profile_figure(profiles, "overlap_next", f"overlap with next layer (chi, k={k})",
                          f"{dataset}: consecutive-layer neighbourhood overlap")


def label_overlap_figure(profiles: Sequence[LayerProfile], dataset: str, k: int) -> Figure:
    """The paper's Fig. 4: label overlap against relative depth."""
    return profile_figure(profiles, "label_overlap", f"label overlap (chi gt, k={k})",
                          f"{dataset}: neighbourhood overlap with the labels")


def checkpoints_figure(profiles: Sequence[LayerProfile], dataset: str, model: str) -> Figure:
    """The paper's Fig. 3: ID profiles of one model across training checkpoints."""
    return profile_figure(profiles, "id_gride", "intrinsic dimension (Gride)",
                          f"{dataset}: {model} across training checkpoints", err_column="id_gride_err",
                          mark_chosen=True)


def gride_scale_figure(curves: Sequence[Mapping], label: str, dataset: str) -> Figure:
    """Gride ID against scale (mean distance to the n2-th neighbour), one line per layer, the chosen scale circled
    (in the workflow: the model's one rank n2, the same in every layer).

    Each curve: {'layer': int, 'scales': [{'scale', 'id', 'err', ...}], 'chosen_index': int | None}.
    """
    fig, ax = _new_axes()
    cmap = matplotlib.colormaps["viridis"]
    n = max(1, len(curves) - 1)
    for index, curve in enumerate(curves):
        scales = [s for s in curve["scales"] if s.get("id") is not None and s.get("scale") is not None]
        if not scales:
            continue
        colour = cmap(index / n)
        x = np.array([s["scale"] for s in scales], dtype=float)
        y = np.array([s["id"] for s in scales], dtype=float)
        ax.plot(x, y, marker="o", markersize=3, linewidth=1.1, color=colour, label=f"layer {curve['layer']}")
        chosen = curve.get("chosen_index")
        if chosen is not None and 0 <= chosen < len(curve["scales"]) and curve["scales"][chosen].get("id") is not None:
            ax.plot([curve["scales"][chosen]["scale"]], [curve["scales"][chosen]["id"]], marker="o", markersize=8,
                    markerfacecolor="none", color=colour)
    ax.set_xscale("log")
    _finish(ax, "scale (mean distance to the n2-th neighbour)", "intrinsic dimension (Gride)",
            f"{dataset}: {label}, Gride ID against scale")
    return fig


def overlap_matrix_figure(matrix: np.ndarray, label: str, dataset: str, k: int) -> Figure:
    """The full neighbourhood-overlap matrix chi_k(l, m) of one model's layers as a heat map (0 to 1, NaN blank)."""
    values = np.asarray(matrix, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] != values.shape[1] or values.shape[0] == 0:
        raise InputError(f"overlap matrix: expected a square [L, L] array, got shape {values.shape}")
    fig, ax = _new_axes((5.2, 4.4))
    image = ax.imshow(np.ma.masked_invalid(values), vmin=0.0, vmax=1.0, cmap="viridis", origin="lower",
                      interpolation="nearest")
    fig.colorbar(image, ax=ax, label=f"neighbourhood overlap chi (k = {k})")
    _finish(ax, "layer m", "layer l", f"{dataset}: {label}, overlap between layers", legend=False)
    return fig


def probe_vs_id_figure(profile: LayerProfile, dataset: str, best_layer: int | None) -> Figure:
    """Linear-probe accuracy against ID per layer; chosen layer starred, probe's best layer squared."""
    fig, ax = _new_axes()
    x, y = profile.column("id_gride"), profile.column("probe_acc")
    err = profile.column("probe_acc_std")
    layers = profile.column("layer").astype(int)
    ax.errorbar(x, y, yerr=err, marker="o", markersize=4, linestyle="-", linewidth=0.8, capsize=2,
                color="tab:blue", label=profile.label)
    for xi, yi, layer in zip(x, y, layers):
        if math.isfinite(xi) and math.isfinite(yi):
            ax.annotate(str(layer), (xi, yi), textcoords="offset points", xytext=(4, 3), fontsize=7)
    chosen = profile.chosen_layer
    if chosen is not None and math.isfinite(x[chosen]) and math.isfinite(y[chosen]):
        ax.plot([x[chosen]], [y[chosen]], marker="*", markersize=14, color="tab:red", markeredgecolor="black",
                linestyle="none", label=f"chosen layer {chosen} (no labels)")
    if best_layer is not None and math.isfinite(x[best_layer]) and math.isfinite(y[best_layer]):
        ax.plot([x[best_layer]], [y[best_layer]], marker="s", markersize=10, markerfacecolor="none",
                color="tab:green", linestyle="none", label=f"probe's best layer {best_layer}")
    _finish(ax, "intrinsic dimension (Gride)", "linear-probe accuracy", f"{dataset}: probe accuracy against ID")
    return fig


def save_figure(fig: Figure, paths: Iterable[str | os.PathLike], dpi: int = 120) -> None:
    """Write `fig` to every path (format from the suffix: png or pdf) atomically, with fixed metadata."""
    for path in paths:
        fmt = Path(path).suffix.lstrip(".").lower()
        if fmt not in _METADATA:
            raise InputError(f"{path}: figure format {fmt!r} is not png or pdf")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi, metadata=_METADATA[fmt])
