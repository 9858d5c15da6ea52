"""Fixtures for the audit's tests: hand-built toy encoders beside the zoo's tokenizer."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.inspector.audit import toys


@pytest.fixture(scope="session")
def toy(zoo, tmp_path_factory):
    """``toy("leaky")`` -> folder with model.onnx and a tokenizer (built once per session)."""
    base = tmp_path_factory.mktemp("toys")
    cache: dict[str, Path] = {}

    def make(kind: str) -> Path:
        if kind not in cache:
            cache[kind] = toys.make(kind, base / kind, zoo("padlens"))
        return cache[kind]

    return make


@pytest.fixture(scope="session")
def tokenizer_dir(zoo) -> Path:
    return zoo("padlens")
