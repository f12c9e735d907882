"""hidden_geometry.plots: the figures draw what they are given, write valid PNG/PDF, and the same bytes twice."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from hidden_geometry import plots
from hidden_geometry.errors import InputError

COLUMNS = ("layer", "relative_depth", "id_twonn", "id_twonn_err", "id_gride", "id_gride_err", "gride_scale",
           "overlap_next", "label_overlap", "anisotropy", "probe_acc", "probe_acc_std", "n_points")


def profile(label: str, n_layers: int = 5, chosen: int | None = 2, seed: int = 0) -> plots.LayerProfile:
    rng = np.random.default_rng(seed)
    layers = np.arange(n_layers, dtype=float)
    columns = {name: rng.uniform(0.1, 0.9, n_layers) for name in COLUMNS}
    columns["layer"], columns["relative_depth"] = layers, layers / (n_layers - 1)
    columns["id_gride"] = 5 + 10 * np.sin(np.pi * columns["relative_depth"])
    columns["overlap_next"][-1] = math.nan
    return plots.LayerProfile(label=label, columns=columns, chosen_layer=chosen)


def legend_texts(fig) -> list[str]:
    return [text.get_text() for ax in fig.axes if ax.get_legend() for text in ax.get_legend().get_texts()]


def test_read_layers_table_parses_na(tmp_path: Path) -> None:
    path = tmp_path / "layers.tsv"
    path.write_text("layer\tid_gride\n0\t3.5\n1\tNA\n")
    table = plots.read_layers_table(path)
    assert table["layer"].tolist() == [0.0, 1.0]
    assert table["id_gride"][0] == 3.5 and math.isnan(table["id_gride"][1])
    path.write_text("layer\tid_gride\n0\n")
    with pytest.raises(InputError, match=":2:"):
        plots.read_layers_table(path)


def test_id_figure_has_one_line_per_model_with_untrained_labels() -> None:
    fig = plots.id_depth_figure([profile("MiniLM"), profile("BERT (untrained)", n_layers=4, seed=1)], "demo")
    assert legend_texts(fig) == ["MiniLM", "BERT (untrained)"]
    ax = fig.axes[0]
    assert ax.get_xlabel() == "relative depth"
    # the chosen layer is drawn as a star at its (depth, ID)
    stars = [line for line in ax.get_lines() if line.get_marker() == "*"]
    assert len(stars) == 2
    x, y = stars[0].get_data()
    p = profile("MiniLM")
    assert x[0] == pytest.approx(p.columns["relative_depth"][2]) and y[0] == pytest.approx(p.columns["id_gride"][2])


def test_every_figure_writes_valid_png_and_pdf_and_same_bytes_twice(tmp_path: Path) -> None:
    profiles = [profile("a"), profile("b (untrained)", seed=3)]
    curves = [{"layer": layer, "chosen_index": 1,
               "scales": [{"n1": 2**j, "n2": 2 ** (j + 1), "scale": 0.5 * 2**j, "id": 4.0 + j + layer, "err": 0.1}
                          for j in range(4)]} for layer in range(3)]
    makers = {
        "fig1": lambda: plots.id_depth_figure(profiles, "d"),
        "fig2": lambda: plots.overlap_next_figure(profiles, "d", 10),
        "fig3": lambda: plots.checkpoints_figure(profiles, "d", "a"),
        "fig4": lambda: plots.label_overlap_figure(profiles, "d", 10),
        "gride": lambda: plots.gride_scale_figure(curves, "a", "d"),
        "probe": lambda: plots.probe_vs_id_figure(profiles[0], "d", best_layer=4),
        "overlap_matrix": lambda: plots.overlap_matrix_figure(np.array([[1.0, 0.4, np.nan], [0.4, 1.0, np.nan],
                                                                        [np.nan, np.nan, np.nan]]), "a", "d", 10),
    }
    for name, make in makers.items():
        # two runs of the workflow build the figure afresh each time: the files must be identical
        plots.save_figure(make(), [tmp_path / f"{name}.png", tmp_path / f"{name}.pdf"], dpi=50)
        plots.save_figure(make(), [tmp_path / f"{name}_again.png", tmp_path / f"{name}_again.pdf"], dpi=50)
        png, pdf = (tmp_path / f"{name}.png").read_bytes(), (tmp_path / f"{name}.pdf").read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
        assert png == (tmp_path / f"{name}_again.png").read_bytes(), name
        assert pdf == (tmp_path / f"{name}_again.pdf").read_bytes(), name
    figures = {"probe": makers["probe"]()}
    assert "probe's best layer 4" in legend_texts(figures["probe"])
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_save_figure_refuses_unknown_formats(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="svg"):
        plots.save_figure(plots.id_depth_figure([profile("a")], "d"), [tmp_path / "x.svg"])


def test_overlap_matrix_figure_shows_the_matrix_and_refuses_a_non_square_one() -> None:
    matrix = np.array([[1.0, 0.3, 0.1], [0.3, 1.0, 0.6], [0.1, 0.6, 1.0]])
    fig = plots.overlap_matrix_figure(matrix, "a", "d", 30)
    image = fig.axes[0].get_images()[0]
    assert np.array_equal(np.asarray(image.get_array()), matrix) and image.get_clim() == (0.0, 1.0)
    assert "k = 30" in fig.axes[1].get_ylabel()
    with pytest.raises(InputError, match="square"):
        plots.overlap_matrix_figure(np.ones((2, 3)), "a", "d", 30)
