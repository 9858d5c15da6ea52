"""`padlens inspect` as users run it: a subprocess of `python -m padlens`."""
from __future__ import annotations

import json
import shutil

import onnxruntime as ort
import pytest

from tests.conftest import run_padlens

SENTENCE = "this is a sample sentence"


padlens = run_padlens


@pytest.fixture(scope="module")
def export(zoo):
    return zoo("padlens")


def test_inspect_prints_a_table_of_every_layer(export, tmp_path):
    proc = padlens("inspect", export, "--text", SENTENCE, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for word in ("pad_pad_cos", "pad_real_cos", "pad_norm", "real_norm", "0 emb", "pooling", "[1]"):
        assert word in out
    assert "padded to 64" in out     # the default 128 stops at the tiny model's 64 positions
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "Traceback" not in proc.stderr


def test_json_file_holds_the_design_keys(export, tmp_path):
    target = tmp_path / "pads.json"
    proc = padlens("inspect", export, "--text", SENTENCE, "--text", "the cat sat on the mat",
                   "--max-length", "32", "--padding-side", "left", "--json", target, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(target.read_text())
    (run,) = data["runs"]
    assert {"model", "precision", "provider", "layers"} <= set(run)
    assert [layer["index"] for layer in run["layers"]] == [0, 1, 2]
    assert {"index", "tensor", "pad_pad_cos", "pad_real_cos", "pad_norm", "real_norm"} <= set(run["layers"][0])
    assert data["max_length"] == 32 and data["padding_side"] == "left" and data["texts_count"] == 2
    assert "pad_pad_cos" in proc.stdout


def test_two_providers_show_side_by_side(export, tmp_path):
    proc = padlens("inspect", export, "--text", SENTENCE, "--provider", "cpu",
                   "--provider", "CPUExecutionProvider", "--pad-to", "longest", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "[1]" in proc.stdout and "[2]" in proc.stdout
    assert "no text has pads" in proc.stdout


def test_help_shows_examples(tmp_path):
    proc = padlens("inspect", "--help", cwd=tmp_path)
    assert proc.returncode == 0
    assert "Examples:" in proc.stdout and "--texts FILE" in proc.stdout and "--json FILE" in proc.stdout


def _bare_onnx(export, tmp_path):
    folder = tmp_path / "bare"
    folder.mkdir(exist_ok=True)
    shutil.copy(export / "model.onnx", folder / "model.onnx")
    return folder / "model.onnx"


BAD = {
    "missing model": (lambda e, t: [t / "nope.onnx", "--text", SENTENCE], "does not exist"),
    "empty texts file": (lambda e, t: [e, "--texts", _empty(t)], "no texts"),
    "missing texts file": (lambda e, t: [e, "--texts", t / "none.txt"], "not found"),
    "unknown provider": (lambda e, t: [e, "--text", SENTENCE, "--provider", "bogus"], "unknown provider"),
    "max length beyond positions": (lambda e, t: [e, "--text", SENTENCE, "--max-length", "65"], "position"),
    "max length too small": (lambda e, t: [e, "--text", SENTENCE, "--max-length", "1"], "max-length"),
    "bad batch size": (lambda e, t: [e, "--text", SENTENCE, "--batch-size", "0"], "batch-size"),
    "bare onnx without tokenizer": (lambda e, t: [_bare_onnx(e, t), "--text", SENTENCE], "tokenizer"),
}


def _empty(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("")
    return path


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_error_line_exit_2_and_nothing_written(export, tmp_path, case):
    make_args, needle = BAD[case]
    target = tmp_path / "out.json"
    kept = tmp_path / "kept.json"
    kept.write_text("old")
    for out in (target, kept):
        proc = padlens("inspect", *make_args(export, tmp_path), "--json", out, cwd=tmp_path)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error:"), proc.stderr
        assert needle in lines[0]
    assert not target.exists()
    assert kept.read_text() == "old"


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="cuda is available here")
def test_an_unavailable_provider_is_refused(export, tmp_path):
    proc = padlens("inspect", export, "--text", SENTENCE, "--provider", "cuda", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("Error: provider cuda") and "Traceback" not in proc.stderr


def test_json_into_a_missing_folder_fails_before_any_work(export, tmp_path):
    proc = padlens("inspect", export, "--text", SENTENCE, "--json", tmp_path / "no" / "x.json", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith("Error: --json ") and "does not exist" in proc.stderr
