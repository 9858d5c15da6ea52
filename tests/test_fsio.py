"""Atomic writes leave files with the mode a plain open() or mkdir() would give."""
from __future__ import annotations

import os
import stat

import pytest

from padlens.errors import BadInput
from padlens.fsio import atomic_dir, atomic_path, atomic_write


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_write_gives_the_umask_mode_not_a_private_one(tmp_path, umask_022):
    assert _mode(atomic_write(tmp_path / "a.json", "{}")) == 0o644


def test_atomic_path_gives_the_umask_mode(tmp_path, umask_022):
    with atomic_path(tmp_path / "b.npy") as tmp:
        tmp.write_bytes(b"x")
    assert _mode(tmp_path / "b.npy") == 0o644


def test_atomic_dir_gives_the_umask_mode_and_replaces_only_on_success(tmp_path, umask_022):
    dest = tmp_path / "out"
    with atomic_dir(dest) as tmp:
        (tmp / "f").write_text("1")
    assert _mode(dest) == 0o755 and (dest / "f").read_text() == "1"
    with pytest.raises(RuntimeError), atomic_dir(dest, force=True) as tmp:
        (tmp / "f").write_text("2")
        raise RuntimeError("boom")
    assert (dest / "f").read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_non_empty_folder_is_refused_without_force(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep").write_text("mine")
    with pytest.raises(BadInput, match="not empty; pass force=True"), atomic_dir(tmp_path / "out"):
        pass
    assert (tmp_path / "out" / "keep").read_text() == "mine"
