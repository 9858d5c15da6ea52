"""The inspector's tests run with torch, optimum and transformers' modelling code blocked.

Tiny models are built in a subprocess (tests/fixtures/build.py); in this process any
attempt to import them raises, so an accidental dependency fails every test.
"""
from __future__ import annotations

import importlib.abc
import sys

import pytest

BLOCKED_PREFIXES = ("torch", "optimum", "transformers.modeling_", "transformers.models.")


def is_blocked(fullname: str) -> bool:
    if fullname in ("torch", "optimum") or fullname.startswith(("torch.", "optimum.")):
        return True
    if fullname.startswith("transformers."):
        leaf = fullname.rsplit(".", 1)[-1]
        return fullname.startswith("transformers.modeling_") or leaf.startswith("modeling_")
    return False


class BlockHeavyImports(importlib.abc.MetaPathFinder):
    """Raise ImportError for torch, optimum and transformers' modelling modules."""

    def find_spec(self, fullname, path=None, target=None):
        if is_blocked(fullname):
            raise ImportError(f"{fullname} is blocked: the inspector must not need it")
        return None


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
