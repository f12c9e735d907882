"""geometry.graph_files: a layer's graph file holds its graph, or why it has none."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hidden_geometry.errors import InputError
from hidden_geometry.geometry import graph_files, knn_graph


def test_graph_file_round_trips_a_graph_and_an_undefined_layer(tmp_path: Path) -> None:
    X = np.random.default_rng(0).normal(size=(30, 4))
    graph = knn_graph(X, 5)
    graph_files.write_graph_file(tmp_path / "g.npz", graph)
    back = graph_files.read_graph_file(tmp_path / "g.npz")
    assert np.array_equal(back.indices, graph.indices) and np.array_equal(back.distances, graph.distances)
    graph_files.write_graph_file(tmp_path / "u.npz", graph_files.UndefinedGraph("layer 3: 1 distinct points kept", 1))
    expected = graph_files.UndefinedGraph("layer 3: 1 distinct points kept", 1)
    assert graph_files.read_graph_file(tmp_path / "u.npz") == expected


def test_unreadable_graph_file_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "bad.npz").write_text("not a zip")
    with pytest.raises(InputError, match="bad.npz: cannot read a graph file"):
        graph_files.read_graph_file(tmp_path / "bad.npz")
