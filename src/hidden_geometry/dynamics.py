"""Geometry during training: one table over (step, layer) from the layers tables of a model's checkpoints.

`training.tsv` has columns `step`, then every column of layers.tsv (`layer` first), one row per (step, layer),
steps ascending. The step of a checkpoint comes from its training.json (models.training) or from the config.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .errors import InputError


def training_rows(tables: Mapping[int, Mapping[str, np.ndarray]]) -> tuple[list[str], list[dict]]:
    """Columns and rows of training.tsv from {step: layers table as column arrays}."""
    if len(tables) < 2:
        raise InputError(f"training dynamics need at least 2 checkpoints with a step, got {len(tables)}")
    steps = sorted(tables)
    columns = list(tables[steps[0]])
    if "layer" not in columns:
        raise InputError("training dynamics: the layers tables have no 'layer' column")
    for step in steps[1:]:
        if list(tables[step]) != columns:
            raise InputError(f"training dynamics: the layers table of step {step} has other columns than step "
                             f"{steps[0]}")
        if len(tables[step]["layer"]) != len(tables[steps[0]]["layer"]):
            raise InputError(f"training dynamics: step {step} has {len(tables[step]['layer'])} layers, step "
                             f"{steps[0]} has {len(tables[steps[0]]['layer'])}")
    rows = []
    for step in steps:
        table = tables[step]
        for i in range(len(table["layer"])):
            row: dict = {"step": int(step)}
            for column in columns:
                value = float(table[column][i])
                row[column] = int(value) if column == "layer" else value
            rows.append(row)
    return ["step"] + columns, rows


def step_layer_grid(rows: Sequence[Mapping], column: str) -> tuple[list[int], np.ndarray]:
    """The steps and a float [n_steps, n_layers] grid of `column` from training.tsv rows."""
    steps = sorted({int(r["step"]) for r in rows})
    layers = sorted({int(r["layer"]) for r in rows})
    grid = np.full((len(steps), len(layers)), np.nan)
    for r in rows:
        grid[steps.index(int(r["step"])), layers.index(int(r["layer"]))] = float(r[column])
    return steps, grid
