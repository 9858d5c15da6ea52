"""position_ids_follow_mask: do real tokens keep their positions under this padding side?

Two ways positions go wrong with padding. A graph fed ``position_ids`` gets whatever the
serving code computes: padlens feeds positions from the mask (0..n-1 on real tokens, either
side), and this check measures what ``arange(T)`` (a known serving-stack bug) would do
instead. A graph that counts positions itself from ``input_ids != padding_idx`` (RoBERTa,
XLM-R) trusts the pad ids: random or wrong ids under left pads count as tokens and shift every
real token's position; that is measured with random ids under the mask.
"""
from __future__ import annotations

from dataclasses import replace

from padlens.inspector.audit.compare import Case, worst
from padlens.inspector.audit.invariance import fold, random_pad_cases, state_diff
from padlens.inspector.audit.results import Verdict
from padlens.inspector.inputs.tokenize import arange_positions

NAME = "position_ids_follow_mask"


def arange_cases(ctx) -> list[Case]:
    """Each padded text with ``position_ids = arange(T)`` against the same batch with
    positions from the mask (what padlens feeds)."""
    probe = ctx.probe
    texts = [i for i in range(probe.count) if probe.has_pads(i)]
    probe.prefetch_padded([(i, probe.width, probe.side) for i in texts])
    batches = []
    for i in texts:
        batch = probe.rows([i], probe.width)
        batches.append(replace(batch, position_ids=arange_positions(batch.attention_mask)))
    cases = []
    for i, row in zip(texts, probe.run_alone(batches, texts)):
        cases.append(Case(i, f"{probe.side}-padded to {probe.width} with position_ids = arange",
                          state_diff(probe.padded(i).real, row)))
    return cases


def _arange_verdict(ctx) -> Verdict:
    cases, side = arange_cases(ctx), ctx.probe.side
    passed, _ = worst(cases, ctx.tol(NAME))
    if passed and side == "right":
        note = (f"With {side} padding, arange(T) gives real tokens the same positions as the mask "
                "(0..n-1), so a server computing them either way gets the same states.")
    elif passed:
        note = (f"With {side} padding, arange(T) shifts every real token's position by its pads, yet the "
                "states do not move: the graph's positions are relative (rotary), so a common shift cancels.")
    else:
        note = (f"With {side} padding, arange(T) shifts every real token's position by its pads: a server "
                "feeding arange (not cumsum(mask) - 1) embeds these texts wrongly. padlens feeds positions "
                "from the mask; pad on the right, or compute position ids from the mask.")
    scope = f"{len(cases)} texts, position_ids = arange(T) vs from the mask"
    return fold(ctx, NAME, cases, scope, across=None, note=note)


def _pad_ids_verdict(ctx) -> Verdict:
    facts, side = ctx.facts, ctx.probe.side
    cases = random_pad_cases(ctx, side)
    passed, _ = worst(cases, ctx.tol(NAME))
    if passed:
        note = (f"{facts.positions_from_ids}; with {side} padding the pads come after the real tokens, "
                "so whatever ids they hold cannot shift real positions.")
    else:
        note = (f"Cause: {facts.positions_from_ids}, so ids under the pads count: random or wrong pad "
                f"ids under {side} pads shift every real token's position. The mask is not at fault; pads "
                "must hold the pad id (padlens feeds it), or pad on the right.")
    scope = f"{len(cases)} texts, {side}-padded, pads replaced by random ids under the mask"
    return fold(ctx, NAME, cases, scope, across=None, note=note)


def position_ids_follow_mask(ctx) -> Verdict:
    """arange vs mask-derived position_ids (graphs fed them), or random pad ids shifting
    positions counted from input ids (RoBERTa, XLM-R)."""
    if ctx.facts.has_positions_input:
        return _arange_verdict(ctx)
    return _pad_ids_verdict(ctx)


CHECKS = {NAME: position_ids_follow_mask}
