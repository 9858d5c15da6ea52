"""The HTML report's content: verdicts, every run, every plot, nothing from the network."""
from __future__ import annotations

import base64
import html
import re
import sys

import pytest

from padlens.errors import BadInput, MissingExtra
from padlens.inspector.report import html as report
from padlens.inspector.report.html import PLOT_NAMES, build_html, write_html


@pytest.fixture(scope="module")
def page(inspected, audited) -> str:
    return build_html(inspected, audited, title="tiny report")


def test_every_plot_has_a_section_with_a_stable_id(page):
    for name in PLOT_NAMES:
        assert f"id='plot-{name}'" in page


def test_every_plot_is_an_embedded_png_that_decodes(page, audited):
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert len(images) == len(PLOT_NAMES) + len(report.evidence_checks(audited))
    for data in images:
        assert base64.b64decode(data).startswith(b"\x89PNG\r\n\x1a\n")


def test_every_run_label_appears(page, inspected):
    for run in inspected.runs:
        assert run.label in page


def test_the_page_opens_with_the_verdict_matrix_then_the_plots_then_the_details(page):
    matrix, first_plot = page.index("id='verdicts'"), page.index("id='plot-")
    assert matrix < first_plot < page.index("id='details'")


def test_the_matrix_has_a_coloured_cell_per_run_and_check(page, audited):
    rows = re.findall(r"<tr class='matrix-row'>(.*?)</tr>", page)
    assert len(rows) == len(audited.models)
    for row, model in zip(rows, audited.models):
        cells = re.findall(r"<td class='cell (pass|warn|fail|na)'[^>]*>(PASS|WARN|FAIL|n/a)", row)
        checks = [c for c in audited.checks if c.model == model]
        assert [mark for _, mark in cells] == [c.mark for c in checks]
        assert {"pass": "PASS", "warn": "WARN", "fail": "FAIL", "na": "n/a"}[cells[0][0]] == cells[0][1]


def test_the_matrix_shows_the_worst_value_of_each_check(page, audited):
    from padlens.inspector.report.fmt import fmt_cos

    check = next(c for c in audited.checks if c.name == "padding_invariance")
    assert f"<span class='v'>{fmt_cos(check.value, precise=True)}</span>" in page


def test_every_audit_check_has_folded_details(page, audited):
    folded = re.findall(r"<details class='check (pass|fail|warn|na)'>", page)
    assert len(folded) == len(audited.checks)
    for check in audited.checks:
        assert check.name in page and html.escape(check.detail, quote=True) in page


def test_a_failed_check_is_a_red_cell_and_a_not_applicable_one_grey(inspected, audited):
    from padlens.inspector.audit import AuditResult, CheckResult

    result = AuditResult(False, [
        CheckResult("m", "padding_invariance", "error", False, 0.9, 0.99999, "leaks"),
        CheckResult.not_applicable("m", "batch_neighbour_invariance", "error", "batch size 1"),
        CheckResult("m", "left_padding", "warning", False, 0.3, 0.99999, "positions"),
    ], audited.pad_drift)
    page = build_html(None, result)
    assert "<td class='cell fail' title='leaks'>FAIL<br><span class='v'>0.900000</span>" in page
    assert "<td class='cell na' title='not applicable: batch size 1'>n/a</td>" in page
    assert "<td class='cell warn'" in page and "audit failed: 1 error-level check(s) failed" in page


def test_nothing_is_loaded_from_the_network(page):
    assert not re.search(r"""(src|href)\s*=\s*['"]?\s*(https?:)?//""", page, re.I)
    assert "<script" not in page.lower()
    assert "@import" not in page and "url(" not in page


def test_text_from_models_and_texts_is_escaped(inspected, audited):
    check = audited.checks[0]
    saved = check.detail
    check.detail = "<img src=x onerror=alert(1)>"
    try:
        page = build_html(inspected, audited)
    finally:
        check.detail = saved
    assert "<img src=x" not in page and "&lt;img src=x" in page


def test_an_inspect_alone_has_no_audit_section_and_no_placeholder(inspected):
    page = build_html(inspected, None)
    assert "id='verdicts" not in page and "id='details" not in page and "id='plot-pad-drift'" not in page
    assert "plot-missing" not in page and "No audit in this report" not in page and "id='runs'" in page


def test_an_audit_alone_shows_its_verdicts_and_drift_and_no_inspect_section(audited):
    page = build_html(None, audited)
    assert "id='verdicts'" in page and "id='plot-pad-drift'" in page
    for absent in ("No inspect run", "plot-missing", "id='runs", "id='plot-layer-curves'", "id='plot-pad-heatmap'",
                   "id='plot-pooling-similarity'", "nothing to compare", "needs two or more texts"):
        assert absent not in page, absent


def test_only_failing_or_warning_checks_get_an_evidence_figure(page, audited):
    shown = report.evidence_checks(audited)
    assert all(c.mark in ("FAIL", "WARN") for c in shown)
    assert page.count("id='plot-evidence-") == len(shown) and ("evidence-heading" in page) == bool(shown)


def test_each_failing_invariance_check_has_its_figure_first_layer_and_traced_node(failing_audit):
    page = build_html(None, failing_audit)
    failed = [c for c in failing_audit.checks if c.mark in ("FAIL", "WARN") and c.evidence is not None]
    assert {c.name for c in failed} >= {"batch_neighbour_invariance", "fully_masked_row"}
    sections = re.findall(r"<section class='plot' id='plot-(evidence-[^']+)'.*?</section>", page, re.S)
    assert len(sections) == len(failed)
    batch = next(c for c in failed if c.name == "batch_neighbour_invariance")
    [section] = re.findall(r"<section class='plot' id='plot-evidence-[^']*batch-neighbour[^']*'.*?</section>", page,
                           re.S)
    assert f"first beyond the tolerance at layer {batch.evidence.first_layer}" in section
    assert "Reshape node" in section and html.escape(batch.node.name) in section
    assert page.index("id='verdicts'") < page.index("evidence-heading") < page.index("id='details'")


def test_a_report_needs_something_to_show():
    with pytest.raises(BadInput):
        build_html(None, None)


def test_the_report_file_is_written_atomically(tmp_path, inspected, audited, monkeypatch):
    target = tmp_path / "report.html"
    target.write_text("old")
    monkeypatch.setattr(report.P, "png_bytes", lambda fig: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError):
        write_html(target, inspected, audited)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_missing_matplotlib_names_the_extra(monkeypatch, inspected):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(MissingExtra, match=r"padlens\[report\]"):
        build_html(inspected, None)


def test_drift_points_come_from_the_audit(audited):
    points = report.drift_points(audited)
    assert points, "the audit records drift per pad length"
    assert points == audited.pad_drift
    assert {p.model for p in points} == set(audited.models)
    assert all(p.added_pads > 0 and 0.99 < p.pooled_cos <= 1 + 1e-9 for p in points)
