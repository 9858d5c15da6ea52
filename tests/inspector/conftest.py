"""The inspector's tests run with torch, optimum and transformers' modelling code blocked.

Tiny models are built in a subprocess (tests/fixtures/build.py); in this process any
attempt to import them raises, so an accidental dependency fails every test.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fixtures"))
from noheavy import BlockHeavyImports, is_blocked  # noqa: E402


@pytest.fixture(autouse=True, scope="package")
def _no_torch():
    already = sorted(m for m in sys.modules if is_blocked(m))
    if already:
        pytest.fail(
            f"{already[:3]} were imported before the inspector tests ran, so blocking them "
            "proves nothing: test modules must import torch lazily, and tests/inspector runs first"
        )
    finder = BlockHeavyImports()
    sys.meta_path.insert(0, finder)
    yield
    sys.meta_path.remove(finder)
