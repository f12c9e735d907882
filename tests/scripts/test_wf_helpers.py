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


def test_a_scripts_process_ends_without_the_collectors_passes(tmp_path: Path) -> None:
    """At exit, a rule's script process moves every object out of the garbage collector's sight (`gc.freeze`), so the
    interpreter's teardown does not traverse torch's objects (0.8 s of CPU in a `linear_probe` job). Seen from
    outside: an object in a reference cycle, which the teardown's collection would otherwise finalise, is not; and
    what the script wrote is complete."""
    import subprocess

    scripts = Path(__file__).resolve().parents[2] / "scripts"
    out = tmp_path / "written.txt"
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(scripts)!r})\n"
        "import _wf\n"
        "class Cycle:\n"
        "    def __init__(self):\n"
        "        self.me = self\n"
        "    def __del__(self):\n"
        "        print('finalised by the collector', flush=True)\n"
        "Cycle()\n"
        f"with _wf.atomic_path({str(out)!r}) as tmp:\n"
        "    open(tmp, 'w').write('complete')\n"
        "print('end of script', flush=True)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["end of script"]
    assert out.read_text() == "complete"
