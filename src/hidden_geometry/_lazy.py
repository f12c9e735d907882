"""Lazy package exports (PEP 562).

Each workflow job is a fresh Python process that needs one or two functions; importing every submodule of a
package up front (torch, scipy, jsonschema, Pillow) cost 2-3 s per job. A package lists `name -> submodule` and
its submodules are imported on first use of a name.

A name must not equal a submodule's name: importing a submodule sets the package attribute of that name to the
module itself, which would hide the function (`lazy_getattr` refuses such a table).
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping


def lazy_getattr(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """Return a module-level `__getattr__` that imports `package.<exports[name]>` when `name` is first used."""

    clashes = sorted(set(exports) & set(exports.values()))
    if clashes:
        raise ValueError(f"{package}: exported names equal submodule names: {clashes}")

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(f".{exports[name]}", package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
