"""Ctrl-C during an export or while writing output: exit 130, temporary files gone, targets untouched."""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from padlens import fsio
from tests.hardening.conftest import sigint_default, snapshot

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]


def start(args, cwd: Path, tmpdir: Path) -> subprocess.Popen:
    env = {**os.environ, "TMPDIR": str(tmpdir), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.Popen([sys.executable, "-m", "padlens", "-q", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=sigint_default)


def interrupt_when(proc: subprocess.Popen, appeared, timeout: float = 240) -> tuple[int, str]:
    """Send SIGINT once ``appeared()`` is true (a temporary file showed up); return (rc, stderr)."""
    deadline = time.monotonic() + timeout
    while not appeared():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"finished (rc {proc.returncode}) before its temporary file appeared:\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the temporary file never appeared")
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


def temporaries(folder: Path, name: str) -> list[Path]:
    return sorted(folder.glob(f".{name}.*"))


@pytest.fixture(scope="module")
def tiny_bert_source(tmp_path_factory) -> Path:
    """A tiny Hugging Face BERT folder (built by tests/exporter/tiny_models.py in a subprocess)."""
    base = tmp_path_factory.mktemp("src")
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "exporter" / "tiny_models.py"), str(base), "bert"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"building the tiny bert failed:\n{proc.stderr}")
    return base / "bert"


@pytest.mark.slow  # an Optimum export
def test_ctrl_c_during_export_exits_130_removes_the_temporary_folder_and_keeps_the_old_one(
        tiny_bert_source, tmp_path):
    work, tmpdir = tmp_path / "work", tmp_path / "tmpdir"
    work.mkdir()
    tmpdir.mkdir()
    (work / "out").mkdir()
    (work / "out" / "keep.txt").write_text("an earlier export\n")
    before = snapshot(work / "out")
    proc = start(["export", tiny_bert_source, "-o", "out", "--force"], work, tmpdir)
    rc, err = interrupt_when(proc, lambda: bool(temporaries(work, "out")))
    assert rc == 130, err
    assert err.strip().splitlines()[-1] == "Error: interrupted"
    assert "Traceback" not in err
    assert temporaries(work, "out") == []
    assert sorted(p.name for p in work.iterdir()) == ["out"]
    assert snapshot(work / "out") == before
    assert not any(p.name.startswith("padlens") for p in tmpdir.iterdir())


def test_ctrl_c_while_embed_streams_its_npy_exits_130_and_keeps_the_old_file(zoo, tmp_path):
    work, tmpdir = tmp_path / "work", tmp_path / "tmpdir"
    work.mkdir()
    tmpdir.mkdir()
    lines = [f"text number {i} about the cat that sat on the mat" for i in range(40000)]
    (work / "texts.txt").write_text("\n".join(lines) + "\n")
    (work / "emb.npy").write_bytes(b"an earlier run")
    before = snapshot(work)
    proc = start(["embed", zoo("padlens"), "--texts", "texts.txt", "-o", "emb.npy", "--batch-size", "8"],
                 work, tmpdir)
    rc, err = interrupt_when(proc, lambda: bool(temporaries(work, "emb.npy")))
    assert rc == 130, err
    assert err.strip().splitlines()[-1] == "Error: interrupted"
    assert "Traceback" not in err
    assert temporaries(work, "emb.npy") == []
    assert snapshot(work) == before
    assert not any(p.name.startswith("padlens") for p in tmpdir.iterdir())  # the session's temporary model


@pytest.fixture
def ctrl_c_on_rename(monkeypatch):
    """os.replace raises KeyboardInterrupt: the moment just before a write would land."""
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(fsio.os, "replace", interrupted)


def test_ctrl_c_during_atomic_write_removes_the_temporary_file_and_keeps_the_target(tmp_path, ctrl_c_on_rename):
    target = tmp_path / "report.json"
    target.write_text("old\n")
    with pytest.raises(KeyboardInterrupt):
        fsio.atomic_write(target, "new\n" * 1000)
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_ctrl_c_inside_atomic_path_removes_the_temporary_file_and_keeps_the_target(tmp_path):
    target = tmp_path / "emb.npy"
    target.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        with fsio.atomic_path(target) as tmp:
            tmp.write_bytes(b"half written")
            raise KeyboardInterrupt
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emb.npy"]


def test_ctrl_c_inside_atomic_dir_removes_the_temporary_folder_and_keeps_the_old_folder(tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "model.onnx").write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        with fsio.atomic_dir(dest, force=True) as tmp:
            (tmp / "model.onnx").write_bytes(b"half")
            raise KeyboardInterrupt
    assert (dest / "model.onnx").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_ctrl_c_while_atomic_dir_swaps_folders_restores_the_old_folder(tmp_path, monkeypatch):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "model.onnx").write_bytes(b"old")
    real_replace, calls = os.replace, []

    def second_rename_interrupted(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # old folder moved aside; Ctrl-C before the new one lands
            raise KeyboardInterrupt
        return real_replace(src, dst)

    monkeypatch.setattr(fsio.os, "replace", second_rename_interrupted)
    with pytest.raises(KeyboardInterrupt):
        with fsio.atomic_dir(dest, force=True) as tmp:
            (tmp / "model.onnx").write_bytes(b"new")
    assert (dest / "model.onnx").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
