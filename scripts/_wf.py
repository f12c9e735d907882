"""Shared plumbing of the workflow's scripts: logging into the rule's log, per-layer file names, the items inputs.

Snakemake puts each local script's folder on `sys.path`, so the scripts import this module as `_wf`.
Everything here is small and I/O-only; the computations live in `hidden_geometry` (JSON and TSV files:
`hidden_geometry.io`).
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import logging
import os
import sys
from pathlib import Path
from typing import Any, Iterator

import numpy as np

try:
    import hidden_geometry  # noqa: F401 - installed (pip install -e .)
except ImportError:  # a conda env from envs/ holds only the dependencies: use the repository's source
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from hidden_geometry.atomic import atomic_path  # noqa: E402
from hidden_geometry.errors import InputError  # noqa: E402

EXIT_INPUT = 2  # the exit status of a user-fixable error, as in the `hidden-geometry` command


def one_line(error: BaseException) -> str:
    """The error's message on one line (a message never spans lines in the log or the terminal)."""
    return " ".join(str(error).split()) or type(error).__name__


def _report_input_error(kind: type, error: BaseException, traceback: Any, fallback: Any = sys.excepthook) -> None:
    """Uncaught InputError in a rule's script: the one line (the same as in the rule's log), exit status 2, no
    traceback. Anything else keeps Python's report. Only uncaught errors reach here (tests calling main() see the
    exception itself)."""
    if not isinstance(error, InputError):
        fallback(kind, error, traceback)
        return
    print(f"hidden-geometry: error: {one_line(error)}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_INPUT)


sys.excepthook = _report_input_error

# Each rule's script runs in a process of its own, which ends when the script does. With torch imported, the
# interpreter's teardown spent 0.5 to 0.7 s of CPU (torch alone) to 0.8 s (a `linear_probe` job) in the garbage
# collector's passes over objects that live until the process ends anyway. At exit (after the script: its outputs
# are written atomically and `logged` has closed the log) every object is moved out of the collector's sight, so the
# teardown skips those passes (docs/benchmarks.md, linear probe, eleventh round).
atexit.register(gc.freeze)


@contextlib.contextmanager
def logged(snakemake: Any) -> Iterator[logging.Logger]:
    """Send Python logging and stderr of the script to the rule's log file (or stderr when it has none)."""
    log_files = list(getattr(snakemake, "log", []) or [])
    root = logging.getLogger()
    previous_level = root.level
    stream = open(log_files[0], "a", encoding="utf-8") if log_files else None  # noqa: SIM115 - closed below
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    saved_stderr = sys.stderr
    if stream is not None:
        sys.stderr = stream  # progress bars and warnings go to the log too
    logger = logging.getLogger(f"hidden_geometry.workflow.{getattr(snakemake, 'rule', 'script')}")
    try:
        yield logger
    except InputError as error:
        logger.error("%s", one_line(error))
        raise
    except Exception as error:
        logger.error("%s: %s", type(error).__name__, error)
        raise
    finally:
        sys.stderr = saved_stderr
        root.removeHandler(handler)
        root.setLevel(previous_level)
        if stream is not None:
            stream.close()


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """np.save through atomic_path."""
    with atomic_path(path) as tmp:
        np.save(tmp, array)


def layer_number(path: str | os.PathLike) -> int:
    """The layer of a per-layer file named like 'layer_007.json' or 'layer_007.npz'."""
    return int(Path(path).stem.rsplit("_", 1)[-1])
