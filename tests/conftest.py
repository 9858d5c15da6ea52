"""Shared fixtures: tiny encoders built in a torch subprocess, cached per session."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUILDER = ROOT / "tests" / "fixtures" / "build.py"


class ModelZoo:
    """Builds each tiny model style once per session (python tests/fixtures/build.py)."""

    def __init__(self, base: Path):
        self.base = base
        self.cache: dict[str, Path] = {}

    def __call__(self, style: str) -> Path:
        if style not in self.cache:
            out = self.base / style
            proc = subprocess.run([sys.executable, str(BUILDER), style, str(out)],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"building {style} failed:\n{proc.stdout}\n{proc.stderr}")
            self.cache[style] = out
        return self.cache[style]


@pytest.fixture(scope="session")
def zoo(tmp_path_factory) -> ModelZoo:
    """``zoo("torchscript")`` -> folder with model.onnx and a tokenizer."""
    return ModelZoo(tmp_path_factory.mktemp("zoo"))


def pytest_collection_modifyitems(session, config, items):
    """Run tests/inspector first: it blocks torch, which later tests may import in-process."""
    inspector = ROOT / "tests" / "inspector"
    items.sort(key=lambda item: 0 if inspector in Path(str(item.path)).parents else 1)
