"""Invariance checks: padding, batch neighbours and the mask must not move real tokens."""
from __future__ import annotations

import math

import numpy as np

from padlens.inspector.audit.cache import Probe
from padlens.inspector.audit.compare import Case, StateDiff, compare_states, describe, worst
from padlens.inspector.audit.graph_checks import names
from padlens.inspector.audit.results import DriftPoint, Evidence, Verdict
from padlens.inspector.audit.trace import LeakNode, Side
from padlens.inspector.audit.variants import Row, with_blank_rows, with_random_pads

# --------------------------------------------------------------------------- shared wording


def likely_cause(facts, diff: StateDiff | None, across: str = "padding") -> str:
    """The most probable reason real tokens moved, in one sentence."""
    if diff is not None and diff.nonfinite_layer is not None:
        return ("Likely cause: a softmax over a row that is all -inf, or a 0/0 in masked pooling, "
                f"produced NaN/Inf first at layer {diff.nonfinite_layer}.")
    if facts.dynamic:
        return (f"Likely cause: dynamic activation quantization ({len(facts.dynamic)} nodes, e.g. "
                f"{names(facts.dynamic, 2)}) takes one scale over the whole tensor, so pads and batch "
                "neighbours set the scale real tokens are rounded with.")
    if facts.mask_quantized:
        return f"Likely cause: the attention-mask path is quantized ({names(facts.mask_quantized, 2)})."
    if across == "pad ids" and facts.positions_from_ids:
        return (f"Likely cause: {facts.positions_from_ids}: ids under the pads count as tokens and shift "
                "real positions (see position_ids_follow_mask); the mask itself is not at fault.")
    if facts.mask_ignored:
        return "Likely cause: the graph ignores the attention mask, so real tokens attend to pads."
    if across == "batch":
        return "Likely cause: an op mixes rows of the batch (a reduction or a scale over the batch axis)."
    return ("Likely cause: an op mixes positions without the mask (attention without the additive "
            "mask, or a mean/max/norm over the sequence axis).")


def state_diff(ref: list[np.ndarray], row: Row) -> StateDiff:
    """Compare the real tokens of ``row`` with ``ref``; NaN anywhere in the row (pads too) counts."""
    d = compare_states(ref, row.real)
    if row.nonfinite is not None and d.nonfinite_layer is None:
        d.mark_nonfinite(row.nonfinite)
    return d


def evidence(ctx, top: Case, tol) -> Evidence:
    """``top``'s drift per layer, its first layer beyond ``tol`` and its worst layer."""
    d = top.diff
    first = d.nonfinite_layer if d.nonfinite_layer is not None else d.first_beyond(tol.cos, tol.delta)
    return Evidence(ctx.seqs.name(top.index), top.what, tuple(1.0 - c for c in d.layer_cos), tuple(d.layer_delta),
                    tol.cos, tol.delta, first, d.cos_layer)


def _first_words(ev: Evidence) -> str:
    """Where the drift begins, beside the worst layer the case names."""
    if ev.first_layer is None:
        return ""
    return f"; first beyond the tolerance at layer {ev.first_layer}"


def traced(ctx, top: Case, ev: Evidence) -> LeakNode | None:
    """The node where ``top``'s leak enters (``trace.py``), or None when it cannot be traced."""
    if top.sides is None or ev.first_layer is None or top.diff.nonfinite_layer is not None:
        return None
    from padlens.inspector.audit.trace import trace

    return trace(ctx.probe.encoder, ev.first_layer, *top.sides, ctx.tol("padding_invariance").delta
                 if ev.delta_ceiling is None else ev.delta_ceiling)


def fold(ctx, name: str, cases: list[Case], scope: str, across: str | None = "padding",
         note: str = "") -> Verdict:
    """Fold ``cases`` into one verdict that names the worst one, where its drift begins, its likely
    cause and, for a failed check whose cases can be traced, the node where the leak enters."""
    tol = ctx.tol(name)
    passed, top = worst(cases, tol)
    if top is None:
        return Verdict(True, None, tol.cos, f"not measured: {note or 'no case applies'}")
    ev = evidence(ctx, top, tol)
    detail = (f"worst of {scope}: {describe(ctx.seqs.name(top.index), top)}{_first_words(ev)} "
              f"({'within' if passed else 'beyond'} min cos {tol.cos:g}, max |Δ| {tol.delta:g}).")
    node = None if passed else traced(ctx, top, ev)
    if not passed and across is not None:
        detail += " " + likely_cause(ctx.facts, top.diff, across)
    if node is not None:
        detail += f" Traced: {node.words()}."
    if note:
        detail += " " + note
    return Verdict(passed, top.diff.worst_cos, tol.cos, detail, node=node, evidence=ev)


# --------------------------------------------------------------------------- measurements


def pad_targets(n: int, width: int) -> list[int]:
    """The widths a text of ``n`` tokens is padded to: +1, +8 and the full width."""
    return sorted({min(n + 1, width), min(n + 8, width), width} - {n})


def measure_padding(probe: Probe) -> list[Case]:
    """Each text padded alone to +1, +8 and the width, against the text alone unpadded (the
    width's variant is cached: other checks read it; +1 and +8 are measured and dropped)."""
    cases = []
    probe.prefetch_references(range(probe.count))
    probe.prefetch_padded([(i, probe.width, probe.side) for i in range(probe.count) if probe.has_pads(i)])
    shorter = [(i, w) for i in range(probe.count) for w in pad_targets(probe.length(i), probe.width)
               if w != probe.width]
    rows = dict(zip(shorter, probe.run_alone([probe.rows([i], w) for i, w in shorter], [i for i, _ in shorter])))
    for i in range(probe.count):
        n, ref = probe.length(i), probe.reference(i).real
        for width in pad_targets(n, probe.width):
            row = probe.padded(i) if width == probe.width else rows.pop((i, width))
            sides = (Side(probe.rows([i], n), 0, n), Side(probe.rows([i], width), 0, n))
            cases.append(Case(i, f"padded to {width} (+{width - n})", state_diff(ref, row), added_pads=width - n,
                              sides=sides))
    return cases


def drift_points(ctx) -> list[DriftPoint]:
    """The report's drift-against-pad-length points, from padding_invariance's measurements."""
    return [DriftPoint(ctx.label, ctx.facts.precision, c.index, ctx.probe.length(c.index),
                       c.added_pads, float(c.diff.min_cos),
                       float(c.diff.pooled_cos),
                       math.inf if c.diff.nonfinite_layer is not None else float(c.diff.max_delta))
            for c in ctx.padding_cases]


def random_pad_cases(ctx, side: str) -> list[Case]:
    """Pads (on ``side``) replaced by random vocabulary ids under the same mask, per text."""
    probe, rng, cases = ctx.probe, np.random.default_rng(ctx.seed), []
    texts = [i for i in range(probe.count) if probe.has_pads(i)]
    batches = [with_random_pads(probe.rows([i], probe.width, side), rng, ctx.seqs.vocab) for i in texts]
    probe.prefetch_padded([(i, probe.width, side) for i in texts])
    for i, row in zip(texts, probe.run_alone(batches, texts)):
        cases.append(Case(i, f"{side}-padded to {probe.width} with random ids under the mask",
                          state_diff(probe.padded(i, side=side).real, row)))
    return cases


def other_side(probe: Probe) -> str:
    """The padding side the probe does not use."""
    return "left" if probe.side == "right" else "right"


# --------------------------------------------------------------------------- checks


def padding_invariance(ctx) -> Verdict:
    """Real tokens padded by +1, +8 and to the full width against each text alone."""
    cases, probe = ctx.padding_cases, ctx.probe
    scope = (f"{probe.count} texts × pad lengths +1, +8 and {probe.width} ({probe.side} padding) "
             "against each text alone")
    return fold(ctx, "padding_invariance", cases, scope)


def batch_neighbour_invariance(ctx) -> Verdict:
    """Each text batched beside a short and a full-width neighbour against the text alone."""
    probe, cases = ctx.probe, []
    for i in range(probe.count):
        batch, row = probe.neighbour_batch(i)
        (states,) = probe.batch_rows(batch, [row])
        others = [int(n) for k, n in enumerate(batch.lengths) if k != row]
        what = (f"between a {min(others)}-token and a {max(others)}-token neighbour" if len(others) == 2
                else f"in a batch of {len(batch.lengths)} (neighbours of {min(others)} to {max(others)} tokens)")
        n = probe.length(i)
        alone = Side(probe.rows([i], probe.width if probe.has_pads(i) else n), 0, n)
        cases.append(Case(i, what, state_diff(probe.baseline(i), states), sides=(alone, Side(batch, row, n))))
    scope = (f"{len(cases)} texts, each batched beside neighbours up to {probe.width} tokens, "
             "against the same text padded alone to the same length")
    return fold(ctx, "batch_neighbour_invariance", cases, scope, across="batch")


def _all_ones_words(ctx) -> str:
    """Part (b) of mask_honoured in words: what an all-ones mask did, or why it cannot tell."""
    facts = ctx.facts
    if facts.mask_probe_blind:
        return ("(b) all-ones mask: not applicable — a causal model padded on the right: real tokens never "
                "see the later pads, so unmasking them cannot move real tokens.")
    return (f"(b) an all-ones mask moves {ctx.seqs.name(facts.mask_effect_text)} by {facts.mask_effect:.3g} "
            "× state norm" + (" — the mask is ignored (baked into the graph or unused)." if facts.mask_ignored
                              else ": the mask is used."))


def mask_honoured(ctx) -> Verdict:
    """Random ids under the mask must not move real tokens; an all-ones mask must."""
    facts, tol, side, where = ctx.facts, ctx.tol("mask_honoured"), ctx.probe.side, ""
    if facts.positions_from_ids and side == "left":  # random left pad ids shift positions: not the mask
        side, where = "right", (" (measured right-padded: on the left, random pad ids shift the positions "
                                "this graph counts from input ids; position_ids_follow_mask reports that)")
    cases = random_pad_cases(ctx, side)
    passed_a, top = worst(cases, tol)
    part_a = f"(a) random pad ids, worst: {describe(ctx.seqs.name(top.index), top)}{where}"
    passed = passed_a and not facts.mask_ignored
    detail = f"{part_a} ({'within' if passed_a else 'beyond'} min cos {tol.cos:g}); {_all_ones_words(ctx)}"
    if not passed_a:
        detail += " " + likely_cause(facts, top.diff, across="pad ids")
    return Verdict(passed, top.diff.worst_cos, tol.cos, detail)


def fully_masked_row(ctx) -> Verdict:
    """A row with every position masked beside a text: finite states, the text unmoved."""
    probe, cases = ctx.probe, []
    for i in range(probe.count):
        batch = with_blank_rows(probe.rows([i, i], probe.width), [1], ctx.seqs.pad_type)
        text, blank = probe.batch_rows(batch, [0, 1])
        d = state_diff(probe.baseline(i), text)
        if blank.nonfinite is not None:
            d.mark_nonfinite(blank.nonfinite)
        cases.append(Case(i, f"beside a {probe.width}-token row whose mask is all zeros", d))
    scope = f"{len(cases)} texts, each batched beside a fully masked row (all pads, mask 0)"
    return fold(ctx, "fully_masked_row", cases, scope, across="batch")


def left_padding(ctx) -> Verdict:
    """The texts padded on the other side against each text alone."""
    probe, other, cases = ctx.probe, other_side(ctx.probe), []
    probe.prefetch_padded([(i, probe.width, other) for i in range(probe.count) if probe.has_pads(i)])
    for i in range(probe.count):
        if not probe.has_pads(i):
            continue
        row = probe.padded(i, side=other)  # cached: mask_honoured_other_side's baseline
        cases.append(Case(i, f"{other}-padded to {probe.width} vs {probe.side}-padded",
                          state_diff(probe.baseline(i), row)))
    passed, _ = worst(cases, ctx.tol("left_padding"))
    return fold(ctx, "left_padding", cases, f"{len(cases)} texts", across=None,
                note="" if passed else _left_note(ctx.facts))


def _left_note(facts) -> str:
    if facts.has_positions_input:
        return ("padlens feeds position_ids from the mask on both sides (real tokens hold 0..n-1), so "
                "positions do not explain it: an op sees the pads (attention without the mask, or a fused "
                "op assuming right padding).")
    if facts.positions_from_ids:
        return (f"{facts.positions_from_ids}: with pad ids under the pads, left padding keeps real "
                "positions, so positions do not explain it.")
    return ("Expected for absolute-position models (BERT, MiniLM): left padding shifts every real "
            "token's position unless position ids are supplied; pad on the right.")


def mask_honoured_other_side(ctx) -> Verdict:
    """Random pad ids on the other padding side must not move real tokens either."""
    other = other_side(ctx.probe)
    cases = random_pad_cases(ctx, other)
    passed, _ = worst(cases, ctx.tol("mask_honoured_other_side"))
    note = ""
    if not passed and ctx.facts.positions_from_ids and other == "left":
        note = likely_cause(ctx.facts, None, across="pad ids")
    elif not passed and ctx.facts.mask_as_lengths:
        note = (f"Likely cause: {names(ctx.facts.mask_as_lengths, 2)} turn(s) the mask into sequence "
                "lengths (ONNX Runtime's fused EmbedLayerNormalization mask index), which assumes right "
                f"padding: {other}-padded inputs are masked wrongly.")
    scope = f"{len(cases)} texts, {other}-padded, pads replaced by random ids under the mask"
    return fold(ctx, "mask_honoured_other_side", cases, scope, across=None, note=note)


CHECKS = {"padding_invariance": padding_invariance, "batch_neighbour_invariance": batch_neighbour_invariance,
          "mask_honoured": mask_honoured, "fully_masked_row": fully_masked_row, "left_padding": left_padding,
          "mask_honoured_other_side": mask_honoured_other_side}
