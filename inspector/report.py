"""One self-contained HTML report (verdicts, tables, embedded PNG plots) of an inspect and/or audit."""
from __future__ import annotations

import datetime as _dt
import html
import logging
import math
from pathlib import Path

from padlens import __version__
from padlens.errors import BadInput
from padlens.inspector import plots as P

log = logging.getLogger(__name__)

PLOT_NAMES = ("layer-curves", "pad-heatmap", "pad-drift", "pooling-similarity")
DEFAULT_TITLE = "padlens report"

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 0;
       padding: 16px 24px 48px; color: #1d232a; background: #fff; max-width: 1240px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 6px; }
.meta { color: #5b6570; margin: 0 0 12px; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 13px; }
th, td { border-bottom: 1px solid #dde2e6; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f3f5f7; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.pass { color: #17692f; font-weight: 600; } .fail { color: #b3261e; font-weight: 600; }
.warn { color: #8a5a00; font-weight: 600; }
.banner { padding: 8px 12px; border-radius: 4px; margin: 8px 0; font-weight: 600; }
.banner.pass { background: #e6f4ea; } .banner.fail { background: #fce8e6; }
.detail { color: #3c454e; max-width: 640px; }
section.plot { margin: 0 0 24px; }
section.plot img { display: block; border: 1px solid #dde2e6; }
.caption, .note { color: #5b6570; max-width: 1000px; }
.note { font-style: italic; }
"""


def check_available() -> None:
    """MissingExtra now, before any work, when matplotlib is not installed."""
    P._figure_class()


# ---------------------------------------------------------------- data

def drift_points(audit_result) -> list[dict]:
    """The audit's per-pad-length drift points (``AuditResult.pad_drift``), [] when absent."""
    if audit_result is None:
        return []
    points = getattr(audit_result, "pad_drift", None)
    if points is None and isinstance(audit_result, dict):
        points = audit_result.get("pad_drift")
    return list(points or [])


def build_plots(inspect_result=None, audit_result=None) -> list[P.Plot]:
    """Every plot of the report, in page order (missing data gives a Plot with a note)."""
    runs = list(getattr(inspect_result, "runs", []) or [])
    return [P.layer_curves(runs), P.pad_heatmap(runs), P.pad_drift(drift_points(audit_result)),
            P.pooling_similarity(runs)]


# ---------------------------------------------------------------- html pieces

def esc(value) -> str:
    return html.escape(str(value), quote=True)


def _num(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return esc(value)
    return "-" if not math.isfinite(v) else f"{v:.{digits}f}"


def _mark(check) -> tuple[str, str]:
    if check.passed:
        return "PASS", "pass"
    return ("FAIL", "fail") if check.severity == "error" else ("WARN", "warn")


def verdicts_html(audit_result) -> str:
    """Banner and one table row per check: model, check, result, value, threshold, worst case."""
    if audit_result is None:
        return "<p class='note'>No audit in this report: run <code>padlens audit MODEL --html FILE</code>.</p>"
    failures = [c for c in audit_result.checks if not c.passed and c.severity == "error"]
    banner = ("<div class='banner pass'>audit passed: every error-level check passed</div>" if not failures
              else f"<div class='banner fail'>audit failed: {len(failures)} error-level check(s) failed</div>")
    rows = []
    for c in audit_result.checks:
        text, cls = _mark(c)
        value = f"{int(c.value)} found" if c.value is not None and c.name in (
            "dynamic_activation_quantization", "mask_path_quantized") else _num(c.value, 6)
        rows.append(f"<tr class='check {cls}'><td>{esc(c.model)}</td><td>{esc(c.name)}</td>"
                    f"<td>{esc(c.severity)}</td><td class='{cls}'>{text}</td><td class='num'>{value}</td>"
                    f"<td class='num'>{_num(c.threshold, 6)}</td><td class='detail'>{esc(c.detail)}</td></tr>")
    head = ("<tr><th>model</th><th>check</th><th>severity</th><th>result</th><th>value</th>"
            "<th>threshold</th><th>worst case and likely cause</th></tr>")
    return f"{banner}<table id='verdicts'>{head}{''.join(rows)}</table>"


def runs_html(inspect_result) -> str:
    """One row per run: what it is and its headline pad and pooling numbers."""
    if inspect_result is None:
        return "<p class='note'>No inspect run in this report: run <code>padlens inspect MODEL --html FILE</code>.</p>"
    head = ("<tr><th>run</th><th>model</th><th>precision</th><th>provider</th><th>layers</th>"
            "<th>pad_pad_cos<br>emb → last</th><th>pad_real_cos<br>emb → last</th>"
            "<th>cos(masked, unmasked)<br>pooling</th><th>pad_content_rsa</th></tr>")
    rows = []
    for name, run in zip(P.run_names(inspect_result.runs), inspect_result.runs):
        first, last = run.layers[0], run.layers[-1]
        rows.append(f"<tr class='run'><td>{esc(name)}</td><td>{esc(run.model)}</td><td>{esc(run.precision)}</td>"
                    f"<td>{esc(run.provider)}</td><td class='num'>{len(run.layers) - 1}</td>"
                    f"<td class='num'>{_num(first.pad_pad_cos)} → {_num(last.pad_pad_cos)}</td>"
                    f"<td class='num'>{_num(first.pad_real_cos)} → {_num(last.pad_real_cos)}</td>"
                    f"<td class='num'>{_num(run.pooling.masked_unmasked_cos)}</td>"
                    f"<td class='num'>{_num(run.pad_content_rsa)}</td></tr>")
    notes = [f"<li>{esc(name)}: {esc(w)}</li>" for name, run in zip(P.run_names(inspect_result.runs),
                                                                   inspect_result.runs) for w in run.warnings]
    summary = (f"<p class='meta'>{inspect_result.texts_count} texts, max length {inspect_result.max_length}, "
               f"{esc(inspect_result.padding_side)} padding, padded to "
               f"{esc(inspect_result.settings.padding)}.</p>")
    warn = f"<ul class='warnings'>{''.join(notes)}</ul>" if notes else ""
    return f"{summary}<table id='runs'>{head}{''.join(rows)}</table>{warn}"


def plot_html(plot: P.Plot) -> str:
    """A section with a stable id (``plot-NAME``): heading, caption, embedded PNG or a note."""
    body = (f"<img class='plot-img' alt='{esc(plot.title)}' width='{plot.width}' height='{plot.height}' "
            f"style='width:{plot.width}px;height:{plot.height}px' src='{plot.data_uri}'>"
            if plot.png else "")
    note = f"<p class='note'>{esc(plot.note)}</p>" if plot.note else ""
    cls = "plot" if plot.png else "plot plot-missing"
    return (f"<section class='{cls}' id='plot-{plot.name}' data-plot='{plot.name}'>"
            f"<h2>{esc(plot.title)}</h2><p class='caption'>{esc(plot.caption)}</p>{body}{note}</section>")


def build_html(inspect_result=None, audit_result=None, title: str = DEFAULT_TITLE) -> str:
    """The whole report as one HTML string: no external resource, no script."""
    if inspect_result is None and audit_result is None:
        raise BadInput("a report needs an inspect result, an audit result, or both")
    plots = build_plots(inspect_result, audit_result)
    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    parts = [
        "<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1><p class='meta'>padlens {esc(__version__)} · {stamp}</p>",
        "<h2 id='verdicts-heading'>Verdicts</h2>", verdicts_html(audit_result),
        "<h2 id='runs-heading'>Runs</h2>", runs_html(inspect_result),
        *[plot_html(p) for p in plots],
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def write_html(path: str | Path, inspect_result=None, audit_result=None, title: str = DEFAULT_TITLE) -> Path:
    """Write the report to ``path`` atomically (nothing is left half-written); returns the path."""
    from padlens.fsio import atomic_path

    text = build_html(inspect_result, audit_result, title)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    log.info("wrote %s (%d kB)", path, len(text) // 1024)
    return Path(path)
