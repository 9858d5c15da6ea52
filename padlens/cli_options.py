"""Options every command shares: the input options (``run_options``), ``--json/--html/--junit`` targets, the
progress bar, and the one map from the library's parameter names to the flags users type (``as_flags``)."""
from __future__ import annotations

import contextlib
import functools
import json as jsonlib
import logging
import re
from dataclasses import dataclass
from typing import Callable, Iterator

import click

from padlens.errors import BadInput
from padlens.fsio import atomic_write, check_file_target

log = logging.getLogger(__name__)

_HELP = {
    "json": "Also write the results as JSON to FILE.",
    "html": "Also write a self-contained HTML report with plots to FILE (needs padlens[report]).",
    "junit": "Also write JUnit XML (one testcase per check) to FILE.",
}


@dataclass(frozen=True)
class OutputTargets:
    """Where a command writes its results besides the terminal (None: not asked for).

    Attributes:
        json: the ``--json`` file.
        html: the ``--html`` file.
        junit: the ``--junit`` file.
    """

    json: str | None = None
    html: str | None = None
    junit: str | None = None

    def check(self) -> None:
        """Refuse a target that cannot be written, and a missing report extra, before any work."""
        for option in ("json", "html", "junit"):
            path = getattr(self, option)
            if path is not None:
                check_file_target(path, f"--{option}")
        if self.html is not None:
            from padlens.inspector.report.html import check_available

            check_available()

    def write_json(self, doc: dict) -> None:
        """Write ``doc`` to the ``--json`` file, atomically (nothing when not asked)."""
        if self.json is not None:
            atomic_write(self.json, jsonlib.dumps(doc, indent=2, allow_nan=False) + "\n")
            log.info("wrote %s", self.json)

    def write_junit(self, xml: str) -> None:
        """Write ``xml`` to the ``--junit`` file, atomically (nothing when not asked)."""
        if self.junit is not None:
            atomic_write(self.junit, xml)
            log.info("wrote %s", self.junit)


def output_options(json: bool = True, html: bool = True, junit: bool = False) -> Callable:
    """Add the chosen ``--json/--html/--junit FILE`` options to a command.

    The command receives one ``outputs: OutputTargets`` argument, already checked
    (every target writable, the report extra present for ``--html``) before it runs.
    """
    chosen = [name for name, wanted in (("json", json), ("html", html), ("junit", junit)) if wanted]

    def decorate(func: Callable) -> Callable:
        @functools.wraps(func)
        def command(*args, **kwargs):
            outputs = OutputTargets(**{name: kwargs.pop(f"{name}_file", None) for name in chosen})
            outputs.check()
            return func(*args, outputs=outputs, **kwargs)

        for name in reversed(chosen):
            command = click.option(f"--{name}", f"{name}_file", metavar="FILE", help=_HELP[name])(command)
        return command

    return decorate


def is_quiet(ctx: click.Context | None) -> bool:
    """True under ``padlens -q``."""
    return bool(ctx is not None and (ctx.obj or {}).get("quiet"))


@contextlib.contextmanager
def progress_bar(ctx: click.Context | None, total: int | None = None,
                 unit: str = "texts") -> Iterator[Callable[[int], None] | None]:
    """The library's ``progress`` callback as a tqdm bar on stderr: None with ``-q`` or
    without a terminal; the bar is cleared when the block ends, whatever happens in it."""
    from padlens import progress

    with progress.progress_bar(is_quiet(ctx), total, unit) as bar:
        yield bar


def count_texts_or_none(texts_file: str | None) -> int | None:
    """The number of texts in ``texts_file`` for a bar's total (None when unknown or unreadable:
    the command reports a bad file itself)."""
    if texts_file is None:
        return None
    from padlens.inspector.inputs.texts import count_texts

    try:
        return count_texts(texts_file)
    except BadInput:
        return None


PARAMETER_FLAGS = {"max_length": "--max-length", "batch_size": "--batch-size", "threads": "--threads",
                   "workers": "--workers", "ray_address": "--ray-address", "keep_text": "--keep-text",
                   "per_text": "--per-text", "padding_side": "--padding-side", "engine": "--engine"}
"""The library names parameters in its messages (``max_length must be at least 2``); the CLI says the flag."""

_PARAMETER = re.compile(r"(?<![\w-])(" + "|".join(PARAMETER_FLAGS) + r")(?= must| needs| \d)")
_ENGINE_RAY = re.compile(r"""\bengine=["']ray["']""")


def as_flags(message: str) -> str:
    """``max_length must be at least 2`` -> ``--max-length must be at least 2``; ``engine="ray"`` ->
    ``--engine ray``: a library message as the command line's user reads it."""
    message = _PARAMETER.sub(lambda m: PARAMETER_FLAGS[m.group(1)], message)
    return _ENGINE_RAY.sub("--engine ray", message)
