"""Shared test fixtures.

`shared_data` is the folder of real data copies beside the project (`../shared/data`, or $HG_SHARED_DATA).
Tests that need it skip with the reason where it is absent; they never download anything.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    return Path(os.environ.get("HG_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not (path / "README.md").is_file():
        pytest.skip(f"real data copies not found at {path} (set HG_SHARED_DATA)")
    return path
