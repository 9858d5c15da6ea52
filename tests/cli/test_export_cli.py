"""`padlens export` and `padlens models` from the command line.

Bad input runs in this process (it must fail before torch is imported); real exports run
in a subprocess, because the inspector's tests need this process free of torch.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from padlens.cli import main
from padlens.exporter import deps

BUILDER = Path(__file__).resolve().parent.parent / "exporter" / "tiny_models.py"


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def padlens(*argv: str, code: str | None = None) -> subprocess.CompletedProcess:
    args = ["-c", code, *argv] if code else ["-m", "padlens", *argv]
    return subprocess.run([sys.executable, *args], capture_output=True, text=True)


def assert_one_error_line(err: str, fragment: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and fragment in lines[0], err


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("tiny-src")
    subprocess.run([sys.executable, str(BUILDER), str(base), "bert"], check=True, capture_output=True)
    return base / "bert"


@pytest.fixture
def gpt2(tmp_path) -> Path:
    folder = tmp_path / "gpt2"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 2}))
    return folder


@pytest.mark.parametrize("source,fragment", [
    ("no-such-model", "unknown recipe or path 'no-such-model'"),
    ("./missing/folder", "unknown recipe or path"),
])
def test_unknown_recipe_or_path_fails_with_one_error_line_and_writes_nothing(capsys, tmp_path, source, fragment):
    code, out, err = cli(capsys, "export", source, "-o", str(tmp_path / "out"))
    assert code == 2 and out == ""
    assert_one_error_line(err, fragment)
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_is_not_a_hugging_face_model_is_refused(capsys, tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "model.onnx").write_bytes(b"x")
    code, _, err = cli(capsys, "export", str(tmp_path / "src"), "-o", str(tmp_path / "out"))
    assert code == 2
    assert_one_error_line(err, "is not a Hugging Face model folder")
    assert not (tmp_path / "out").exists()


def test_an_unsupported_architecture_is_refused_naming_the_supported_ones(capsys, tmp_path, gpt2):
    code, _, err = cli(capsys, "export", str(gpt2), "-o", str(tmp_path / "out"))
    assert code == 2
    assert_one_error_line(err, "'gpt2' cannot be exported as an encoder; supported: bert, distilbert, electra")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("content,fragment", [(None, "not found"), ("\n  \n", "is empty")])
def test_a_missing_or_empty_calibration_file_is_refused(capsys, tmp_path, content, fragment):
    texts = tmp_path / "cal.txt"
    if content is not None:
        texts.write_text(content)
    code, _, err = cli(capsys, "export", "minilm-l6", "-o", str(tmp_path / "out"), "--calibration-texts", str(texts))
    assert code == 2
    assert_one_error_line(err, fragment)
    assert not (tmp_path / "out").exists()


def test_a_non_empty_output_folder_is_refused_without_force(capsys, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code, _, err = cli(capsys, "export", "minilm-l6", "-o", str(out))
    assert code == 2
    assert_one_error_line(err, "is not empty; pass --force")
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_without_the_export_extra_the_error_says_how_to_install_it(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(deps, "find_spec", lambda name: None if name == "torch" else object())
    code, _, err = cli(capsys, "export", "minilm-l6", "-o", str(tmp_path / "out"))
    assert code == 2
    assert err.strip() == "Error: padlens export needs the export extra: pip install 'padlens[export]'"


@pytest.mark.parametrize("command", ["export", "models"])
def test_help_shows_an_example(capsys, command):
    code, out, _ = cli(capsys, command, "--help")
    assert code == 0 and "Example" in out and f"padlens {command}" in out


def test_models_lists_every_recipe_with_architecture_layers_hidden_pooling_and_source(capsys):
    code, out, _ = cli(capsys, "models")
    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith("minilm-l6 "))
    assert row.split()[:5] == ["minilm-l6", "bert", "6", "384", "mean+norm"]
    for name in ("bert-base-uncased", "distilbert-base-uncased", "roberta-base", "xlm-roberta-base",
                 "all-mpnet-base-v2", "electra-base-discriminator"):
        assert name in out
    assert "minilm-l6: The demo's default model" in out


def test_models_json_is_one_object_per_recipe(capsys):
    code, out, _ = cli(capsys, "models", "--json")
    recipes = {r["name"]: r for r in json.loads(out)}
    assert code == 0 and recipes["minilm-l6"]["hub_id"] == "sentence-transformers/all-MiniLM-L6-v2"


@pytest.mark.slow  # an Optimum export
def test_chosen_precisions_and_calibration_texts_are_what_gets_written(tiny_bert, tmp_path):
    texts = tmp_path / "cal.txt"
    texts.write_text("the cat sat on the mat\n\na dog sat\nwhere is the train station\n")
    out = tmp_path / "deep" / "out"
    proc = padlens("export", str(tiny_bert), "-o", str(out), "--precision", "int8-static",
                   "--precision", "fp32", "--calibration-texts", str(texts))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.glob("*.onnx")) == ["model.int8-static.onnx", "model.onnx"]
    doc = json.loads((out / "padlens.json").read_text())
    assert list(doc["precisions"]) == ["fp32", "int8-static"]
    assert doc["calibration"]["source"] == "user" and doc["calibration"]["texts"] == 3
    assert "exporting fp32…" in proc.stderr and "quantizing int8-static…" in proc.stderr
    assert "model.int8-static.onnx" in proc.stdout and "held-out" in proc.stdout


@pytest.mark.slow  # an Optimum export
def test_force_replaces_a_non_empty_folder_and_quiet_hides_progress(tiny_bert, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    proc = padlens("-q", "export", str(tiny_bert), "-o", str(out), "--force", "--precision", "fp16")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert sorted(p.name for p in out.glob("*.onnx")) == ["model.fp16.onnx"]
    assert not (out / "stale.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


@pytest.mark.slow  # an Optimum export
def test_fp32_off_by_more_than_the_tolerance_exits_1_and_creates_nothing(tiny_bert, tmp_path):
    code = ("import sys, padlens.exporter.validate as v; v.FP32_TOLERANCE = -1.0; "
            "from padlens.cli import main; main(sys.argv[1:])")
    out = tmp_path / "out"
    proc = padlens("export", str(tiny_bert), "-o", str(out), "--precision", "fp32", code=code)
    assert proc.returncode == 1
    assert_one_error_line(proc.stderr.split("validating…\n")[-1], "differs from PyTorch")
    assert list(tmp_path.iterdir()) == []
