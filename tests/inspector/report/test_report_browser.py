"""The report opened in a real headless chromium: every plot is visible in a screenshot.

Two passes over the same page at the same window size: ``--dump-dom`` of a probe copy (the
report plus a script that writes each plot image's bounding box into the DOM) gives where
the plots are; ``--screenshot`` of the report itself (no script) gives the pixels there.
In CI (``CI=true``) a missing browser fails the test; elsewhere it skips with the reason.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from padlens.inspector.report.html import PLOT_NAMES, write_html

pytestmark = pytest.mark.browser

WIDTH = 1400
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--force-device-scale-factor=1", "--mute-audio"]
PROBE = """<script>
window.addEventListener('load', function () {
  var boxes = {};
  document.querySelectorAll('section.plot img.plot-img').forEach(function (img) {
    var r = img.getBoundingClientRect(), name = img.closest('section').dataset.plot;
    boxes[name] = {x: r.left + scrollX, y: r.top + scrollY, w: r.width, h: r.height,
                   loaded: img.complete && img.naturalWidth > 0};
  });
  var pre = document.createElement('pre');
  pre.id = 'padlens-boxes';
  pre.textContent = JSON.stringify({boxes: boxes, height: document.documentElement.scrollHeight});
  document.body.appendChild(pre);
});
</script>"""


def candidates() -> list[str | None]:
    return [os.environ.get("PADLENS_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
            shutil.which("chromium-browser"), shutil.which("google-chrome")]


def chromium(found: list[str | None] | None = None) -> str:
    """The browser's path; fails in CI, skips elsewhere, when there is none."""
    for candidate in candidates() if found is None else found:
        if candidate and Path(candidate).is_file():
            return candidate
    reason = "no chromium found (apt-get install chromium; .ci/run installs it)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI must run the browser test: {reason}")
    pytest.skip(reason)


def run_browser(browser: str, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"  # a fresh user-data dir per launch
    cmd = [browser, *FLAGS, f"--user-data-dir={profile}", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}"
    return proc


def plot_boxes(browser: str, report: Path, tmp: Path) -> dict:
    probe = tmp / "probe.html"
    probe.write_text(report.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    proc = run_browser(browser, tmp, f"--window-size={WIDTH},4000", "--virtual-time-budget=5000",
                       "--dump-dom", probe.as_uri())
    found = re.search(r"<pre id=\"padlens-boxes\">(.*?)</pre>", proc.stdout, re.S)
    assert found, "the probe script did not run: " + proc.stdout[-500:]
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def screenshot(browser: str, report: Path, tmp: Path, height: int) -> np.ndarray:
    png = tmp / "shot.png"
    run_browser(browser, tmp, f"--window-size={WIDTH},{height}", f"--screenshot={png}", report.as_uri())
    from PIL import Image

    return np.asarray(Image.open(png).convert("RGB"), dtype=np.int16)


def ink(pixels: np.ndarray) -> float:
    """Fraction of pixels that are not (near) white."""
    return float((np.abs(255 - pixels).max(axis=-1) > 24).mean())


def colours(pixels: np.ndarray) -> int:
    """Distinct colours (quantised to 32 levels): a plot has many, an icon or a box few."""
    return len(np.unique(pixels.reshape(-1, 3) // 8, axis=0))


@pytest.fixture(scope="module")
def shot(tmp_path_factory, inspected, failing_audit):
    """The report of an inspect and a failing audit (rows mixed by a Reshape): every plot, and one
    evidence figure per failing or warning invariance check."""
    browser = chromium()
    tmp = tmp_path_factory.mktemp("browser")
    report = write_html(tmp / "report.html", inspected, failing_audit)
    if os.environ.get("PADLENS_KEEP_REPORT"):  # a copy to look at
        shutil.copy(report, os.environ["PADLENS_KEEP_REPORT"])
    layout = plot_boxes(browser, report, tmp)
    height = int(min(max(layout["height"], 1000), 12000))
    return screenshot(browser, report, tmp, height), layout


@pytest.mark.slow  # chromium renders the report twice
def test_the_browser_loads_every_plot_image(shot, failing_audit):
    from padlens.inspector.report.html import evidence_checks

    _, layout = shot
    evidence = [name for name in layout["boxes"] if name.startswith("evidence-")]
    assert sorted(set(layout["boxes"]) - set(evidence)) == sorted(PLOT_NAMES)
    assert len(evidence) == len(evidence_checks(failing_audit)) >= 2
    for name, box in layout["boxes"].items():
        assert box["loaded"], f"{name}: the browser could not decode the image"
        assert box["w"] >= 300 and box["h"] >= 200, f"{name}: {box}"


@pytest.mark.slow  # chromium renders the report twice
def test_each_evidence_figure_is_visible_in_the_screenshot(shot):
    _, layout = shot
    names = [name for name in layout["boxes"] if name.startswith("evidence-")]
    assert any("batch-neighbour" in name for name in names)
    for name in names:
        _visible(shot, name)


@pytest.mark.slow  # chromium renders the report twice
@pytest.mark.parametrize("name", PLOT_NAMES)
def test_each_plot_is_visible_in_the_screenshot(shot, name):
    _visible(shot, name)


def _visible(shot, name):
    pixels, layout = shot
    box = layout["boxes"][name]
    x0, y0 = int(box["x"]) + 2, int(box["y"]) + 2
    x1, y1 = int(box["x"] + box["w"]) - 2, int(box["y"] + box["h"]) - 2
    assert y1 <= pixels.shape[0] and x1 <= pixels.shape[1], f"{name} lies outside the screenshot"
    region = pixels[y0:y1, x0:x1]
    assert ink(region) > 0.01, f"{name}: the plot region is blank ({ink(region):.3%} ink)"
    assert colours(region) > 20, f"{name}: the plot region is flat ({colours(region)} colours)"


@pytest.mark.slow  # chromium renders the report twice
def test_the_page_outside_the_plots_is_not_what_makes_them_pass(shot):
    pixels, layout = shot
    for name, box in layout["boxes"].items():  # beside each plot the page is white: its ink is the plot's
        y0, y1, x1 = int(box["y"]) + 2, int(box["y"] + box["h"]) - 2, int(box["x"] + box["w"]) + 8
        beside = pixels[y0:y1, x1:]
        assert beside.size and ink(beside) < 0.01, f"{name}: ink beside the plot ({ink(beside):.3%})"


@pytest.mark.parametrize("ci, outcome", [("true", pytest.fail.Exception), ("", pytest.skip.Exception)])
def test_a_missing_browser_fails_in_ci_and_skips_elsewhere(monkeypatch, ci, outcome):
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="no chromium found"):
        chromium(found=[None, "/nonexistent/chromium"])
