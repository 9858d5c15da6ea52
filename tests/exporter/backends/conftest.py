"""The torch backend's exports, built once per session in a subprocess (it imports torch; this process must not)."""
from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

BUILDER = Path(__file__).resolve().parents[1] / "tiny_models.py"
#: exported and validated by the torch backend on both lanes
BOTH_LANES = ("bert", "distilbert", "electra", "mpnet", "roberta", "xlm-roberta", "modernbert", "qwen3")
#: families only transformers 5 knows
TRANSFORMERS_5 = ("nomic_bert",)
LAYERS = 2


def transformers_major() -> int:
    return int(importlib.metadata.version("transformers").split(".")[0])


def needs_transformers_5(arch: str):
    """``arch`` as a parameter, skipped on the transformers 4.x lane (the tf5 lane of .ci/run runs it)."""
    return pytest.param(arch, marks=pytest.mark.skipif(
        transformers_major() < 5, reason=f"{arch} exists in transformers 5 only (run by .ci/run's transformers-5 lane)"))


ARCHITECTURES = [*BOTH_LANES, *(needs_transformers_5(a) for a in TRANSFORMERS_5)]


def build(base: Path, archs, *flags: str) -> None:
    proc = subprocess.run([sys.executable, str(BUILDER), str(base / "src"), *archs, "--export", str(base / "out"),
                           "--backend", "torch", *flags], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"tiny_models.py failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


class TorchExports:
    """Tiny models of each architecture this lane has, exported by ``--backend torch``."""

    def __init__(self, base: Path):
        self.base = base
        archs = [*BOTH_LANES, *(TRANSFORMERS_5 if transformers_major() >= 5 else ())]
        build(base, archs)

    def export_dir(self, arch: str) -> Path:
        error = self.base / "out" / f"{arch}.error"
        if error.exists():
            pytest.fail(f"exporting tiny {arch} with the torch backend failed: {error.read_text()}")
        return self.base / "out" / arch

    def source(self, arch: str) -> Path:
        return self.base / "src" / arch


@pytest.fixture(scope="session")
def torch_exports(tmp_path_factory) -> TorchExports:
    """BERT, Qwen3, ModernBERT (and nomic_bert on transformers 5) exported by the torch backend (~1 min)."""
    return TorchExports(tmp_path_factory.mktemp("torch-backend"))
