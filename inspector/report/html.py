"""One self-contained HTML report of an inspect and/or audit: the verdict matrix, the plots, then the details."""
from __future__ import annotations

import datetime as _dt
import html
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from padlens import __version__
from padlens.errors import BadInput
from padlens.inspector.report import plots as P
from padlens.inspector.report.fmt import fmt_num

if TYPE_CHECKING:
    from padlens.inspector.audit.results import DriftPoint

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
.detail { color: #3c454e; max-width: 1000px; margin: 4px 0 8px 18px; }
table.matrix td.cell { text-align: center; font-weight: 600; min-width: 64px; }
table.matrix td.cell .v { font-weight: 400; font-size: 12px; font-variant-numeric: tabular-nums; }
table.matrix th { font-size: 12px; }
td.cell.pass { background: #e6f4ea; color: #17692f; } td.cell.warn { background: #fff3d6; color: #8a5a00; }
td.cell.fail { background: #fce8e6; color: #b3261e; } td.cell.na, td.cell.none { background: #f3f5f7; color: #5b6570; }
details.check summary { cursor: pointer; padding: 2px 0; }
details.check.fail summary { color: #b3261e; } details.check.warn summary { color: #8a5a00; }
section.plot { margin: 0 0 24px; }
section.plot img { display: block; border: 1px solid #dde2e6; max-width: 100%; height: auto !important; }
.evidence-words { max-width: 1000px; font-weight: 600; }
@media print { section.plot { break-inside: avoid; } section.plot img { max-width: 100%; } }
.caption, .note { color: #5b6570; max-width: 1000px; }
.note { font-style: italic; }
"""


def check_available() -> None:
    """MissingExtra now, before any work, when matplotlib is not installed."""
    P._figure_class()


# ---------------------------------------------------------------- data

def drift_points(audit_result) -> list[DriftPoint]:
    """The audit's per-pad-length drift points (``AuditResult.pad_drift``), [] without an audit."""
    return [] if audit_result is None else list(audit_result.pad_drift)


def build_plots(inspect_result=None, audit_result=None) -> list[P.Plot]:
    """Every plot of the report, in page order (missing data gives a Plot with a note)."""
    runs = list(getattr(inspect_result, "runs", []) or [])
    return [P.layer_curves(runs), P.pad_heatmap(runs), P.pad_drift(drift_points(audit_result)),
            P.pooling_similarity(runs)]


def evidence_checks(audit_result) -> list:
    """The failing or warning checks that carry their worst case per layer (invariance checks)."""
    if audit_result is None:
        return []
    return [c for c in audit_result.checks if c.mark in ("FAIL", "WARN") and c.evidence is not None]


def evidence_html(audit_result) -> str:
    """Per failing or warning invariance check: its figure (where the drift begins), the first and
    the worst layer, and the node where the leak enters when it was traced; "" when none failed."""
    checks = evidence_checks(audit_result)
    if not checks:
        return ""
    parts = ["<h2 id='evidence-heading'>Evidence of what failed</h2>"]
    for c in checks:
        plot, ev = P.check_evidence(c), c.evidence
        first = "within the tolerance at every layer" if ev.first_layer is None else \
            f"first beyond the tolerance at layer {ev.first_layer}"
        words = f"{first}; worst at layer {ev.worst_layer}."
        if c.node is not None:
            words += f" Traced: {c.node.words()}."
        plot.note = ""
        parts.append(plot_html(plot).replace("</section>", f"<p class='evidence-words'>{esc(words)}</p></section>"))
    return "".join(parts)


# ---------------------------------------------------------------- html pieces

def esc(value) -> str:
    """HTML-escaped text of ``value``."""
    return html.escape(str(value), quote=True)


def _banner(audit_result) -> str:
    failures = audit_result.failures
    if not failures:
        return "<div class='banner pass'>audit passed: every error-level check passed</div>"
    return f"<div class='banner fail'>audit failed: {len(failures)} error-level check(s) failed</div>"


def _cell_value(check) -> str:
    """The worst value of a check, short: a cosine, ``3 found``, or nothing."""
    from padlens.inspector.audit.registry import GRAPH, spec
    from padlens.inspector.report.fmt import fmt_cos

    if not check.applicable or check.value is None:
        return ""
    if spec(check.name).family == GRAPH:
        return f"{int(check.value)} found"
    return fmt_cos(check.value, precise=True)


def _css(check) -> str:
    return {"PASS": "pass", "WARN": "warn", "FAIL": "fail"}.get(check.mark, "na")


def _head_name(name: str) -> str:
    """A check name that may wrap after its underscores in a narrow column."""
    return "_<wbr>".join(esc(part) for part in name.split("_"))


def matrix_html(audit_result) -> str:
    """Banner, then the verdict matrix: one row per run, one column per check, coloured
    PASS/WARN/FAIL/n/a cells holding the worst value (the detail as the cell's tooltip)."""
    if audit_result is None:
        return "<p class='note'>No audit in this report: run <code>padlens audit MODEL --html FILE</code>.</p>"
    names = audit_result.names
    head = "<tr><th>run</th>" + "".join(f"<th>{_head_name(n)}</th>" for n in names) + "</tr>"
    rows = []
    for model in audit_result.models:
        found = {c.name: c for c in audit_result.checks if c.model == model}
        cells = []
        for name in names:
            c = found.get(name)
            if c is None:
                cells.append("<td class='cell none'>–</td>")
                continue
            value = _cell_value(c)
            cells.append(f"<td class='cell {_css(c)}' title='{esc(c.detail)}'>{c.mark}"
                         + (f"<br><span class='v'>{esc(value)}</span>" if value else "") + "</td>")
        rows.append(f"<tr class='matrix-row'><th class='run'>{esc(model)}</th>{''.join(cells)}</tr>")
    return f"{_banner(audit_result)}<table id='verdicts' class='matrix'>{head}{''.join(rows)}</table>"


def details_html(audit_result) -> str:
    """Every check of every run, folded: the summary line opens to severity, threshold and detail."""
    if audit_result is None:
        return ""
    parts = []
    for c in audit_result.checks:
        value = _cell_value(c)
        summary = f"{c.mark} · {esc(c.model)} · {esc(c.name)}" + (f" · {esc(value)}" if value else "")
        parts.append(f"<details class='check {_css(c)}'><summary>{summary}</summary>"
                     f"<p class='detail'>{esc(c.severity)}, threshold {fmt_num(c.threshold, 6)}: "
                     f"{esc(c.detail)}</p></details>")
    return "<h2 id='details-heading'>Check details</h2><div id='details'>" + "".join(parts) + "</div>"


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
                    f"<td class='num'>{fmt_num(first.pad_pad_cos)} → {fmt_num(last.pad_pad_cos)}</td>"
                    f"<td class='num'>{fmt_num(first.pad_real_cos)} → {fmt_num(last.pad_real_cos)}</td>"
                    f"<td class='num'>{fmt_num(run.pooling.masked_unmasked_cos)}</td>"
                    f"<td class='num'>{fmt_num(run.pad_content_rsa)}</td></tr>")
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
    plots = [p for p in build_plots(inspect_result, audit_result) if p.png]  # no data: no section
    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    verdicts = [] if audit_result is None else ["<h2 id='verdicts-heading'>Verdicts</h2>", matrix_html(audit_result)]
    runs = [] if inspect_result is None else ["<h2 id='runs-heading'>Runs</h2>", runs_html(inspect_result)]
    parts = [
        "<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1><p class='meta'>padlens {esc(__version__)} · {stamp}</p>",
        *verdicts, evidence_html(audit_result), *runs,
        *[plot_html(p) for p in plots],
        details_html(audit_result),
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
