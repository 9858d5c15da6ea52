"""Errors padlens raises on purpose; the CLI turns them into `Error: …` and an exit code."""
from __future__ import annotations


class PadlensError(Exception):
    """Base of every error padlens raises for bad input or a failed promise.

    The CLI prints ``Error: <message>`` on one line and exits with ``exit_code``.
    Any other exception is a bug and keeps its traceback.
    """

    exit_code = 2

    def __str__(self) -> str:  # one line, always
        return " ".join(super().__str__().split())


class BadInput(PadlensError):
    """A path, option or file the user gave cannot be used."""


class MissingExtra(PadlensError):
    """An optional dependency group is not installed."""


class ModelLoadError(BadInput):
    """A model file is missing, unreadable, not ONNX, or not a token encoder."""


class LayersNotFound(BadInput):
    """No residual-stream layer outputs could be located in a graph."""


class ProviderError(BadInput):
    """An execution provider is unknown, unavailable, or was silently dropped."""


class ExportFailed(PadlensError):
    """An export ran but failed its validation (exit code 1)."""

    exit_code = 1
