"""A layer's graph file: its exact neighbour graph (`neighbours.save_graph`), or why the layer has none.

A layer with too few distinct points has no graph; the workflow still writes its graph file, holding the reason
(`UndefinedGraph`), so that the summary reads every layer's file the same way and reports NaN with the reason.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np

from ..atomic import atomic_path
from ..errors import InputError
from .neighbours import load_graph, save_graph


@dataclasses.dataclass(frozen=True)
class UndefinedGraph:
    """A layer without a neighbour graph: why, and how many distinct points it had."""

    reason: str
    n_points: int


def write_graph_file(path: str | os.PathLike, graph: Any) -> None:
    """Write a `NeighbourGraph` (see `geometry.save_graph`) or an `UndefinedGraph` to a `.npz` file, atomically."""
    if isinstance(graph, UndefinedGraph):
        with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as handle:
            np.savez(handle, undefined_reason=np.array(graph.reason), n_points=np.array(graph.n_points, dtype=np.int64))
        return
    save_graph(graph, path)


def read_graph_file(path: str | os.PathLike) -> Any:
    """The `NeighbourGraph` or `UndefinedGraph` stored by `write_graph_file`."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if "undefined_reason" in data.files:
                return UndefinedGraph(str(data["undefined_reason"]), int(data["n_points"]))
    except (OSError, ValueError, EOFError) as error:
        raise InputError(f"{path}: cannot read a graph file ({error})") from None
    return load_graph(path)
