"""Errors padlens raises on purpose; the CLI turns them into `Error: …` and an exit code.

An error carries the parameters it is about as data (``Param``), so that each reader names them
in its own words: the library as keywords (``max_length must be at least 2``, ``pass
allow_fallback=True``), the command line as the flags of the command that ran (``--max-length
must be at least 2``, ``pass --allow-fallback``), read from click's own parameter table.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Union


@dataclass(frozen=True)
class Param:
    """A parameter named in a message, with the value (or placeholder) shown beside it.

    Attributes:
        name: the library's keyword (``max_length``); the CLI finds the flag whose click parameter
            has this name (``--max-length``).
        value: a value the user gave or should give (``64``, ``"ray"``, True); None: none shown.
        meta: a placeholder or a path shown as it is (``PATH``, ``out.txt``), when ``value`` is None.
        cli_meta: ``meta`` as the command line spells it, when it differs (``NAME,...``).
    """

    name: str
    value: object = None
    meta: str | None = None
    cli_meta: str | None = None

    def __str__(self) -> str:  # the library's words
        if self.value is not None:
            shown = f'"{self.value}"' if isinstance(self.value, str) else str(self.value)
            return f"{self.name}={shown}"
        return f"{self.name}={self.meta}" if self.meta is not None else self.name

    def as_flag(self, flag: str) -> str:
        """The command line's words, with ``flag`` the option the user types for this parameter."""
        if self.value is True:
            return flag
        if self.value is not None:
            return f"{flag} {self.value}"
        shown = self.cli_meta if self.cli_meta is not None else self.meta
        return f"{flag} {shown}" if shown is not None else flag


Part = Union[str, Param]
#: how a reader names a parameter: the library's ``str``, or the CLI's flag
Namer = Callable[[Param], str]


def words(parts: Iterable[object], namer: Namer = str) -> str:
    """Text and parameters joined into one line, each parameter named by ``namer``."""
    text = "".join(namer(p) if isinstance(p, Param) else str(p) for p in parts)
    return " ".join(text.split())


class PadlensError(Exception):
    """Base of every error padlens raises for bad input or a failed promise.

    ``PadlensError("must be at least 2, got 1", parameter="max_length")`` is about one parameter,
    named first; ``PadlensError("the batch has 70: pass ", Param("max_length", 64), " or less")``
    names parameters where they stand (text and ``Param`` pieces, joined as they are). The CLI
    prints ``Error: <message>`` on one line, parameters as flags, and exits with ``exit_code``.
    Any other exception is a bug and keeps its traceback.

    Attributes:
        parameter: the name of the parameter the error is about (the first named), or None.
    """

    exit_code = 2

    def __init__(self, *parts: object, parameter: str | None = None):
        super().__init__(*parts)
        self._subject = parameter if parameter is not None and not _params(parts) else None
        named = [p.name for p in _params(parts)]
        self.parameter = parameter if parameter is not None else (named[0] if named else None)

    @property
    def parts(self) -> tuple[object, ...]:
        """The message as text and ``Param`` pieces (the subject parameter first, when given)."""
        subject = getattr(self, "_subject", None)
        return ((Param(subject), " ") if subject else ()) + tuple(self.args)

    @property
    def parameters(self) -> list[str]:
        """Every parameter the message names, in order."""
        return [p.name for p in _params(self.parts)]

    def message(self, namer: Namer = str) -> str:
        """The message on one line, each parameter named by ``namer`` (default: the library's keyword)."""
        return words(self.parts, namer)

    def __str__(self) -> str:  # one line, always
        return self.message()

    def __reduce__(self):  # pickled across processes (Ray workers) with its parameter
        return _rebuild, (type(self), self.args, getattr(self, "_subject", None))


def _rebuild(cls: type, args: tuple, subject: str | None) -> PadlensError:
    return cls(*args, parameter=subject)


def _params(parts: Iterable[object]) -> list[Param]:
    return [p for p in parts if isinstance(p, Param)]


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
