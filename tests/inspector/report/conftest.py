"""Fixtures of the report tests: one real inspect and one audit of the tiny `padlens` export."""
from __future__ import annotations

import pytest

TEXTS = ["this is a sample sentence", "the cat sat on the mat", "trains leave at noon",
         "a kettle boils water quickly", "please close the door behind you",
         "my flight leaves at six tomorrow morning"]


@pytest.fixture(scope="session")
def tiny_export(zoo):
    return zoo("padlens")


@pytest.fixture(scope="session")
def inspected(tiny_export):
    from padlens.inspector.inspect import inspect

    return inspect([str(tiny_export)], texts=TEXTS, max_length=32)


@pytest.fixture(scope="session")
def audited(tiny_export):
    from padlens.inspector.audit import audit

    return audit([str(tiny_export)], texts=TEXTS[:4], max_length=32)


@pytest.fixture(scope="session")
def failing_audit(tiny_export, tmp_path_factory):
    """An audit that fails: a toy whose export reshapes [B, T, H] to [T, B, H] (rows mixed in a batch)."""
    from padlens.inspector.audit import audit
    from tests.inspector.audit import toys

    folder = toys.make("reshape-mix", tmp_path_factory.mktemp("toys") / "reshape-mix", tiny_export)
    return audit([str(folder)], texts=TEXTS[:4], max_length=32)
