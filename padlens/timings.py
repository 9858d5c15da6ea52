"""Per-stage timings of an inspection, logged at INFO (shown with ``-v``)."""
from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def fmt_count(n: float) -> str:
    """``1234567`` -> ``1.23M``; ``12345`` -> ``12.3k``; small numbers as they are."""
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.3g}{suffix}"
    return f"{n:.0f}" if float(n).is_integer() else f"{n:.3g}"


def _rate(count: float, seconds: float) -> str:
    return f"{fmt_count(count / seconds)} tokens/s" if seconds > 0 and count else "-"


def stage_timings(result) -> list[str]:
    """Per-stage lines for an InspectResult: tokenize, then run and metrics per run, with
    seconds and real tokens per second (padded positions per second for the run)."""
    timings = result.settings.timings
    tokens = max((r.n_tokens for r in result.runs), default=0)
    tokenize = timings.get("tokenize", 0.0)
    lines = [f"tokenize  {tokenize:7.2f} s  {_rate(tokens, tokenize)}"]
    for i, run in enumerate(result.runs, 1):
        lines.extend(_run_lines(i, run))
    if "total" in timings:
        lines.append(f"total     {timings['total']:7.2f} s  {result.texts_count} texts")
    return lines


def _run_lines(i: int, run) -> list[str]:
    t = run.timings
    positions = run.n_tokens + run.n_pad_tokens
    lines = []
    for stage, key in (("run", "forward"), ("metrics", "metrics")):
        seconds = float(t.get(key, 0.0))
        extra = f" ({fmt_count(positions / seconds)} positions/s)" if stage == "run" and seconds > 0 else ""
        lines.append(f"{stage:<8}  {seconds:7.2f} s  {_rate(run.n_tokens, seconds)}{extra}  [{i}] {run.label}")
    if t.get("load"):
        lines.append(f"load      {t['load']:7.2f} s  [{i}] {run.label}")
    return lines


def log_timings(result, logger: logging.Logger | None = None) -> None:
    """Log ``stage_timings`` at INFO (shown with ``-v``)."""
    logger = logger or log
    for line in stage_timings(result):
        logger.info("timing: %s", line)
