"""Fixtures for the probe's tests: synthetic states with known answers, and a real MiniLM export.

The MiniLM export runs ``padlens export`` in a subprocess, so torch never enters this process.
"""
from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import ROOT, run_padlens


@pytest.fixture(scope="session")
def minilm_export(tmp_path_factory):
    """all-MiniLM-L6-v2 exported in fp32 with every layer (``padlens export minilm-l6``)."""
    out = tmp_path_factory.mktemp("probe-minilm") / "minilm"
    proc = run_padlens("export", "minilm-l6", "-o", out, "--precision", "fp32", cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture
def grouped():
    """``grouped(texts, per_text, dims)`` -> (rng, X [n, D] noise, groups [n], test mask [n])."""

    def make(texts: int = 160, per_text: int = 4, dims: int = 24, seed: int = 0):
        rng = np.random.default_rng(seed)
        groups = np.repeat(np.arange(texts), per_text)
        test = np.isin(groups, rng.permutation(texts)[: texts // 4])
        X = rng.normal(size=(groups.size, dims))
        return rng, X, groups, test

    return make
