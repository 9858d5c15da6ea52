"""Tiny sentence-transformers folders (5.x and older layouts) and sentence-transformers' own
results on them, built once per session in a subprocess (tests/st/build.py imports torch)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import keep, zoo_store

BUILDER = Path(__file__).with_name("build.py")


@pytest.fixture(scope="session")
def st_models(tmp_path_factory, pytestconfig) -> dict[str, Path]:
    """``st_models["encoder" | "decoder" | "legacy" | "pooling"]`` -> the built folder (a copy of the
    one kept by tests/conftest.py's zoo store while build.py, tests/fixtures and the versions are unchanged)."""
    out = tmp_path_factory.mktemp("st") / "all"
    kept = zoo_store(pytestconfig, "st", (BUILDER,))
    if kept is not None and kept.is_dir():
        shutil.copytree(kept, out)
    else:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        proc = subprocess.run([sys.executable, str(BUILDER), "all", str(out)], capture_output=True, text=True,
                              env=env, timeout=900)
        if proc.returncode != 0:
            raise RuntimeError(f"building the sentence-transformers folders failed:\n{proc.stdout}\n{proc.stderr}")
        if kept is not None:
            keep(out, kept)
    return {p.name: p for p in out.iterdir() if p.is_dir()}


def reference(folder: Path, name: str = "auto") -> np.ndarray:
    """sentence-transformers' own embeddings of the folder's texts.txt (reference.npz)."""
    return np.load(folder / "reference.npz")[name]


def min_row_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """The smallest cosine between row i of ``a`` and row i of ``b`` (float64)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return float(cos.min())
