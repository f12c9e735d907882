"""Lazy package exports (PEP 562).

Each workflow job is a fresh Python process that needs one or two functions; importing every submodule of a
package up front (torch, scipy, jsonschema, Pillow) cost 2-3 s per job. A package lists `name -> submodule` and
its submodules are imported on first use of a name.

A name must not equal a submodule's name: importing a submodule sets the package attribute of that name to the
module itself, which would hide the function (`lazy_getattr` refuses such a table).

Those imports run with Python's cyclic garbage collector paused (`collection_paused`): importing torch creates
hundreds of thousands of objects, and the collections they trigger (342 young and 2 full ones during torch's
import) find nothing to free. Paused, `from hidden_geometry.geometry import knn_graph` took 1.66 s instead of 1.82 s
(medians of 14 alternating processes, AMD EPYC), in every process that uses them. The collector's state is
restored afterwards, so a notebook's is unchanged.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import threading
from typing import Any, Callable, Iterator, Mapping

_paused = {"depth": 0, "was_enabled": False}
_paused_lock = threading.Lock()


@contextlib.contextmanager
def collection_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector inside the block (imports), then restore its state. Nested or
    concurrent blocks (threads importing at once) restore it when the last one ends."""
    with _paused_lock:
        if _paused["depth"] == 0:
            _paused["was_enabled"] = gc.isenabled()
            gc.disable()
        _paused["depth"] += 1
    try:
        yield
    finally:
        with _paused_lock:
            _paused["depth"] -= 1
            if _paused["depth"] == 0 and _paused["was_enabled"]:
                gc.enable()


def lazy_getattr(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """Return a module-level `__getattr__` that imports `package.<exports[name]>` when `name` is first used."""

    clashes = sorted(set(exports) & set(exports.values()))
    if clashes:
        raise ValueError(f"{package}: exported names equal submodule names: {clashes}")

    def __getattr__(name: str) -> Any:
        if name in exports:
            with collection_paused():
                module = importlib.import_module(f".{exports[name]}", package)
            return getattr(module, name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
