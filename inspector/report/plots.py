"""The report's matplotlib figures: pad curves per layer, pad heatmaps, drift, pooling matrices.

Matplotlib is imported lazily (the ``report`` extra) and only through its object API with the
Agg canvas, so no global backend is switched and no window ever opens.
"""
from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from padlens.errors import MissingExtra
from padlens.inspector.report.fmt import fmt_num

if TYPE_CHECKING:
    from padlens.inspector.audit.results import DriftPoint


DPI = 100
WIDTH_IN = 12.0  # every figure is 1200 px wide
MAX_PANELS = 6   # runs per heatmap figure (more are listed as left out)
CURVES = (("pad_pad_cos", "pad–pad cosine"), ("pad_real_cos", "pad–real cosine"),
          ("pad_norm", "mean ‖h‖ over pads"), ("real_norm", "mean ‖h‖ over real tokens"))


@dataclass
class Plot:
    """One rendered figure.

    Attributes:
        name: stable id suffix (``layer-curves``, ``pad-heatmap``, ``pad-drift``, ``pooling-similarity``).
        title: the section heading.
        caption: how to read it.
        png: the PNG bytes (None when the data is missing).
        width, height: pixel size of the PNG.
        note: why the plot is missing, or what was left out.
    """

    name: str
    title: str
    caption: str
    png: bytes | None = None
    width: int = 0
    height: int = 0
    note: str = ""

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png or b"").decode("ascii")


def _figure_class():
    """matplotlib's Figure and Agg canvas, or MissingExtra naming the extra to install."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise MissingExtra("HTML reports and plots need matplotlib: pip install 'padlens[report]'") from exc
    return Figure, FigureCanvasAgg


def new_figure(height_px: int, width_px: int = int(WIDTH_IN * DPI)):
    """A figure of ``width_px`` × ``height_px`` (1200 px wide by default), constrained layout."""
    figure_cls, canvas_cls = _figure_class()
    width_px = min(width_px, int(WIDTH_IN * DPI))
    fig = figure_cls(figsize=(width_px / DPI, height_px / DPI), dpi=DPI, layout="constrained")
    canvas_cls(fig)
    return fig


def png_bytes(fig) -> bytes:
    """The figure as PNG at its own size (no tight bbox: the pixel size stays known)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, facecolor="white")
    return buf.getvalue()


def _finish(plot: Plot, fig) -> Plot:
    plot.png = png_bytes(fig)
    plot.width, plot.height = int(round(fig.get_figwidth() * DPI)), int(round(fig.get_figheight() * DPI))
    return plot


def run_names(runs) -> list[str]:
    """How plots name each run: its label, with the provider when several providers ran."""
    providers = {r.provider for r in runs}
    return [f"{r.label} [{r.provider}]" if len(providers) > 1 else r.label for r in runs]


def _finite(values) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


# ---------------------------------------------------------------- per-layer curves

def layer_curves(runs) -> Plot:
    """pad_pad_cos, pad_real_cos, pad_norm, real_norm against the layer, one line per run."""
    plot = Plot("layer-curves", "Pad states layer by layer",
                "Layer 0 is the embedding output, 1…L the encoder blocks. Each line is one run "
                "(model file × provider); all runs saw the same padded batches.")
    if not runs:
        plot.note = "no inspect run in this report"
        return plot
    fig = new_figure(700)
    axes = fig.subplots(2, 2).ravel()
    for ax, (key, title) in zip(axes, CURVES):
        _curve_panel(ax, runs, key, title)
    axes[0].legend(fontsize=8, loc="best")
    return _finish(plot, fig)


def _curve_panel(ax, runs, key: str, title: str) -> None:
    for name, run in zip(run_names(runs), runs):
        x = [layer.index for layer in run.layers]
        ax.plot(x, _finite(getattr(layer, key) for layer in run.layers), marker="o", ms=3, label=name)
    ax.set_title(title, fontsize=10)
    _layer_axis(ax)
    ax.ticklabel_format(axis="y", useOffset=False)
    if key.endswith("_cos"):
        ax.axhline(0.0, color="grey", lw=0.6)


def _layer_axis(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("layer")
    ax.grid(alpha=0.3)


# ---------------------------------------------------------------- heatmaps

def _grid(fig, rows: int, cols: int):
    axes = np.atleast_2d(fig.subplots(rows, cols, squeeze=False))
    return axes


def position_similarity(layer) -> tuple[np.ndarray, np.ndarray] | None:
    """(positions with pads, cosine matrix between their mean pad states) of one layer."""
    mean = getattr(layer, "pad_position_mean", None)
    if mean is None:
        return None
    mean = np.asarray(mean, dtype=np.float64)
    seen = np.isfinite(mean).all(axis=1) & (np.linalg.norm(mean, axis=1) > 0)
    if seen.sum() < 2:
        return None
    u = mean[seen] / np.linalg.norm(mean[seen], axis=1, keepdims=True)
    return np.flatnonzero(seen), u @ u.T


def pad_heatmap(runs) -> Plot:
    """cos between mean pad states at positions i and j, last layer, one panel per run."""
    plot = Plot("pad-heatmap", "Pad-to-pad similarity by position (last layer)",
                "Cosine between the mean pad state at position i and at position j. A uniform "
                "bright square means every pad holds the same vector wherever it sits.")
    data = [(name, run, position_similarity(run.layers[-1])) for name, run in zip(run_names(runs), runs)
            if run.layers]
    data = [d for d in data if d[2] is not None]
    if not data:
        plot.note = "no text had two or more pads, so there is nothing to compare"
        return plot
    plot.note = _left_out(len(data))
    data = data[:MAX_PANELS]
    fig = new_figure(380, 120 + 300 * len(data))
    axes = _grid(fig, 1, len(data))[0]
    vmin = _floor([sim for _, _, (_, sim) in data])
    for ax, (name, run, (pos, sim)) in zip(axes, data):
        image = _heat(ax, sim, pos, f"{name}\npad_pad_cos {fmt_num(run.layers[-1].pad_pad_cos)}", vmin)
        ax.set_xlabel("position")
    fig.colorbar(image, ax=list(axes), shrink=0.8, label="cosine")
    return _finish(plot, fig)


def _heat(ax, sim: np.ndarray, pos: np.ndarray | None, title: str, vmin: float = -1.0):
    extent = None
    if pos is not None and len(pos):
        extent = (pos[0] - 0.5, pos[-1] + 0.5, pos[-1] + 0.5, pos[0] - 0.5)
    image = ax.imshow(sim, vmin=vmin, vmax=1.0, cmap="viridis", extent=extent, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    return image


def _floor(matrices) -> float:
    """The colour scale's low end: the lowest finite value over ``matrices``, at most 0."""
    lows = [float(np.nanmin(m)) for m in matrices if np.isfinite(m).any()]
    return min([0.0, *lows])


def _left_out(n: int) -> str:
    return f"the first {MAX_PANELS} of {n} runs are shown" if n > MAX_PANELS else ""


def pooling_similarity(runs) -> Plot:
    """Masked-mean vs unmasked-mean similarity matrices between texts, one column per run."""
    plot = Plot("pooling-similarity", "Masked vs unmasked mean pooling: similarity between texts",
                "Top row: cosine between texts' embeddings pooled over real tokens only (correct). "
                "Bottom row: pooled over every position, pads included. Pads pull unrelated texts "
                "together: the bottom row is brighter off the diagonal.")
    data = [(name, run.similarity) for name, run in zip(run_names(runs), runs)
            if getattr(run, "similarity", None) is not None and len(run.similarity["masked"]) >= 2]
    if not data:
        plot.note = "needs two or more texts (and an inspect run)"
        return plot
    plot.note = _left_out(len(data))
    data = data[:MAX_PANELS]
    fig = new_figure(640, 120 + 260 * len(data))
    axes = _grid(fig, 2, len(data))
    vmin = _floor([np.asarray(sim[k]) for _, sim in data for k in ("masked", "unmasked")])
    for col, (name, sim) in enumerate(data):
        for row, key in enumerate(("masked", "unmasked")):
            m = np.asarray(sim[key], dtype=np.float64)
            image = _heat(axes[row, col], m, None, f"{name}\n{key}: mean off-diagonal "
                          f"{fmt_num(_off_diagonal(m))}", vmin)
            axes[row, col].set_xlabel("text")
    fig.colorbar(image, ax=list(axes.ravel()), shrink=0.8, label="cosine")
    return _finish(plot, fig)


def _off_diagonal(m: np.ndarray) -> float:
    i, j = np.triu_indices(len(m), k=1)
    return float(m[i, j].mean()) if len(i) else float("nan")


# ---------------------------------------------------------------- drift

def pad_drift(points: list[DriftPoint]) -> Plot:
    """How far real tokens move against the number of pads added, one line per model.

    ``points``: the audit's ``DriftPoint``s (``AuditResult.pad_drift``): ``added_pads``,
    ``max_delta`` (max |Δ| of a real token's state over layers, relative to the state norm)
    and ``pooled_cos`` per model, text and pad length.
    """
    plot = Plot("pad-drift", "Drift of real tokens against pad length, per precision",
                "Each point is one audited text padded alone to a longer length, compared with the "
                "same text unpadded. 0 means bit-identical; int8 dynamic quantization moves real "
                "tokens because its activation scale spans the pads.")
    if not points:
        plot.note = "no audit with padding_invariance data in this report"
        return plot
    fig = new_figure(420)
    left, right = fig.subplots(1, 2)
    for model, rows in _by_model(points).items():
        _drift_series(left, rows, lambda r: r.max_delta, model)
        _drift_series(right, rows, lambda r: 1.0 - r.pooled_cos, model)
    for ax, label in ((left, "max |Δ| of a real token / state norm"), (right, "1 − cos(pooled, unpadded pooled)")):
        ax.set_yscale("symlog", linthresh=1e-7)
        top = max([1e-3] + [2 * v for line in ax.get_lines() for v in line.get_ydata() if math.isfinite(v)])
        ax.set_ylim(0, top)
        ax.set_xlabel("pads added")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    left.legend(fontsize=8, title="worst text per pad count", title_fontsize=8)
    return _finish(plot, fig)


def _drift_series(ax, rows: list[DriftPoint], value, model: str) -> None:
    """Every text as a faint dot; the line joins the worst text at each pad count."""
    xs = np.array([r.added_pads for r in rows], dtype=np.float64)
    ys = np.array([_nz(value(r)) for r in rows], dtype=np.float64)
    worst = {x: np.nanmax(ys[xs == x]) if np.isfinite(ys[xs == x]).any() else np.nan for x in np.unique(xs)}
    line, = ax.plot(list(worst), list(worst.values()), marker="o", ms=4, label=model)
    ax.scatter(xs, ys, s=8, alpha=0.35, color=line.get_color())


def _by_model(points: list[DriftPoint]) -> dict[str, list[DriftPoint]]:
    out: dict[str, list[DriftPoint]] = {}
    for p in points:
        out.setdefault(p.model, []).append(p)
    return out


def _nz(v) -> float:
    """Plot NaN (not measured) as a gap, and negatives from rounding as 0."""
    if v is None or not math.isfinite(float(v)):
        return float("nan")
    return max(float(v), 0.0)


# ---------------------------------------------------------------- a failed check's evidence per layer

def _against(check) -> str:
    """What the evidence compares with: the same text alone (invariance), or nothing more to say
    (reference_drift's ``what`` names the fp32 run)."""
    return "" if check.name == "reference_drift" else ", against the same text alone"


def check_evidence(check) -> Plot:
    """One failing or warning invariance check (a ``CheckResult`` with ``evidence``): per layer, its
    worst text's real-token drift against the same text alone (1 − min cos, left; max |Δ| / state
    norm, right) with the tolerance, the first layer beyond it marked, and the traced node named."""
    ev, node = check.evidence, check.node
    slug = "".join(ch if ch.isalnum() else "-" for ch in f"{check.model}-{check.name}").strip("-").lower()
    plot = Plot(f"evidence-{slug}", f"{check.name} · {check.model}: where the drift begins",
                f"{check.mark}: {ev.text} {ev.what}{_against(check)}, per layer (0 = embeddings). "
                "The dashed line is the tolerance; the red band marks the first layer beyond it.")
    fig = new_figure(380)
    left, right = fig.subplots(1, 2)
    layers = np.arange(len(ev.delta))
    panels = ((left, ev.one_minus_cos, "1 − min cos of a real token",
               None if ev.cos_floor is None else 1.0 - ev.cos_floor),
              (right, ev.delta, "max |Δ| of a real token / state norm", ev.delta_ceiling))
    for ax, values, label, limit in panels:
        ys = np.array([_nz(v) if math.isfinite(float(v)) else 1.0 for v in values], dtype=np.float64)
        ax.plot(layers, ys, marker="o", ms=6, lw=2, color="#b3261e", label=label)
        if limit is not None:
            ax.axhline(limit, ls="--", color="#5b6570", lw=1.2, label=f"tolerance {limit:.3g}")
        if ev.first_layer is not None:
            ax.axvspan(ev.first_layer - 0.4, ev.first_layer + 0.4, color="#fce8e6", zorder=0,
                       label=f"first beyond: layer {ev.first_layer}")
        floor = limit if limit is not None else min([v for v in ys if v > 0] or [1e-6])  # no tolerance: the data
        ax.set_yscale("symlog", linthresh=max(min(floor, 1e-3) / 10, 1e-9))
        ax.set_ylim(0, max([2 * (limit or 0)] + [2 * v for v in ys if math.isfinite(v)] + [1e-6]))
        ax.set_xticks(layers)
        ax.set_xlabel("layer")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    if node is not None:
        x = node.layer
        y = float(_nz(ev.delta[x])) if x < len(ev.delta) else 0.0
        name = node.name if len(node.name) <= 36 else "…" + node.name[-35:]
        label = right.annotate(f"{node.op_type}\n{name}", xy=(x, y), xytext=(0.03, 0.86), textcoords="axes fraction",
                               fontsize=10, color="#1d232a", arrowprops={"arrowstyle": "->", "color": "#1d232a"},
                               bbox={"boxstyle": "round", "fc": "#fff3d6", "ec": "#8a5a00"})
        label.set_in_layout(False)  # a long node name must not shrink the axes (named in full beside the figure)
        right.plot([x], [y], marker="*", ms=16, color="#8a5a00", label="traced node", zorder=5)
    for ax in (left, right):
        ax.legend(fontsize=9, loc="lower right")
    return _finish(plot, fig)
