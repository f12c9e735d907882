"""transformers helpers: quiet loading (no load reports or progress bars) and hub offline mode."""

from __future__ import annotations

import contextlib
from typing import Iterator


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' info/warning chatter (load reports, weight-loading bars) inside the block.

    Expected mismatches (an EsmForMaskedLM file loaded as EsmModel drops the LM head) would otherwise print
    a table per load; real errors still raise.
    """
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


@contextlib.contextmanager
def offline_hub() -> Iterator[None]:
    """Hub offline mode inside the block: HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE set, and huggingface_hub's
    import-time switch turned on, so no HTTP request can leave (loading is offline by design; downloads are
    the workflow's `fetch_model` rule's job)."""
    import os

    saved_env = {key: os.environ.get(key) for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ.update({key: "1" for key in saved_env})
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - transformers always brings huggingface_hub
        constants = None
    saved_flag = getattr(constants, "HF_HUB_OFFLINE", None)
    if constants is not None:
        constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        if constants is not None:
            constants.HF_HUB_OFFLINE = saved_flag
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
