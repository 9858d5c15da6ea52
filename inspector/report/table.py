"""Render an InspectResult as plain text for an 80-column terminal: per metric, layers × runs."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from padlens.inspector.report.fmt import fmt_cos, fmt_norm
from padlens.inspector.results import InspectResult, PoolingDamage, RunResult

WIDTH = 80
LAYER_W = 8   # "0 emb" column
COL_W = 8     # one run's value
GAP = 2


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


@dataclass(frozen=True)
class Column:
    """One metric shown as a block of layers × runs."""

    key: str
    title: str
    fmt: Callable[[object], str]
    meaning: str


PAD_COLUMNS = (
    Column("pad_pad_cos", "pad_pad_cos", fmt_cos, "mean cos between two pads (1: every pad alike)"),
    Column("pad_real_cos", "pad_real_cos", fmt_cos, "mean cos between a pad and a real token"),
    Column("pad_norm", "pad_norm", fmt_norm, "mean |h| over pads"),
    Column("real_norm", "real_norm", fmt_norm, "mean |h| over real tokens ([CLS], [SEP] included)"),
    Column("pad_anchor_cos", "anchor_cos", fmt_cos,
           "mean cos of each pad with the pad next to the text (1: same)"),
    Column("pad_step", "pad_step", fmt_norm, "mean |h_p - h_p+1| over neighbouring pads (0: no change)"),
)
ATTENTION_COLUMNS = (
    Column("attn_pad_to_cls", "pad->cls", fmt_cos, "attention mass pad queries put on [CLS] (first real)"),
    Column("attn_pad_to_sep", "pad->sep", fmt_cos, "... on [SEP] (last real)"),
    Column("attn_pad_to_content", "pad->text", fmt_cos, "... on the other real tokens"),
    Column("attn_pad_to_pad", "pad->pad", fmt_cos, "... on pads"),
    Column("attn_real_to_pad", "real->pad", fmt_cos, "mass real queries put on pads (~0 when the mask works)"),
)


# ---------------------------------------------------------------- layer tables

def _block(column: Column, runs: list[RunResult], ids: list[int], rows: range) -> list[str]:
    """One metric for ``runs``: title line, run ids (when several), one line per layer."""
    multi = len(runs) > 1
    width = max(len(column.title) + (4 if multi else 0), COL_W * len(runs))
    if multi:
        lines = [f" {column.title} ".center(width - 2, "-").rjust(width)]
        lines.append("".join(f"[{i}]".rjust(COL_W) for i in ids).rjust(width))
    else:
        lines = [column.title.rjust(width)]
    for index in rows:
        cells = []
        for run in runs:
            layer = run.layers[index] if index < len(run.layers) else None
            cells.append(column.fmt(getattr(layer, column.key, None)).rjust(COL_W))
        lines.append("".join(cells).rjust(width))
    return lines


def _layer_labels(rows: range, multi: bool) -> list[str]:
    head = ["layer"] + ([""] if multi else [])
    return head + [("0 emb" if i == 0 else str(i)) for i in rows]


def layer_tables(columns: tuple[Column, ...], runs: list[RunResult], ids: list[int],
                 width: int = WIDTH, first: int = 0) -> list[str]:
    """Blocks (one per metric) packed side by side into ``width`` columns, layer labels on the
    left; layers from ``first`` on."""
    rows = range(first, max(len(run.layers) for run in runs))
    blocks = [_block(c, runs, ids, rows) for c in columns]
    out: list[str] = []
    labels = _layer_labels(rows, len(runs) > 1)
    line: list[list[str]] = []
    used = LAYER_W
    for block in blocks:
        w = len(block[0]) + GAP
        if line and used + w > width:
            out += _join(labels, line) + [""]
            line, used = [], LAYER_W
        line.append(block)
        used += w
    if line:
        out += _join(labels, line)
    return out


def _join(labels: list[str], blocks: list[list[str]]) -> list[str]:
    return [(labels[r].ljust(LAYER_W) + "".join(" " * GAP + b[r] for b in blocks)).rstrip()
            for r in range(len(labels))]


def _run_groups(runs: list[RunResult], width: int, per: int) -> list[list[int]]:
    """Indices of runs, in groups small enough for one block to fit ``width``."""
    size = max(1, min(per, (width - LAYER_W - GAP) // COL_W))
    return [list(range(i, min(i + size, len(runs)))) for i in range(0, len(runs), size)]


# ---------------------------------------------------------------- pooling

POOL_ROWS = (
    ("cos(masked mean, unmasked mean)", lambda r: fmt_cos(r.pooling.masked_unmasked_cos)),
    ("  min .. max over texts", lambda r: _range(r.pooling)),
    ("cos(CLS state, masked mean)", lambda r: fmt_cos(r.pooling.cls_masked_cos)),
    ("k-NN overlap, masked vs unmasked", lambda r: _knn(r.pooling)),
    ("Spearman of similarity matrices", lambda r: fmt_cos(r.pooling.similarity_spearman)),
    ("mean similarity, masked", lambda r: fmt_cos(r.pooling.similarity_mean_masked)),
    ("mean similarity, unmasked", lambda r: fmt_cos(r.pooling.similarity_mean_unmasked)),
    ("pad_content_rsa", lambda r: fmt_cos(r.pad_content_rsa)),
)
POOL_LABEL_W = 34
POOL_COL_W = 13


def _range(pooling: PoolingDamage) -> str:
    lo, hi = pooling.masked_unmasked_cos_min, pooling.masked_unmasked_cos_max
    return "-" if _missing(lo) else f"{fmt_cos(lo)}..{fmt_cos(hi)}"


def _knn(pooling: PoolingDamage) -> str:
    value = pooling.knn_overlap
    return "-" if _missing(value) else f"{fmt_cos(value)} k={pooling.knn_k}"


def pooling_table(runs: list[RunResult], ids: list[int], width: int = WIDTH) -> list[str]:
    """Rows: pooling metrics of the last layer; columns: runs (wrapped to ``width``)."""
    out: list[str] = []
    per = max(1, (width - POOL_LABEL_W) // POOL_COL_W)
    for start in range(0, len(runs), per):
        chunk = list(range(start, min(start + per, len(runs))))
        head = "pooling (last layer)".ljust(POOL_LABEL_W)
        out.append((head + "".join(f"[{ids[i]}]".rjust(POOL_COL_W) for i in chunk)).rstrip())
        for label, value in POOL_ROWS:
            out.append(label.ljust(POOL_LABEL_W) + "".join(value(runs[i]).rjust(POOL_COL_W) for i in chunk))
        out.append("")
    return out[:-1]


# ---------------------------------------------------------------- the whole report

def _header(result: InspectResult) -> list[str]:
    padding = result.settings.padding
    pad_to = f"padded to {result.max_length}" if padding == "max_length" else \
        f"padded to the longest (at most {result.max_length})"
    if result.settings.max_length_asked is None and result.max_length < 128:
        pad_to += " (the model's limit)"
    n = result.texts_count
    from padlens.inspector.inputs.tokenize import side_words

    side = side_words(result.padding_side, result.settings.padding_side_source)
    head = f"padlens inspect: {n} text{'s' if n != 1 else ''}, {pad_to}"
    return [f"{head}, {side}"] if len(head) + len(side) < 78 else [f"{head},", f"  {side}"]


def _legend(runs: list[RunResult]) -> list[str]:
    out = ["runs:"]
    for i, run in enumerate(runs, 1):
        delta = run.exposure_max_abs_diff
        exposure = "" if delta is None else f", exposure |d| {delta:.2g}"
        out.append(f"  [{i}] {run.label} on {run.provider} ({run.precision}, "
                   f"{len(run.layers) - 1} layers{exposure})")
    return out


def _key(columns: list[Column]) -> list[str]:
    return ["key:"] + [f"  {c.title:<13}{c.meaning}" for c in columns]


def _warnings(runs: list[RunResult]) -> list[str]:
    out = []
    for i, run in enumerate(runs, 1):
        out += [f"warning [{i}]: {w}" for w in run.warnings]
    return out


def render(result: InspectResult, width: int = WIDTH) -> str:
    """The terminal report: run legend, per-metric layer tables, pooling, warnings, key."""
    runs = result.runs
    lines = _header(result) + _legend(runs)
    columns = list(PAD_COLUMNS)
    with_attention = [i for i, run in enumerate(runs) if run.has_attention]
    for group in _run_groups(runs, width, per=len(runs)):
        picked = [runs[i] for i in group]
        ids = [i + 1 for i in group]
        lines += ["", "pad states per layer (layer 0 = embedding output)"]
        lines += layer_tables(PAD_COLUMNS, picked, ids, width)
    if with_attention:
        columns += ATTENTION_COLUMNS
        for group in _run_groups([runs[i] for i in with_attention], width, per=len(with_attention)):
            picked = [runs[with_attention[i]] for i in group]
            ids = [with_attention[i] + 1 for i in group]
            lines += ["", "attention (probabilities averaged over heads and queries)"]
            lines += layer_tables(ATTENTION_COLUMNS, picked, ids, width, first=1)
    lines += [""] + pooling_table(runs, list(range(1, len(runs) + 1)), width)
    notes = _warnings(runs)
    lines += ([""] + notes if notes else []) + [""] + _key(columns)
    return "\n".join(line.rstrip() for line in lines) + "\n"
