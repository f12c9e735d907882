"""atomic_path: a reader sees the old file or the whole new one, never a part."""

from __future__ import annotations

import errno
import os

import pytest

from hidden_geometry.atomic import atomic_path, write_text_atomic
from hidden_geometry.errors import InputError


def test_success_renames_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    write_text_atomic(target, "done\n")
    assert target.read_text() == "done\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]


def test_failure_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_temporary_keeps_the_target_suffix(tmp_path):
    with atomic_path(tmp_path / "a.npy") as tmp:
        assert tmp.suffix == ".npy"
        tmp.write_bytes(b"x")


def test_permissions_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "shared.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "shared.txt").stat().st_mode & 0o777 == 0o644


def test_full_disk_is_a_one_line_input_error(tmp_path):
    target = tmp_path / "big.bin"
    with pytest.raises(InputError, match="no space left on device"):
        with atomic_path(target):
            raise OSError(errno.ENOSPC, "No space left on device")
    assert list(tmp_path.iterdir()) == []
