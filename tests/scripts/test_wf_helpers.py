"""scripts/_wf.py: stable JSON and TSV (byte-identical reruns), logging into the rule's log."""

from __future__ import annotations

import json
import logging
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from .conftest import fake_snakemake


def test_tidy_rounds_floats_and_turns_undefined_into_null(script) -> None:
    wf = script("_wf")
    data = {"b": np.float32(0.1), "a": [1.23456789012, math.nan, np.inf], "n": np.int64(3), "flag": np.bool_(True)}
    tidy = wf.tidy(data)
    assert tidy == {"b": 0.1, "a": [1.23457, None, None], "n": 3, "flag": True}
    assert type(tidy["n"]) is int and type(tidy["flag"]) is bool


def test_write_json_is_sorted_and_stable(script, tmp_path: Path) -> None:
    wf = script("_wf")
    wf.write_json(tmp_path / "a.json", {"z": 1.0000001, "a": {"y": 2, "x": float("nan")}})
    wf.write_json(tmp_path / "b.json", {"a": {"x": float("nan"), "y": 2}, "z": 1.0000001})
    text = (tmp_path / "a.json").read_text()
    assert text == (tmp_path / "b.json").read_text()
    assert json.loads(text) == {"a": {"x": None, "y": 2}, "z": 1.0}
    assert list(tmp_path.iterdir()) and not list(tmp_path.glob(".*tmp*"))  # no temporary file left


def test_write_tsv_has_exact_columns_and_na(script, tmp_path: Path) -> None:
    wf = script("_wf")
    rows = [{"layer": 0, "x": 0.123456789, "ok": True}, {"layer": 1, "x": math.nan, "ok": False, "extra": 5}]
    wf.write_tsv(tmp_path / "t.tsv", ["layer", "x", "ok"], rows)
    assert (tmp_path / "t.tsv").read_text() == "layer\tx\tok\n0\t0.123457\ttrue\n1\tNA\tfalse\n"
    assert wf.read_tsv(tmp_path / "t.tsv")[1] == {"layer": "1", "x": "NA", "ok": "false"}


def test_logged_sends_logging_and_stderr_to_the_log_and_records_errors(script, tmp_path: Path) -> None:
    wf = script("_wf")
    log = tmp_path / "rule.log"
    snakemake = fake_snakemake(log=[str(log)], rule="demo_rule")
    stderr_before = sys.stderr
    with pytest.raises(ValueError):
        with wf.logged(snakemake) as logger:
            logger.info("hello %d", 42)
            logging.getLogger("hidden_geometry.other").warning("from the library")
            print("progress bar", file=sys.stderr)
            raise ValueError("bad value in the input")
    text = log.read_text()
    assert "hello 42" in text and "from the library" in text and "progress bar" in text
    assert "ValueError: bad value in the input" in text
    assert sys.stderr is stderr_before  # restored


def test_layer_number_and_input_column(script) -> None:
    wf = script("_wf")
    assert wf.layer_number("x/graphs/layer_012.npz") == 12
    assert wf.input_column({"id": [], "text": []}) == "text"
    assert wf.input_column({"id": [], "label": []}) is None
