"""A small progress bar for long runs (stderr, TTY only) and per-stage timings for -v."""
from __future__ import annotations

import logging
import os
import sys
import time
from typing import TextIO

log = logging.getLogger(__name__)

#: Batches that pass silently before the bar appears ("more than a few batches").
QUIET_BATCHES = 3
#: Seconds between redraws (a redraw per batch would slow tiny-model runs).
REDRAW_S = 0.1
BAR_WIDTH = 24


def fmt_count(n: float) -> str:
    """``1234567`` -> ``1.23M``; ``12345`` -> ``12.3k``; small numbers as they are."""
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.3g}{suffix}"
    return f"{n:.0f}" if float(n).is_integer() else f"{n:.3g}"


def fmt_seconds(s: float) -> str:
    """``75`` -> ``1:15``; ``3725`` -> ``1:02:05``."""
    s = max(int(round(s)), 0)
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def progress_line(done: int, total: int | None, elapsed: float, unit: str = "texts",
                  width: int = 80) -> str:
    """One line, at most ``width`` characters: bar (with a total), count, rate and ETA."""
    rate = done / elapsed if elapsed > 0 else 0.0
    speed = f"{fmt_count(rate)} {unit}/s" if rate else ""
    if total:
        frac = min(done / total, 1.0)
        fill = int(round(frac * BAR_WIDTH))
        eta = fmt_seconds((total - done) / rate) if rate and done < total else "0:00"
        line = (f"[{'#' * fill}{'.' * (BAR_WIDTH - fill)}] {frac:4.0%} {fmt_count(done)}/"
                f"{fmt_count(total)} {unit}  {speed}  eta {eta}")
    else:
        line = f"{fmt_count(done)} {unit}  {speed}  {fmt_seconds(elapsed)}"
    return line[:width - 1]


class ProgressBar:
    """A callable ``progress(done)`` for inspect/audit/embed: draws a bar on a terminal.

    Silent for the first ``QUIET_BATCHES`` calls (short runs never show a bar), when the
    stream is not a TTY, or when ``enabled`` is False (``--quiet``). ``close()`` clears the line.
    """

    def __init__(self, total: int | None = None, unit: str = "texts", stream: TextIO | None = None,
                 enabled: bool = True, quiet_batches: int = QUIET_BATCHES):
        self.stream = stream if stream is not None else sys.stderr
        self.total, self.unit, self.quiet_batches = total, unit, quiet_batches
        self.enabled = bool(enabled) and _is_tty(self.stream)
        self.calls, self.done, self.shown = 0, 0, False
        self.started = time.perf_counter()
        self._last_draw = 0.0

    def __call__(self, done: int) -> None:
        self.calls += 1
        self.done = int(done)
        if not self.enabled or self.calls <= self.quiet_batches:
            return
        now = time.perf_counter()
        if self.shown and now - self._last_draw < REDRAW_S and done != self.total:
            return
        self._last_draw = now
        line = progress_line(self.done, self.total, now - self.started, self.unit, _columns())
        self.stream.write("\r" + line + "\x1b[K")
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        """Erase the bar (the results print on a clean line)."""
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _is_tty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _columns() -> int:
    try:
        return max(40, os.get_terminal_size(sys.stderr.fileno()).columns)
    except (OSError, ValueError, AttributeError):
        return 80


def progress_for(quiet: bool, total: int | None = None, unit: str = "texts",
                 stream: TextIO | None = None) -> ProgressBar | None:
    """The bar for a command, or None when it would never draw (``--quiet`` or not a TTY)."""
    # An audit "run" is long: draw from the first one instead of after a few quiet batches.
    bar = ProgressBar(total, unit, stream, enabled=not quiet,
                      quiet_batches=0 if unit == "runs" else QUIET_BATCHES)
    return bar if bar.enabled else None


# ---------------------------------------------------------------- -v timings

def _rate(count: float, seconds: float) -> str:
    return f"{fmt_count(count / seconds)} tokens/s" if seconds > 0 and count else "-"


def stage_timings(result) -> list[str]:
    """Per-stage lines for an InspectResult: tokenize, then run and metrics per run, with
    seconds and real tokens per second (padded positions per second for the run)."""
    settings = getattr(result, "settings", {}) or {}
    timings = settings.get("timings", {})
    runs = list(getattr(result, "runs", []))
    tokens = max((r.n_tokens for r in runs), default=0)
    lines = [f"tokenize  {timings.get('tokenize', 0.0):7.2f} s  {_rate(tokens, timings.get('tokenize', 0.0))}"]
    for i, run in enumerate(runs, 1):
        t = run.timings
        positions = run.n_tokens + run.n_pad_tokens
        for stage, key in (("run", "forward"), ("metrics", "metrics")):
            seconds = float(t.get(key, 0.0))
            extra = f" ({fmt_count(positions / seconds)} positions/s)" if stage == "run" and seconds > 0 else ""
            lines.append(f"{stage:<8}  {seconds:7.2f} s  {_rate(run.n_tokens, seconds)}{extra}  [{i}] {run.label}")
        if t.get("load"):
            lines.append(f"load      {t['load']:7.2f} s  [{i}] {run.label}")
    if "total" in timings:
        lines.append(f"total     {timings['total']:7.2f} s  {result.texts_count} texts")
    return lines


def log_timings(result, logger: logging.Logger | None = None) -> None:
    """Log ``stage_timings`` at INFO (shown with ``-v``)."""
    logger = logger or log
    for line in stage_timings(result):
        logger.info("timing: %s", line)
