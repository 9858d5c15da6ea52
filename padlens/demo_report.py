"""The demo's report stage: report.html from the demo's inspect and audit (run here if missing)."""
from __future__ import annotations

import logging
from typing import Callable

from padlens import demo
from padlens.demo import QUESTION_TEXT, DemoResult, _stage

log = logging.getLogger(__name__)

REPORT_NAME = "report.html"
#: Texts the report's own inspect uses when no earlier stage inspected: the question's
#: sentence and enough corpus lines for the pooling similarity matrices.
REPORT_TEXTS = 12


def _bar(progress: bool, total: int | None, unit: str):
    if not progress:
        return None
    from padlens.progress import progress_for

    return progress_for(False, total, unit)


def _inspect(result: DemoResult, progress: bool):
    from padlens.inspector.inspect import inspect
    from padlens.inspector.texts import default_corpus

    texts = [QUESTION_TEXT] + [t for t in default_corpus() if t != QUESTION_TEXT][:REPORT_TEXTS - 1]
    bar = _bar(progress, len(texts), "texts")
    try:
        return inspect([str(result.export_dir)], texts=texts, max_length=128, batch_size=len(texts),
                       progress=bar)
    finally:
        if bar is not None:
            bar.close()


def _audit(result: DemoResult, progress: bool):
    from padlens.inspector.audit import audit

    bar = _bar(progress, None, "runs")
    if bar is not None:
        bar.quiet_batches = 0
    try:
        return audit([str(result.export_dir)], progress=bar)
    finally:
        if bar is not None:
            bar.close()


def report_stage(result: DemoResult, say: Callable[[str], None], progress: bool) -> None:
    """Write ``report.html`` into the demo folder; inspect and audit first if no stage did."""
    from padlens.inspector.report import check_available, write_html

    check_available()
    if result.inspect is None:
        result.inspect = _stage(result, "report inspect", say, lambda: _inspect(result, progress))
    if result.audit is None:
        result.audit = _stage(result, "audit", say, lambda: _audit(result, progress))
    path = result.out_dir / REPORT_NAME
    _stage(result, "report", say, lambda: write_html(path, result.inspect, result.audit,
                                                      title="padlens demo: all-MiniLM-L6-v2"))
    result.files.append(path)


def register() -> None:
    """Append the report stage to the demo (once)."""
    if report_stage not in demo._EXTRA_STAGES:
        demo._EXTRA_STAGES.append(report_stage)


register()
