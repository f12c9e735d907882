"""Lazy package exports: the submodule is imported on first use, with the garbage collector paused and restored."""

from __future__ import annotations

import gc
import sys
import threading

import pytest

from hidden_geometry._lazy import collection_paused, lazy_getattr


@pytest.fixture
def collector_on():
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_paused_inside_and_restored(collector_on):
    with collection_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with collection_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # a caller's disabled collector stays disabled
    finally:
        gc.enable()


def test_nested_blocks_restore_at_the_outermost(collector_on):
    with collection_paused():
        with collection_paused():
            pass
        assert not gc.isenabled()
    assert gc.isenabled()


def test_an_exception_restores_the_collector(collector_on):
    with pytest.raises(RuntimeError):
        with collection_paused():
            raise RuntimeError("boom")
    assert gc.isenabled()


def test_overlapping_threads_restore_when_the_last_ends(collector_on):
    # Thread A enters, thread B enters, A leaves (the collector must stay paused: B is inside), B leaves.
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def a():
        with collection_paused():
            a_in.set()
            b_in.wait(5)
        a_out.set()

    def b():
        a_in.wait(5)
        with collection_paused():
            b_in.set()
            a_out.wait(5)
            seen["after_a"] = gc.isenabled()

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen["after_a"] is False
    assert gc.isenabled()


def test_lazy_import_runs_with_the_collector_paused(tmp_path, monkeypatch, collector_on):
    package = tmp_path / "lazy_probe_pkg"
    package.mkdir()
    (package / "__init__.py").write_text(
        "from hidden_geometry._lazy import lazy_getattr\n__getattr__ = lazy_getattr(__name__, {'value': 'heavy'})\n")
    (package / "heavy.py").write_text("import gc\nvalue = gc.isenabled()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        import lazy_probe_pkg

        assert lazy_probe_pkg.value is False  # the submodule saw the collector paused while it was imported
        assert gc.isenabled()
    finally:
        for name in ("lazy_probe_pkg", "lazy_probe_pkg.heavy"):
            sys.modules.pop(name, None)


def test_names_that_equal_submodules_are_refused():
    with pytest.raises(ValueError, match="equal submodule names"):
        lazy_getattr("pkg", {"heavy": "heavy"})
