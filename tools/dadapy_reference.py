"""Reference values from DADApy 0.3.4 for tests/geometry/test_dadapy_reference.py.

Runs in a separate environment (DADApy 0.3.4 cannot be installed beside numpy 2; see
tools/dadapy-requirements.txt). It does not import hidden_geometry. It writes, into tests/fixtures/dadapy/:

- datasets.npz: small deterministic float64 datasets of known intrinsic dimension (named arrays), and for the
  duplicate experiments the row indices that are appended again (`dup_<pct>`: rows of `plane2_in5`);
- reference.json: DADApy's TwoNN "base" (mu_fraction=0.9) and "ml" estimates, and Gride per scale
  (`return_id_scaling_gride(range_max=64)`: ids, errors, DADApy's scale = mean of r_n1 and r_n2), for every
  dataset; and what DADApy returns (or raises) on the data with 2%, 10% and 30% duplicated rows.

Usage: /tmp/dadapy-venv/bin/python tools/dadapy_reference.py [--out tests/fixtures/dadapy]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import warnings
from pathlib import Path

import numpy as np

SEED = 20231101
DUPLICATE_PERCENTS = (2, 10, 30)
GRIDE_RANGE_MAX = 64


def embed(Z: np.ndarray, dim: int, rng: np.random.Generator) -> np.ndarray:
    """Z [n, d] placed in `dim` dimensions by a fixed random rotation."""
    q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    padded = np.zeros((Z.shape[0], dim))
    padded[:, : Z.shape[1]] = Z
    return padded @ q.T


def make_datasets() -> dict[str, np.ndarray]:
    """Known-ID datasets: a square (2), a Gaussian (6), a swiss roll (2), a 3-sphere (3)."""
    rng = np.random.default_rng(SEED)
    data = {}
    data["plane2_in5"] = embed(rng.uniform(size=(1500, 2)), 5, rng)
    data["gauss6_in10"] = embed(rng.standard_normal((1500, 6)), 10, rng)
    t = 1.5 * np.pi * (1 + 2 * rng.uniform(size=1200))
    h = 21.0 * rng.uniform(size=1200)
    data["swissroll"] = np.column_stack([t * np.cos(t), h, t * np.sin(t)])
    g = rng.standard_normal((1000, 4))
    data["sphere3_in4"] = 3.0 * g / np.linalg.norm(g, axis=1, keepdims=True)
    return data


def dadapy_values(X: np.ndarray) -> dict:
    """TwoNN base/ml and Gride per scale, each on a fresh Data object (no state shared between them)."""
    from dadapy import Data

    out: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = Data(coordinates=X.copy(), verbose=False)
        out["twonn_base"] = float(d.compute_id_2NN(algorithm="base", mu_fraction=0.9)[0])
        d = Data(coordinates=X.copy(), verbose=False)
        out["twonn_ml"] = float(d.compute_id_2NN(algorithm="ml", mu_fraction=0.9)[0])
        d = Data(coordinates=X.copy(), verbose=False)
        ids, errs, rs = d.return_id_scaling_gride(range_max=GRIDE_RANGE_MAX)
    out["gride"] = {
        "range_max": GRIDE_RANGE_MAX,
        "n1": [2**j for j in range(len(ids))],
        "ids": [float(v) for v in ids],
        "errs": [float(v) for v in errs],
        "scales_mean_r_n1_r_n2": [float(v) for v in rs],
    }
    return out


def attempt(fn) -> dict:
    """{"value": float or None, "error": str or None} (DADApy may return nonsense or raise on duplicates)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = fn()
    except Exception as exc:  # noqa: BLE001 - the point is to record whatever DADApy does
        return {"value": None, "error": f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"}
    if isinstance(value, np.ndarray):
        value = [None if not math.isfinite(v) else float(v) for v in value]
    elif value is not None:
        value = None if not math.isfinite(float(value)) else float(value)
    return {"value": value, "error": None}


def duplicate_experiments(X: np.ndarray) -> tuple[dict, dict[str, np.ndarray]]:
    """DADApy on X with p% of its rows appended again."""
    from dadapy import Data

    rng = np.random.default_rng(SEED + 1)
    results, indices = {}, {}
    for pct in DUPLICATE_PERCENTS:
        dup = np.sort(rng.choice(X.shape[0], size=int(round(pct / 100 * X.shape[0])), replace=False))
        Xd = np.concatenate([X, X[dup]])
        indices[f"dup_{pct}"] = dup
        results[str(pct)] = {
            "n_rows": int(Xd.shape[0]),
            "twonn_base": attempt(lambda: Data(coordinates=Xd.copy()).compute_id_2NN(algorithm="base")[0]),
            "twonn_ml": attempt(lambda: Data(coordinates=Xd.copy()).compute_id_2NN(algorithm="ml")[0]),
            "gride": attempt(lambda: Data(coordinates=Xd.copy()).return_id_scaling_gride(range_max=GRIDE_RANGE_MAX)[0]),
        }
    return results, indices


def main() -> None:
    import dadapy
    import scipy
    import sklearn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "dadapy"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    datasets = make_datasets()
    reference = {
        "generator": "tools/dadapy_reference.py",
        "versions": {
            "dadapy": getattr(dadapy, "__version__", "0.3.4"),
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "scikit-learn": sklearn.__version__,
            "python": platform.python_version(),
        },
        "datasets": {},
    }
    for name, X in datasets.items():
        reference["datasets"][name] = {"shape": list(X.shape), **dadapy_values(X)}
        print(name, reference["datasets"][name]["twonn_base"], reference["datasets"][name]["gride"]["ids"])
    dup_results, dup_indices = duplicate_experiments(datasets["plane2_in5"])
    reference["duplicates"] = {"dataset": "plane2_in5", "percents": list(DUPLICATE_PERCENTS), "results": dup_results}
    print(json.dumps(dup_results, indent=1))
    tmp = out / ".datasets.tmp.npz"
    np.savez_compressed(tmp, **datasets, **dup_indices)
    os.replace(tmp, out / "datasets.npz")
    tmp = out / ".reference.tmp.json"
    tmp.write_text(json.dumps(reference, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, out / "reference.json")


if __name__ == "__main__":
    main()
