"""Exporter fixtures: tiny encoders of every architecture, built and exported once per session.

torch is imported only in the subprocess (tests/exporter/tiny_models.py): the inspector's
tests, later in the same pytest run, require that this process never imports it.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
BUILDER = HERE / "tiny_models.py"
ARCHITECTURES = ("bert", "distilbert", "electra", "mpnet", "roberta", "xlm-roberta")
PRECISIONS = ("fp32", "fp16", "int8-dynamic", "int8-static")
FILES = {"fp32": "model.onnx", "fp16": "model.fp16.onnx",
         "int8-dynamic": "model.int8-dynamic.onnx", "int8-static": "model.int8-static.onnx"}
LAYERS = 2


def run_builder(*args: str) -> None:
    proc = subprocess.run([sys.executable, str(BUILDER), *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"tiny_models.py {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")


class TinyExports:
    """Folders of the tiny source models and of their exports, one per architecture."""

    def __init__(self, base: Path):
        self.sources = base / "sources"
        self.exports = base / "exports"
        run_builder(str(self.sources), *ARCHITECTURES, "--export", str(self.exports))

    def export_dir(self, arch: str) -> Path:
        error = self.exports / f"{arch}.error"
        if error.exists():
            pytest.fail(f"exporting tiny {arch} failed: {error.read_text()}")
        return self.exports / arch

    def model(self, arch: str, precision: str) -> Path:
        return self.export_dir(arch) / FILES[precision]


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> TinyExports:
    """Every architecture exported once in all four precisions (one subprocess, ~30 s)."""
    return TinyExports(tmp_path_factory.mktemp("tiny"))
