"""hidden_geometry.io: stable JSON and TSV (byte-identical reruns), one-line errors for unreadable files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from hidden_geometry import io
from hidden_geometry.errors import InputError


def test_tidy_rounds_floats_and_turns_undefined_into_null() -> None:
    data = {"b": np.float32(0.1), "a": [1.23456789012, math.nan, np.inf], "n": np.int64(3), "flag": np.bool_(True)}
    tidy = io.json_ready(data, io.FLOAT_DIGITS)
    assert tidy == {"b": 0.1, "a": [1.23457, None, None], "n": 3, "flag": True}
    assert type(tidy["n"]) is int and type(tidy["flag"]) is bool


def test_write_json_is_sorted_and_stable(tmp_path: Path) -> None:
    io.write_json(tmp_path / "a.json", {"z": 1.0000001, "a": {"y": 2, "x": float("nan")}})
    io.write_json(tmp_path / "b.json", {"a": {"x": float("nan"), "y": 2}, "z": 1.0000001})
    text = (tmp_path / "a.json").read_text()
    assert text == (tmp_path / "b.json").read_text()
    assert json.loads(text) == {"a": {"x": None, "y": 2}, "z": 1.0}
    assert list(tmp_path.iterdir()) and not list(tmp_path.glob(".*tmp*"))  # no temporary file left


def test_write_tsv_has_exact_columns_and_na(tmp_path: Path) -> None:
    rows = [{"layer": 0, "x": 0.123456789, "ok": True}, {"layer": 1, "x": math.nan, "ok": False, "extra": 5}]
    io.write_tsv(tmp_path / "t.tsv", ["layer", "x", "ok"], rows)
    assert (tmp_path / "t.tsv").read_text() == "layer\tx\tok\n0\t0.123457\ttrue\n1\tNA\tfalse\n"
    assert io.read_tsv(tmp_path / "t.tsv")[1] == {"layer": "1", "x": "NA", "ok": "false"}


def test_json_ready_without_digits_keeps_floats_and_converts_results() -> None:
    from hidden_geometry.probes import ProbeResult

    value = io.json_ready({"r": ProbeResult(0.123456789, math.nan, 3), "t": (np.float64(2.5), np.str_("a")),
                           "s": {"b", "a"}, "p": Path("x") / "y"})
    assert value == {"r": {"mean": 0.123456789, "std": None, "n_folds": 3, "reason": "", "n": 0, "n_classes": 0},
                     "t": [2.5, "a"], "s": ["a", "b"], "p": "x/y"}
    assert type(value["t"][1]) is str


def test_unreadable_files_are_one_line_errors(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match="bad.json: not JSON"):
        io.read_json(tmp_path / "bad.json")


def test_read_tsv_columns_gives_floats_and_names_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "t.tsv"
    path.write_text("layer\tx\n0\t0.5\n1\tNA\n")
    columns = io.read_tsv_columns(path)
    assert columns["layer"].tolist() == [0.0, 1.0] and columns["x"][0] == 0.5 and math.isnan(columns["x"][1])
    path.write_text("layer\tx\n0\t0.5\n1\n")
    with pytest.raises(InputError, match=r"t.tsv:3: 1 fields where the header has 2"):
        io.read_tsv(path)
    path.write_text("layer\tx\n0\tabc\n")
    with pytest.raises(InputError, match="not a numeric table"):
        io.read_tsv_columns(path)
