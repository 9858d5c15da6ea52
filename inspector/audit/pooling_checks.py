"""last_token_pooling: what the naive last-token index ``sum(mask) - 1`` picks, per padding side.

Decoder embedders pool the state of their last real token. With right padding that is row
``sum(mask) - 1``; with left padding the last real token is the last row, and ``sum(mask) - 1``
points into the text (or at a pad): a known bug of serving stacks. padlens's own ``lasttoken``
pooling follows the mask on either side; this check measures the naive index's damage.
"""
from __future__ import annotations

import logging

import numpy as np

from padlens.inspector.audit.compare import cosines
from padlens.inspector.audit.invariance import other_side
from padlens.inspector.audit.results import Verdict
from padlens.inspector.report.fmt import fmt_cos

log = logging.getLogger(__name__)

NAME = "last_token_pooling"
SIDES = ("right", "left")


def naive_index(n: int, width: int, side: str) -> tuple[int, int]:
    """(``sum(mask) - 1``, the last real token's row) for ``n`` real tokens padded to ``width``."""
    return n - 1, (n - 1 if side == "right" else width - 1)


def side_cosines(probe, side: str) -> list[tuple[float, int]]:
    """Per padded text: (cos of the naive pick vs the last real token, text index), last layer."""
    texts = [i for i in range(probe.count) if probe.has_pads(i)]
    probe.prefetch_padded([(i, probe.width, side) for i in texts])
    out = []
    for i in texts:
        last = np.asarray(probe.padded(i, side=side)[-1], np.float64)
        naive, right = naive_index(probe.length(i), probe.width, side)
        out.append((float(cosines(last[naive], last[right])[0]), i))
    return out


def last_token_pooling(ctx) -> Verdict:
    """The naive index's pooled cosine against the last real token, on this side (the verdict)
    and on the other (reported)."""
    probe, tol = ctx.probe, ctx.tol(NAME)
    side, other = probe.side, other_side(probe)
    worst = {s: min(side_cosines(probe, s)) for s in (side, other)}
    value, text = worst[side]
    passed = value >= tol.cos
    words = {s: f"{s} padding: min pooled cos {fmt_cos(c, precise=True)} ({ctx.seqs.name(i)})"
             for s, (c, i) in worst.items()}
    detail = (f"naive index sum(mask) - 1 vs the last real token ({ctx.facts.last_token}): "
              f"{words[side]}; {words[other]}.")
    if passed:
        detail += f" With {side} padding the naive index is the last real token."
    else:
        detail += (f" With {side} padding sum(mask) - 1 picks another token than the last real one: a server "
                   "pooling that index embeds these texts wrongly. Take the last position whose mask is 1 "
                   "(padlens's lasttoken pooling does), or pad on the right.")
    return Verdict(passed, value, tol.cos, detail)


CHECKS = {NAME: last_token_pooling}
