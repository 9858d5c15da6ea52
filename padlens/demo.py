"""The demo: export all-MiniLM-L6-v2 in four precisions, inspect and audit it, write a report."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from padlens.errors import BadInput

if TYPE_CHECKING:  # the results' types; importing them here would load onnxruntime
    from padlens.inspector.audit import AuditResult
    from padlens.inspector.inspect import InspectResult
    from padlens.inspector.probe.run import ProbeResult

log = logging.getLogger(__name__)

DEMO_RECIPE = "minilm-l6"
QUESTION_TEXT = "this is a sample sentence"
REPORT_NAME = "report.html"
#: Texts of the report's inspection: the question's sentence and corpus lines.
REPORT_TEXTS = 12
#: Texts and states per text of the demo's short probe (the fp32 model, built-in corpus).
PROBE_TEXTS, PROBE_PER_TEXT = 200, 2


@dataclass
class DemoResult:
    """What the demo wrote and found.

    Attributes:
        out_dir: the demo's folder.
        export_dir: the export of minilm-l6 (four precisions).
        reused_export: True when an earlier demo's export was reused.
        files: every file the demo wrote, in the order written.
        question: the inspection of the question's sentence alone, padded to 128.
        inspect: the inspection behind the report (several texts) or None.
        audit: the audit of the four precisions (AuditResult) or None.
        probe: what one pad state of the fp32 model reveals per layer (ProbeResult), or None
            without scikit-learn.
        timings: seconds per stage.
    """

    out_dir: Path
    export_dir: Path
    reused_export: bool = False
    files: list[Path] = field(default_factory=list)
    question: InspectResult | None = None
    inspect: InspectResult | None = None
    audit: AuditResult | None = None
    probe: ProbeResult | None = None
    timings: dict[str, float] = field(default_factory=dict)


def _check_demo_dir(out: Path, force: bool) -> bool:
    """True when ``out`` holds an earlier demo export that can be reused."""
    if out.exists() and not out.is_dir():
        raise BadInput(f"{out} exists and is not a folder")
    if not out.is_dir() or not any(out.iterdir()):
        return False
    mine = {"minilm-l6", "inspect.json", "audit.json", "report.html", "audit.xml", "probe.json"}
    foreign = sorted(p.name for p in out.iterdir() if p.name not in mine and not p.name.startswith("."))
    if foreign and not force:
        raise BadInput(f"{out} holds files the demo did not write ({', '.join(foreign[:3])}); "
                       "choose another -o DIR or pass --force")
    return (out / DEMO_RECIPE / "padlens.json").is_file() and not force


def _stage(result: DemoResult, name: str, say: Callable[[str], None], fn: Callable[[], object]):
    say(f"[{name}] …")
    start = time.perf_counter()
    value = fn()
    result.timings[name] = time.perf_counter() - start
    say(f"[{name}] done in {result.timings[name]:.1f} s")
    return value


def run_demo(out_dir: str | Path = "padlens-demo", force: bool = False,
             say: Callable[[str], None] = log.info, progress: bool = True) -> DemoResult:
    """Export minilm-l6 (reusing an earlier demo export), inspect and audit it."""
    from padlens.inspector.report.html import check_available

    check_available()  # a missing matplotlib is said before a minute of export, not after
    out = Path(out_dir)
    reuse = _check_demo_dir(out, force)
    out.mkdir(parents=True, exist_ok=True)
    result = DemoResult(out_dir=out, export_dir=out / DEMO_RECIPE, reused_export=reuse)
    if reuse:
        say(f"[export] reusing {result.export_dir} (pass --force to export again)")
    else:
        from padlens.exporter import export

        _stage(result, "export", say, lambda: export(DEMO_RECIPE, result.export_dir, force=True))
        result.files.extend(sorted(p for p in result.export_dir.iterdir() if p.is_file()))
    for stage in STAGES:
        stage(result, say, progress)
    return result


def _write_json(result: DemoResult, name: str, data: dict) -> None:
    import json

    from padlens.fsio import atomic_write

    path = atomic_write(result.out_dir / name, json.dumps(data, indent=2) + "\n")
    result.files.append(path)


def question_stage(result: DemoResult, say: Callable[[str], None], progress: bool) -> None:
    """Inspect "this is a sample sentence" padded to 128 in the four precisions."""
    from padlens.inspector.inspect import inspect

    result.question = _stage(result, "inspect", say, lambda: inspect(
        [str(result.export_dir)], texts=[QUESTION_TEXT], max_length=128))
    _write_json(result, "inspect.json", result.question.to_dict())


def _with_bar(progress: bool, total: int | None, unit: str, fn: Callable):
    """``fn(bar)`` with a progress bar (None without a terminal or with -q), closed after."""
    from padlens.progress import progress_bar

    with progress_bar(not progress, total, unit) as bar:
        return fn(bar)


def audit_stage(result: DemoResult, say: Callable[[str], None], progress: bool) -> None:
    """Audit the four precisions for padding leaks (the int8-dynamic one is expected to fail)."""
    from padlens.inspector.audit import audit

    result.audit = _stage(result, "audit", say, lambda: _with_bar(
        progress, None, "runs", lambda bar: audit([str(result.export_dir)], progress=bar)))
    _write_json(result, "audit.json", result.audit.to_dict())


def report_stage(result: DemoResult, say: Callable[[str], None], progress: bool) -> None:
    """report.html: the audit, and an inspection of REPORT_TEXTS texts (enough for the
    pooling similarity matrices, which one sentence cannot fill)."""
    from padlens.inspector.inputs.texts import default_corpus
    from padlens.inspector.inspect import inspect
    from padlens.inspector.report.html import write_html

    texts = [QUESTION_TEXT] + [t for t in default_corpus() if t != QUESTION_TEXT][:REPORT_TEXTS - 1]
    result.inspect = _stage(result, "report inspect", say, lambda: _with_bar(
        progress, len(texts), "texts", lambda bar: inspect(
            [str(result.export_dir)], texts=texts, max_length=128, batch_size=len(texts), progress=bar)))
    path = result.out_dir / REPORT_NAME
    _stage(result, "report", say, lambda: write_html(path, result.inspect, result.audit,
                                                      title="padlens demo: all-MiniLM-L6-v2"))
    result.files.append(path)


def probe_stage(result: DemoResult, say: Callable[[str], None], progress: bool) -> None:
    """A short probe of the fp32 model on the corpus: what one pad state reveals per layer.
    Without scikit-learn (the ``probe`` extra) it says how to enable it and skips."""
    from padlens.errors import MissingExtra
    from padlens.inspector.probe.run import fitter, probe

    try:
        fitter()
    except MissingExtra as exc:
        say(f"[probe] skipped: {exc}")
        return
    model = str(result.export_dir / "model.onnx")

    def run(bar):
        update = None if bar is None else (lambda done, total: (setattr(bar, "total", total), bar(done)))
        return probe([model], limit=PROBE_TEXTS, per_text=PROBE_PER_TEXT, progress=update)

    result.probe = _stage(result, "probe", say, lambda: _with_bar(progress, None, "steps", run))
    _write_json(result, "probe.json", result.probe.to_dict())


STAGES = (question_stage, audit_stage, report_stage, probe_stage)
