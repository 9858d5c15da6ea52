"""Helpers for CLI tests that run `padlens` in-process."""
from __future__ import annotations

import pytest

from padlens.cli import main


@pytest.fixture
def cli_run(capsys):
    """``cli_run(*args) -> (exit_code, stdout, stderr)`` of ``padlens ARGS`` in this process."""

    def run(*args):
        with pytest.raises(SystemExit) as exc:
            main([str(a) for a in args])
        out, err = capsys.readouterr()
        return exc.value.code, out, err

    return run
