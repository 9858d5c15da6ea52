"""`padlens quantize`: exit 0 written, 1 failed verification (nothing written unless --keep-anyway), 2 bad input."""
from __future__ import annotations

import json

import pytest

from padlens.exporter.quantize import run as quantize_run


def one_error_line(err: str, fragment: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and fragment in lines[0], err
    assert "Traceback" not in err


def test_quantize_writes_the_file_and_says_what_it_is_for(cli_run, user_copy, tmp_path):
    out = tmp_path / "m.onnx"
    code, stdout, _ = cli_run("quantize", user_copy("torchscript") / "model.onnx", "-o", out,
                              "--json", tmp_path / "r.json")
    assert code == 0 and out.is_file() and (tmp_path / "m.onnx.padlens.json").is_file()
    assert "PASS  padding_invariance" in stdout and "PASS  batch_neighbour_invariance" in stdout
    assert "pooled cosine vs source on 100 held-out texts" in stdout
    assert "use it for speed" in stdout
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["written"] is True and doc["scheme"] == "int8-static"


def test_weight_only_scheme_says_it_is_for_memory(cli_run, user_copy, tmp_path):
    code, stdout, _ = cli_run("quantize", user_copy("modernbert-optimum") / "model.onnx", "-o", tmp_path / "m.onnx",
                              "--scheme", "int4-weight")
    assert code == 0 and "use it for memory" in stdout


def test_under_the_floor_exits_1_and_writes_nothing(cli_run, user_copy, tmp_path, monkeypatch):
    monkeypatch.setitem(quantize_run.FLOORS, "int8-static", (1.5, 1.5))  # no file can reach it
    out = tmp_path / "m.onnx"
    code, stdout, _ = cli_run("quantize", user_copy("torchscript") / "model.onnx", "-o", out)
    assert code == 1 and not out.exists() and not (tmp_path / "m.onnx.padlens.json").exists()
    assert "not written" in stdout and "--keep-anyway" in stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["torchscript"]


def test_keep_anyway_writes_it_but_still_exits_1(cli_run, user_copy, tmp_path, monkeypatch):
    monkeypatch.setitem(quantize_run.FLOORS, "int8-static", (1.5, 1.5))
    out = tmp_path / "m.onnx"
    code, stdout, _ = cli_run("quantize", user_copy("torchscript") / "model.onnx", "-o", out, "--keep-anyway")
    assert code == 1 and out.is_file() and "kept although it failed" in stdout


@pytest.mark.parametrize("args, fragment", [
    (["{src}", "-o", "{tmp}/m.onnx", "--scheme", "int3"], "Invalid value for '--scheme'"),
    (["{tmp}/missing.onnx", "-o", "{tmp}/m.onnx"], "does not exist"),
    (["{src}", "-o", "{tmp}/nofolder/m.onnx"], "folder"),
    (["{src}", "-o", "{tmp}/m.txt"], "must be an .onnx file"),
    (["{src}", "-o", "{src}", "--force"], "is the source model"),
    (["{src}", "-o", "{tmp}/m.onnx", "--calibration-texts", "{tmp}/none.txt"], "none.txt"),
])
def test_bad_input_is_one_error_line_and_exit_2(cli_run, user_copy, tmp_path, args, fragment):
    src = user_copy("torchscript") / "model.onnx"
    before = src.read_bytes()
    code, _, err = cli_run("quantize", *[a.format(src=src, tmp=tmp_path) for a in args])
    assert code == 2
    one_error_line(err, fragment)
    assert src.read_bytes() == before and not (tmp_path / "m.onnx").exists()


def test_an_existing_output_needs_force(cli_run, user_copy, tmp_path):
    out = tmp_path / "m.onnx"
    out.write_bytes(b"mine")
    code, _, err = cli_run("quantize", user_copy("torchscript") / "model.onnx", "-o", out)
    assert code == 2 and out.read_bytes() == b"mine"
    one_error_line(err, "pass --force")


def test_a_quantized_source_is_refused(cli_run, zoo, tmp_path):
    code, _, err = cli_run("quantize", zoo("int8-dynamic") / "model.onnx", "-o", tmp_path / "m.onnx")
    assert code == 2
    one_error_line(err, "not fp32: quantize the fp32 file")


def test_help_shows_examples(cli_run):
    code, stdout, _ = cli_run("quantize", "--help")
    assert code == 0 and "padlens quantize folder/onnx/model.onnx" in stdout and "--keep-anyway" in stdout
