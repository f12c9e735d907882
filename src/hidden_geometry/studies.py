"""Studies across models: how a per-layer measure relates to an external score per model (e.g. average GLUE).

A study has one dataset, a set of models (at least `MIN_MODELS`) and a TSV of external scores, one per model.
For every measure it summarises each model's layer profile three ways (at the chosen layer, at the last layer, the
mean over layers) and relates the summaries to the scores: Pearson r, Spearman rho, a bootstrap 95% interval of r
(models resampled with replacement) and the leave-one-out prediction error of a linear fit (score ~ measure).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError
from .io import Record, read_table

MIN_MODELS = 4
SUMMARIES = ("chosen", "last", "mean")


def read_scores(path: str | Path) -> dict[str, float]:
    """The external scores: a UTF-8 TSV with a header naming columns `model` and `score` (other columns ignored;
    lines starting with `#` are comments).

    Raises InputError naming the file and line for a missing column, a duplicate model or a non-numeric score.
    """
    path = Path(path)
    table = read_table(path, comment="#")
    for column in ("model", "score"):
        if column not in table.columns:
            raise InputError(f"{path}: the header has no '{column}' column (columns: {', '.join(table.columns)})")
    scores: dict[str, float] = {}
    for number, model, cell in zip(table.index, table["model"], table["score"]):
        model = model.strip()
        try:
            score = float(cell)
        except ValueError:
            raise InputError(f"{path}, line {number}: score {cell!r} is not a number") from None
        if not math.isfinite(score):
            raise InputError(f"{path}, line {number}: score {cell!r} is not finite")
        if model in scores:
            raise InputError(f"{path}, line {number}: model {model!r} appears twice")
        scores[model] = score
    return scores


def summarise_profile(values: Sequence[float], chosen_layer: int | None) -> dict[str, float]:
    """A layer profile (index = layer) as {chosen, last, mean}; NaN where the chosen layer is unknown."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    return {
        "chosen": float(values[chosen_layer]) if chosen_layer is not None else float("nan"),
        "last": float(values[-1]) if values.size else float("nan"),
        "mean": float(finite.mean()) if finite.size == values.size and values.size else float("nan"),
    }


@dataclass(frozen=True)
class Association(Record):
    """One measure summary against the scores across models; NaN (written null) where undefined, with `reason`."""

    measure: str
    summary: str
    n_models: int
    pearson_r: float
    spearman_rho: float
    pearson_ci_low: float
    pearson_ci_high: float
    loo_rmse: float
    slope: float
    intercept: float
    reason: str


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    xc, yc = x - x.mean(), y - y.mean()
    denominator = math.sqrt(float(xc @ xc) * float(yc @ yc))
    return float(xc @ yc / denominator) if denominator > 0 else float("nan")


def _ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean of their positions), 1-based."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(values.size, dtype=np.float64)
    sorted_values = values[order]
    start = 0
    while start < values.size:
        stop = start
        while stop + 1 < values.size and sorted_values[stop + 1] == sorted_values[start]:
            stop += 1
        ranks[order[start : stop + 1]] = (start + stop) / 2 + 1
        start = stop + 1
    return ranks


def loo_rmse(x: np.ndarray, y: np.ndarray) -> float:
    """Root mean squared error of predicting each score from a line fitted to the other models."""
    errors = []
    for left_out in range(x.size):
        keep = np.arange(x.size) != left_out
        xs, ys = x[keep], y[keep]
        if np.ptp(xs) == 0:
            return float("nan")
        slope, intercept = np.polyfit(xs, ys, 1)
        errors.append(y[left_out] - (slope * x[left_out] + intercept))
    return float(np.sqrt(np.mean(np.square(errors))))


def associate(x: Sequence[float], y: Sequence[float], measure: str = "", summary: str = "", n_boot: int = 2000,
              seed: int = 0) -> Association:
    """Pearson r, Spearman rho, percentile bootstrap 95% interval of r, LOO RMSE and the fitted line."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise InputError(f"associate: measure and scores differ in shape ({x.shape} vs {y.shape})")
    n = x.size
    if n < MIN_MODELS:
        raise InputError(f"a study needs at least {MIN_MODELS} models with a score, got {n}")
    nan = float("nan")
    if not np.all(np.isfinite(x)):
        return Association(measure, summary, n, nan, nan, nan, nan, nan, nan, nan,
                           "the measure is undefined for some model")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return Association(measure, summary, n, nan, nan, nan, nan, nan, nan, nan,
                           "the measure or the score is the same for every model")
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(int(n_boot)):
        pick = rng.integers(0, n, size=n)
        r = _pearson(x[pick], y[pick])
        if math.isfinite(r):
            boot.append(r)
    low, high = (float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))) if boot else (nan, nan)
    slope, intercept = np.polyfit(x, y, 1)
    return Association(measure, summary, n, _pearson(x, y), _pearson(_ranks(x), _ranks(y)), low, high,
                       loo_rmse(x, y), float(slope), float(intercept), "")


def measures_vs_score(profiles: Mapping[str, Mapping[str, Sequence[float]]], chosen: Mapping[str, int | None],
                      scores: Mapping[str, float], measures: Sequence[str], n_boot: int = 2000,
                      seed: int = 0) -> list[Association]:
    """Every (measure, summary) against the scores.

    profiles: model -> measure -> values per layer; chosen: model -> chosen layer (None when undefined);
    scores: model -> external score. Every model of `profiles` must have a score.
    """
    models = sorted(profiles)
    missing = [model for model in models if model not in scores]
    if missing:
        raise InputError(f"no external score for model(s) {', '.join(missing)}")
    if len(models) < MIN_MODELS:
        raise InputError(f"a study needs at least {MIN_MODELS} models, got {len(models)} ({', '.join(models)})")
    y = [scores[model] for model in models]
    rows = []
    for measure in measures:
        summaries = {model: summarise_profile(profiles[model][measure], chosen.get(model)) for model in models}
        for summary in SUMMARIES:
            rows.append(associate([summaries[model][summary] for model in models], y, measure, summary,
                                  n_boot=n_boot, seed=seed))
    return rows


# The layers.tsv columns a study relates to the score (overlap_next is left out: undefined at the last layer).
STUDY_MEASURES = ("id_gride", "id_twonn", "label_overlap", "anisotropy", "probe_acc", "cell_density", "isoscore",
                  "participation_ratio", "mean_cosine", "token_anisotropy")
STUDY_COLUMNS = ("measure", "summary", "n_models", "pearson_r", "spearman_rho", "pearson_ci_low", "pearson_ci_high",
                 "loo_rmse", "slope", "intercept", "reason")
