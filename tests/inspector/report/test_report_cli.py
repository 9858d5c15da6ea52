"""`--html FILE` on inspect and audit, as users run them."""
from __future__ import annotations

import subprocess
import sys

from padlens.inspector.report.html import PLOT_NAMES


def padlens(*args, cwd):
    return subprocess.run([sys.executable, "-m", "padlens", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_inspect_writes_a_report_with_every_inspect_plot(tiny_export, tmp_path):
    target = tmp_path / "pads.html"
    proc = padlens("inspect", tiny_export, "--text", "this is a sample sentence", "--text", "the cat sat",
                   "--html", target, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    page = target.read_text(encoding="utf-8")
    for name in ("layer-curves", "pad-heatmap", "pooling-similarity"):
        assert f"id='plot-{name}'" in page
    assert page.count("data:image/png;base64,") == 3  # drift needs an audit


def test_audit_writes_a_report_with_its_verdicts_and_drift(tiny_export, tmp_path):
    target = tmp_path / "audit.html"
    proc = padlens("audit", tiny_export, "--text", "this is a sample sentence", "--html", target, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    page = target.read_text(encoding="utf-8")
    assert "id='verdicts'" in page and "padding_invariance" in page
    assert "class='plot' id='plot-pad-drift'" in page


def test_an_html_path_in_a_missing_folder_fails_before_any_work(tiny_export, tmp_path):
    for command in ("inspect", "audit"):
        proc = padlens(command, tiny_export, "--text", "hi", "--html", tmp_path / "nope" / "r.html", cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith("Error:") and "Traceback" not in proc.stderr


def test_plot_names_are_the_four_the_issue_asks_for():
    assert PLOT_NAMES == ("layer-curves", "pad-heatmap", "pad-drift", "pooling-similarity")
