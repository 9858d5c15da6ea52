"""Fixtures for the probe's tests: synthetic states with known answers and short texts (the
real MiniLM export is tests/conftest.py's session-wide ``minilm_export``)."""
from __future__ import annotations

import json

import numpy as np
import pytest


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


WORDS = ("this is a sample sentence the of and to in for on with that it was as be by at from or an are "
         "not have has but what all were when we there can one which their model pad token cat dog sat "
         "mat padding text short long word").split()
FIRST = ("the", "a", "we", "cat", "dog", "this")


@pytest.fixture(scope="session")
def short_texts(tmp_path_factory):
    """A .jsonl of 120 short texts (2-10 words of the tiny models' vocabulary) with a ``topic``."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(120):
        words = [FIRST[i % len(FIRST)], *rng.choice(WORDS, size=int(rng.integers(1, 10)))]
        rows.append({"text": " ".join(words), "topic": ["animals", "text"][int(words[0] in ("cat", "dog"))]})
    f = tmp_path_factory.mktemp("probe-texts") / "texts.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return f


@pytest.fixture
def cli(cli_run):
    """``cli(*args) -> (exit code, stdout, stderr)``: tests/conftest.py's ``cli_run``."""
    return cli_run


@pytest.fixture
def no_sklearn(monkeypatch):
    """scikit-learn made unimportable (it and every submodule already loaded), probe_fit unloaded."""
    import sys

    for name in [m for m in sys.modules if m == "sklearn" or m.startswith("sklearn.")] + ["sklearn"]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "padlens.inspector.probe.fit", raising=False)
