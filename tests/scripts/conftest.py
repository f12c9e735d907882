"""Fixtures for the scripts' adapter tests: a fake `snakemake` object and importable scripts.

The scripts are thin adapters run by Snakemake's `script:` directive; each has `main(snakemake)`, so a test calls it
with a stand-in that has the same attributes (input, output, params, wildcards, log, threads, rule).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


class Named(list):
    """Like Snakemake's Namedlist: a list of values, also reachable by name (attribute or .get/.keys/.items)."""

    def __init__(self, *values: Any, **named: Any):
        super().__init__([*values, *named.values()])
        self._names = dict(named)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_names"][name]
        except KeyError:
            raise AttributeError(name) from None

    def get(self, name: str, default: Any = None) -> Any:
        return self._names.get(name, default)

    def keys(self):
        return self._names.keys()

    def items(self):
        return self._names.items()


def fake_snakemake(input=None, output=None, params=None, wildcards=None, log=(), threads=1, rule="test") -> Any:
    """A stand-in for the object Snakemake injects into a script."""
    as_named = lambda v: v if isinstance(v, Named) else Named(**(v or {}))  # noqa: E731
    return SimpleNamespace(input=as_named(input), output=as_named(output), params=SimpleNamespace(**(params or {})),
                           wildcards=as_named(wildcards), log=Named(*log), threads=threads, rule=rule)


@pytest.fixture(scope="session")
def script():
    """Import a script of scripts/ by name (its folder on sys.path, as Snakemake does)."""
    if str(SCRIPTS) not in sys.path:
        sys.path.insert(0, str(SCRIPTS))

    def load(name: str) -> Any:
        return importlib.import_module(name)

    return load
