"""scripts/_wf.py: logging into the rule's log, per-layer file names (JSON and TSV: tests/test_io.py)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from .conftest import fake_snakemake


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


def test_layer_number(script) -> None:
    assert script("_wf").layer_number("x/graphs/layer_012.npz") == 12
