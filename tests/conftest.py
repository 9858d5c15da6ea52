"""Shared fixtures: tiny encoders built in a torch subprocess, cached per session; the one
way tests run the ``padlens`` command; and a skip for tests that need a CPU-only onnxruntime."""
from __future__ import annotations

import os
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


def run_padlens(*args, cwd, timeout: int = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m padlens ARGS`` in ``cwd``, as a user runs it (text output captured);
    ``env`` adds variables to the inherited environment."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "padlens", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def onnxruntime_has_cuda() -> bool:
    """True when a GPU build of onnxruntime is installed (it lists CUDAExecutionProvider)."""
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.fixture
def cpu_only_onnxruntime() -> None:
    """Skip a test that relies on ONNX Runtime dropping CUDA: a GPU build keeps it."""
    if onnxruntime_has_cuda():
        pytest.skip("a GPU build of onnxruntime is installed: it does not drop CUDAExecutionProvider")


@pytest.fixture
def cli_run(capsys):
    """``cli_run(*args) -> (exit_code, stdout, stderr)`` of ``padlens ARGS`` in this process."""
    from padlens.cli import main

    def run(*args):
        with pytest.raises(SystemExit) as exc:
            main([str(a) for a in args])
        out, err = capsys.readouterr()
        return exc.value.code, out, err

    return run


@pytest.fixture(scope="session")
def zoo(tmp_path_factory) -> ModelZoo:
    """``zoo("torchscript")`` -> folder with model.onnx and a tokenizer."""
    return ModelZoo(tmp_path_factory.mktemp("zoo"))


def pytest_collection_modifyitems(session, config, items):
    """Run tests/inspector first: it blocks torch, which later tests may import in-process."""
    inspector = ROOT / "tests" / "inspector"
    items.sort(key=lambda item: 0 if inspector in Path(str(item.path)).parents else 1)
