"""Graph files in `io`: a layer's graph file holds its graph, or why it has none; the graph as data (`graph`) and its
files (`io`) import neither numba nor torch, so that every workflow environment reads them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hidden_geometry import geometry, io
from hidden_geometry.errors import InputError
from hidden_geometry.geometry import knn_graph
from hidden_geometry.graph import NeighbourGraph, UndefinedGraph


def test_graph_file_round_trips_a_graph_and_an_undefined_layer(tmp_path: Path) -> None:
    X = np.random.default_rng(0).normal(size=(30, 4))
    graph = knn_graph(X, 5)
    io.write_graph_file(tmp_path / "g.npz", graph)
    back = io.read_graph_file(tmp_path / "g.npz")
    assert isinstance(back, NeighbourGraph)
    assert np.array_equal(back.rows, graph.rows) and np.array_equal(back.indices, graph.indices)
    assert np.array_equal(back.distances, graph.distances) and back.to_dict() == graph.to_dict()
    io.write_graph_file(tmp_path / "u.npz", UndefinedGraph("layer 3: 1 distinct points kept", 1))
    assert io.read_graph_file(tmp_path / "u.npz") == UndefinedGraph("layer 3: 1 distinct points kept", 1)


def test_the_library_names_of_the_graph_are_the_io_ones() -> None:
    # geometry.save_graph / load_graph / NeighbourGraph stay importable where the library exported them
    assert geometry.save_graph is io.save_graph and geometry.load_graph is io.load_graph
    assert geometry.NeighbourGraph is NeighbourGraph


def test_unreadable_graph_file_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "bad.npz").write_text("not a zip")
    with pytest.raises(InputError, match="bad.npz: cannot read a graph file"):
        io.read_graph_file(tmp_path / "bad.npz")
    np.savez(tmp_path / "partial.npz", rows=np.arange(3))
    with pytest.raises(InputError, match="partial.npz: not a neighbour graph, missing key"):
        io.load_graph(tmp_path / "partial.npz")


def test_io_and_graph_import_neither_numba_nor_torch() -> None:
    code = ("import sys, hidden_geometry.io, hidden_geometry.graph; "
            "print(sorted(m for m in ('numba', 'torch', 'scipy') if m in sys.modules))")
    src = Path(__file__).resolve().parents[1] / "src"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={"PYTHONPATH": str(src), "PATH": ""})
    assert done.stdout.strip() == "[]"
