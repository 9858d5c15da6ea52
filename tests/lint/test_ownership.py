"""Each dependency has one owner: ruff's banned-api (ruff.toml and the folders' own) enforces it."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def ruff() -> str:
    exe = Path(sys.executable).with_name("ruff")
    found = str(exe) if exe.exists() else shutil.which("ruff")
    if found is None:
        pytest.fail("ruff is not installed: it is part of the `test` extra")
    return found


def banned(source: str, as_file: str) -> list[str]:
    """The TID251 messages ruff gives ``source`` if it lived at ``as_file`` in the repository."""
    out = subprocess.run([ruff(), "check", "--no-cache", "--select", "TID251", "--output-format", "concise",
                          "--stdin-filename", as_file, "-"], input=source, capture_output=True,
                         text=True, cwd=ROOT)
    return [line for line in out.stdout.splitlines() if "TID251" in line]


@pytest.mark.parametrize(("source", "owner", "stranger"), [
    ("import torch\n", "exporter/validate.py", "inspector/runtime/encoder.py"),
    ("from transformers import AutoModel\n", "exporter/pipeline.py", "inspector/inputs/tokenize.py"),
    ("from optimum.exporters.onnx import main_export\n", "exporter/backends/optimum.py", "padlens/demo.py"),
    ("import onnxruntime as ort\nort.InferenceSession('m.onnx')\n", "inspector/runtime/session.py", "inspector/embed.py"),
    ("from onnxruntime.quantization import quantize_dynamic\n", "exporter/quantize/recipe.py", "exporter/precision.py"),
    ("import click\n", "padlens/cli_inspect.py", "inspector/inspect.py"),
    ("from matplotlib.figure import Figure\n", "inspector/report/plots.py", "inspector/report/html.py"),
    ("from sklearn.linear_model import Ridge\n", "inspector/probe/fit.py", "inspector/probe/run.py"),
    ("import ray\n", "inspector/ray/cluster.py", "inspector/inspect.py"),
])
def test_a_dependency_is_allowed_in_its_owner_and_banned_elsewhere(source, owner, stranger):
    assert banned(source, owner) == []
    messages = banned(source, stranger)
    assert messages, f"{stranger} may import what only {owner} owns"


def test_the_whole_tree_passes_the_linter():
    out = subprocess.run([ruff(), "check", "--no-cache", "."], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout[-3000:]
