"""Fixtures for the hardening tests: a folder of good and bad inputs, snapshots, subprocess runs."""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_padlens
from tests.hardening import tiny


def sigint_default() -> None:
    """``preexec_fn`` of a process a test interrupts: Ctrl-C at its default, so Python makes it a
    KeyboardInterrupt. A shell without job control starts background jobs with SIGINT ignored, and a
    child inherits that (Python then keeps ignoring it): a test run launched with ``&`` would see the
    interrupted command finish with 0."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)

log = logging.getLogger(__name__)


def padlens(*args, cwd, timeout: int = 120) -> subprocess.CompletedProcess:
    """``python -m padlens ARGS`` in ``cwd``, as a user runs it."""
    return run_padlens(*args, cwd=cwd, timeout=timeout, env={"COLUMNS": "100"})


def snapshot(folder: Path) -> dict[str, tuple[int, int, str]]:
    """relative path -> (size, mtime_ns, sha1) of every file and link under ``folder``."""
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if path.is_dir() and not path.is_symlink():
            out[rel + "/"] = (0, 0, "dir")
            continue
        st = path.lstat()
        digest = hashlib.sha1(path.read_bytes()).hexdigest() if path.is_file() else "link"
        out[rel] = (st.st_size, st.st_mtime_ns, digest)
    return out


def _write_manifest(folder: Path, value) -> None:
    (folder / "padlens.json").write_text(value if isinstance(value, str) else json.dumps(value))


@pytest.fixture(scope="session")
def world(zoo, tmp_path_factory) -> Path:
    """A folder holding every bad input of the catalogue (and a good export dir beside them).

    Commands run with this folder as the working directory, so messages name short
    relative paths.
    """
    root = tmp_path_factory.mktemp("world")
    good = zoo("padlens")
    export = root / "export"
    shutil.copytree(good, export)
    (root / "empty").mkdir()
    (root / "notes.txt").write_text("hello there\n")
    _bad_models(root, good)
    _bad_manifests(root, good)
    _bad_texts(root)
    _bad_sources(root)
    return root


def _bad_models(root: Path, good: Path) -> None:
    tok = root / "tok"
    tiny.copy_tokenizer(good, tok)
    (tok / "model.onnx").write_bytes(b"this is not a model, just some words\n" * 20)
    (root / "tok" / "notonnx.onnx").write_bytes(b"\x00\xff\x13garbage" * 50)
    data = (good / "model.onnx").read_bytes()
    (tok / "truncated.onnx").write_bytes(data[: len(data) // 2])
    tiny.gather_only(tok / "float_input.onnx", float_input=True)
    tiny.gather_only(tok / "pooled.onnx", pooled=True)
    tiny.gather_only(tok / "no_layers.onnx")
    tiny.custom_op(tok / "custom_op.onnx")
    bare = root / "bare"
    bare.mkdir()
    shutil.copy(good / "model.onnx", bare / "model.onnx")
    small = root / "small_vocab"  # the zoo's tokenizer (~120 tokens) beside a 10-row table
    tiny.copy_tokenizer(good, small)
    import onnx

    from tests.inspector.audit import toys
    onnx.save(toys.build("honest", 10), str(small / "model.onnx"))
    (root / "notok").mkdir()
    (root / "notok" / "vocab.json").write_text("{}")
    badtok = root / "badtok"
    badtok.mkdir()
    (badtok / "tokenizer.json").write_text('{"version": "1.0", "model": 7}')


def _bad_manifests(root: Path, good: Path) -> None:
    cases = {"man_json": "{not json", "man_list": [1, 2], "man_noprec": {"precisions": {}},
             "man_nofile": {"precisions": {"fp32": {"bytes": 3}}},
             "man_escape": {"precisions": {"fp32": {"file": "../export/model.onnx"}}},
             "man_missing": {"precisions": {"fp32": {"file": "gone.onnx"}}}}
    for name, value in cases.items():
        folder = root / name
        tiny.copy_tokenizer(good, folder)
        _write_manifest(folder, value)


def _bad_texts(root: Path) -> None:
    texts = root / "texts"
    texts.mkdir()
    (texts / "empty.txt").write_text("")
    (texts / "blank.txt").write_text("\n   \n\t\n")
    (texts / "latin1.txt").write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    (texts / "broken.jsonl").write_text('{"text": "fine"}\n{"text": "oops"\n')
    (texts / "number.jsonl").write_text('{"text": 7}\n')
    (texts / "nofield.jsonl").write_text('{"body": "hi", "id": 1}\n')
    (texts / "array.jsonl").write_text('["hi"]\n')
    (texts / "nocol.csv").write_text("id,body\n1,hello\n")
    (texts / "short.csv").write_text("id,text\n1\n")
    (texts / "folder.txt").mkdir()


def _bad_sources(root: Path) -> None:
    (root / "not_hf").mkdir()
    (root / "not_hf" / "readme.md").write_text("weights elsewhere\n")
    (root / "gpt2").mkdir()
    (root / "gpt2" / "config.json").write_text(json.dumps(
        {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}))
    (root / "full").mkdir()
    (root / "full" / "keep.txt").write_text("mine\n")
    (root / "demo_dir").mkdir()
    (root / "demo_dir" / "thesis.tex").write_text("mine\n")
