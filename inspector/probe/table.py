"""Render a ProbeResult for an 80-column terminal: per run and target, layers × (pads, real tokens)."""
from __future__ import annotations

import textwrap

from padlens.inspector.probe.run import ProbeResult, ProbeRun
from padlens.inspector.report.fmt import fmt_num

COLUMNS = ("score", "control", "selectivity", "baseline")
HEADS = ("score", "ctrl", "select", "base")
LAYER_W, COL_W, GAP = 7, 8, 3
DESCRIBE = {
    "length": "the text's length in real tokens",
    "distance": "|position - position of the last real token|",
    "content": "the text's mean real-token state at this layer",
    "first_token": "the text's first word token",
}
UNITS = {"r2": "R²", "cosine": "mean cosine", "accuracy": "accuracy"}


def fmt(value) -> str:
    """A probe score: 3 decimals, missing or NaN as 'n/a' (``report.fmt.fmt_num``)."""
    return fmt_num(value, missing="n/a")


def render(result: ProbeResult) -> str:
    """The terminal report: header, one block per run and target, reasons, key."""
    lines = textwrap.wrap(f"padlens probe: {result.texts_count} texts, max length {result.max_length}, "
                          f"{result.padding_side} padding, seed {result.settings.get('seed', 0)}", 79)
    for number, run in enumerate(result.runs, 1):
        lines += [""] + [part for line in run_header(run, number)
                         for part in textwrap.wrap(line, 79, subsequent_indent="    ")]
        for target in targets_of(run):
            lines += [""] + target_block(run, target)
        lines += _notes(run)
    lines += [""] + _key()
    return "\n".join(line.rstrip() for line in lines) + "\n"


def run_header(run: ProbeRun, number: int) -> list[str]:
    """Two lines: the run, its dimensions and split; how many pad and real states were sampled."""
    window = run.pad_window
    return [f"[{number}] {run.label} on {run.provider}: {run.dims} dims, "
            f"{run.split['train']} training / {run.split['test']} test texts",
            f"    pads: {window['pads']} states from {window['texts']} texts (window from position "
            f"{window['floor']}); real tokens: {run.real_states} states"]


def targets_of(run: ProbeRun) -> list[str]:
    """The run's targets in the order its probes list them."""
    seen: list[str] = []
    for layer in run.layers:
        for p in layer.probes:
            if p.target not in seen:
                seen.append(p.target)
    return seen


def target_block(run: ProbeRun, target: str) -> list[str]:
    """A title, a two-level header (pads | real tokens) and one row per layer."""
    first = next(p for p in run.layers[0].probes if p.target == target)
    about = DESCRIBE.get(target, f"the column {target.split(':', 1)[-1]!r} of the texts file")
    title = f"{target}: {about} ({UNITS.get(first.metric, first.metric)})"
    side = len(COLUMNS) * COL_W
    top = " " * LAYER_W + "pads".center(side) + " " * GAP + "real tokens".center(side)
    heads = "".join(h.rjust(COL_W) for h in HEADS)
    lines = [title, top, "layer".ljust(LAYER_W) + heads + " " * GAP + heads]
    for layer in run.layers:
        cells = []
        for states in ("pad", "real"):
            p = layer.get(target, states)
            cells.append("".join(fmt(getattr(p, c) if p else None).rjust(COL_W) for c in COLUMNS))
        name = f"{layer.index} emb" if layer.index == 0 else str(layer.index)
        lines.append(name.ljust(LAYER_W) + cells[0] + " " * GAP + cells[1])
    return lines


def summary(run: ProbeRun) -> list[str]:
    """A short table of what one pad state reveals per layer: length, content, first word,
    each as score (control); for the demo."""
    cells = (("length", "length R²"), ("content", "content cos"), ("first_token", "first word acc"))
    width = 18
    lines = ["layer".ljust(LAYER_W) + "".join(title.rjust(width) for _, title in cells)]
    for layer in run.layers:
        row = ("0 emb" if layer.index == 0 else str(layer.index)).ljust(LAYER_W)
        for target, _ in cells:
            p = layer.get(target, "pad")
            row += (f"{fmt(p.score)} ({fmt(p.control)})" if p and p.applicable else "n/a").rjust(width)
        lines.append(row)
    return lines


def _notes(run: ProbeRun) -> list[str]:
    reasons = []
    for layer in run.layers:
        for p in layer.probes:
            note = f"{p.target} from {p.states} states: {p.reason}"
            if p.reason and note not in reasons:
                reasons.append(note)
    lines = [f"note: {w}" for w in run.warnings] + reasons
    wrapped = [part for line in lines for part in textwrap.wrap(line, 79, subsequent_indent="    ")]
    return ([""] + wrapped) if wrapped else []


def _key() -> list[str]:
    text = ("score: the probe on held-out texts. ctrl: the same probe trained and scored on "
            "targets shuffled between texts (the floor). select = score - ctrl. base: a predictor "
            "that ignores the state (training mean or majority class). Pads are sampled where "
            "every probed text has a pad, so a pad's position says nothing about its text; real "
            "tokens exclude [CLS]/[SEP]. --json has 95% bootstrap intervals and the counts.")
    return textwrap.wrap(text, 79)
