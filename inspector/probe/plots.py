"""The probe's HTML page: per run, score per layer (pads vs real tokens vs control) as an embedded PNG.

Matplotlib is imported lazily through ``padlens.inspector.report.plots`` (the ``report`` extra), object
API and Agg canvas only; the page is one self-contained file with no script.
"""
from __future__ import annotations

import datetime as _dt
import logging
import math
from pathlib import Path

import numpy as np

from padlens import __version__
from padlens.inspector.probe.run import ProbeResult, ProbeRun
from padlens.inspector.probe.table import DESCRIBE, UNITS, targets_of
from padlens.inspector.report import html as R
from padlens.inspector.report import plots as P
from padlens.inspector.report.fmt import fmt_num

log = logging.getLogger(__name__)

COLS = 3
STYLE = {"pad": ("tab:red", "pads"), "real": ("tab:blue", "real tokens")}


def _series(run: ProbeRun, target: str, states: str, key: str) -> np.ndarray:
    out = []
    for layer in run.layers:
        p = layer.get(target, states)
        value = getattr(p, key) if p is not None else None
        out.append(np.nan if value is None or not math.isfinite(float(value)) else float(value))
    return np.array(out, dtype=np.float64)


def _ci(run: ProbeRun, target: str, states: str) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = [], []
    for layer in run.layers:
        p = layer.get(target, states)
        ci = p.ci if p is not None and p.ci else [None, None]
        lo.append(np.nan if ci[0] is None else float(ci[0]))
        hi.append(np.nan if ci[1] is None else float(ci[1]))
    return np.array(lo), np.array(hi)


def _panel(ax, run: ProbeRun, target: str) -> None:
    x = np.array([layer.index for layer in run.layers])
    for states, (color, name) in STYLE.items():
        score = _series(run, target, states, "score")
        if not np.isfinite(score).any():
            continue
        ax.plot(x, score, marker="o", ms=3, color=color, label=name)
        lo, hi = _ci(run, target, states)
        ax.fill_between(x, lo, hi, color=color, alpha=0.15, lw=0)
        ax.plot(x, _series(run, target, states, "control"), ls=":", color=color, label=f"control ({name})")
    base = _series(run, target, "pad", "baseline")
    if np.isfinite(base).any():
        ax.plot(x, base, ls="--", color="grey", lw=1, label="baseline (pads)")
    first = next(p for p in run.layers[0].probes if p.target == target)
    ax.set_title(f"{target}: {DESCRIBE.get(target, 'a label of each text')}", fontsize=9)
    ax.set_ylabel(UNITS.get(first.metric, first.metric))
    if first.metric == "r2":
        ax.set_ylim(min(-0.1, np.nanmin(np.r_[_series(run, target, 'pad', 'control'), 0.0])), 1.02)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("layer (0 = embedding output)")
    ax.grid(alpha=0.3)


def run_figure(run: ProbeRun, name: str) -> P.Plot:
    """Score per layer for every target of ``run``: pads and real tokens, 95% band, controls."""
    plot = P.Plot(f"probe-{_slug(name)}", f"What one state reveals, layer by layer: {name}",
                  "Solid: the probe's score on held-out texts (band: 95% bootstrap over test texts); "
                  "dotted: the same probe trained on shuffled targets (control); dashed grey: a "
                  "predictor that ignores the state. Red: one pad state; blue: one real token.")
    targets = targets_of(run)
    if not run.layers or not targets:
        plot.note = "no layer was probed"
        return plot
    cols = 2 if len(targets) <= 4 else COLS
    rows = math.ceil(len(targets) / cols)
    fig = P.new_figure(320 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False).ravel())
    for ax, target in zip(axes, targets):
        _panel(ax, run, target)
    for ax in axes[len(targets):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7, loc="best")
    plot.png = P.png_bytes(fig)
    plot.width, plot.height = int(round(fig.get_figwidth() * P.DPI)), int(round(fig.get_figheight() * P.DPI))
    return plot


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name).strip("-").lower() or "run"


def run_table(run: ProbeRun) -> str:
    """Every probe of ``run`` as an HTML table: layer, target, states, score [CI], control, selectivity."""
    head = ("<tr><th>layer</th><th>target</th><th>states</th><th>metric</th><th>score</th><th>95% CI</th>"
            "<th>control</th><th>selectivity</th><th>baseline</th><th>train / test texts</th>"
            "<th>train / test states</th><th>note</th></tr>")
    rows = []
    for layer in run.layers:
        for p in layer.probes:
            ci = "-" if not p.ci or p.ci[0] is None else f"{fmt_num(p.ci[0])} … {fmt_num(p.ci[1])}"
            rows.append(f"<tr class='probe'><td class='num'>{layer.index}</td><td>{R.esc(p.target)}</td>"
                        f"<td>{p.states}</td><td>{p.metric}</td><td class='num'>{fmt_num(p.score)}</td>"
                        f"<td class='num'>{ci}</td><td class='num'>{fmt_num(p.control)}</td>"
                        f"<td class='num'>{fmt_num(p.selectivity)}</td><td class='num'>{fmt_num(p.baseline)}</td>"
                        f"<td class='num'>{p.n_train} / {p.n_test}</td>"
                        f"<td class='num'>{p.n_train_states} / {p.n_test_states}</td>"
                        f"<td class='detail'>{R.esc(p.reason)}</td></tr>")
    return f"<table class='probes'>{head}{''.join(rows)}</table>"


def build_html(result: ProbeResult, title: str = "padlens probe") -> str:
    """The page: settings, then per run a figure, its notes and the full table."""
    names = P.run_names(result.runs)
    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    parts = ["<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
             f"<title>{R.esc(title)}</title><style>{R.CSS}</style></head><body>",
             f"<h1>{R.esc(title)}</h1><p class='meta'>padlens {R.esc(__version__)} · {stamp} · "
             f"{result.texts_count} texts, max length {result.max_length}, {R.esc(result.padding_side)} "
             f"padding, seed {R.esc(result.settings.get('seed'))}</p>"]
    for name, run in zip(names, result.runs):
        window = run.pad_window
        parts.append(R.plot_html(run_figure(run, name)))
        parts.append(f"<p class='meta'>{run.dims} dims; {run.split['train']} training / {run.split['test']} "
                     f"test texts; pads: {window['pads']} states from {window['texts']} texts, window from "
                     f"position {window['floor']}; real tokens: {run.real_states} states.</p>")
        parts += [f"<p class='note'>{R.esc(w)}</p>" for w in run.warnings]
        parts.append(run_table(run))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_html(path: str | Path, result: ProbeResult, title: str = "padlens probe") -> Path:
    """Write the page atomically; returns the path."""
    from padlens.fsio import atomic_path

    text = build_html(result, title)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    log.info("wrote %s (%d kB)", path, len(text) // 1024)
    return Path(path)
