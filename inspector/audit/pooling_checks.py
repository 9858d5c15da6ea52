"""last_token_pooling: what the naive last-token index ``sum(mask) - 1`` picks, per padding side.

Decoder embedders pool the state of their last real token. With right padding that is row
``sum(mask) - 1``; with left padding the last real token is the last row, and ``sum(mask) - 1``
points into the text (or at a pad): a known bug of serving stacks. padlens's own ``lasttoken``
pooling follows the mask on either side; this check measures the naive index's damage.
"""
from __future__ import annotations

import numpy as np

from padlens.inspector.audit.compare import cosines
from padlens.inspector.audit.invariance import other_side
from padlens.inspector.audit.results import Verdict
from padlens.inspector.report.fmt import fmt_cos

NAME = "last_token_pooling"
SIDES = ("right", "left")


def naive_index(n: int, width: int, side: str) -> tuple[int, int]:
    """(``sum(mask) - 1``, the last real token's row) for ``n`` real tokens padded to ``width``."""
    return n - 1, (n - 1 if side == "right" else width - 1)


def lands_on_pad(n: int, width: int, side: str) -> bool:
    """Whether ``sum(mask) - 1`` is a pad row: left padding with fewer real tokens than pads."""
    return side == "left" and n - 1 < width - n


def side_cosines(probe, side: str) -> list[tuple[float, int, bool]]:
    """Per padded text: (cos of the naive pick vs the last real token, text index, whether the
    pick is a pad), last layer. A zero pick (a zero pad state) has no direction: cos is NaN."""
    texts = [i for i in range(probe.count) if probe.has_pads(i)]
    probe.prefetch_padded([(i, probe.width, side) for i in texts])
    out = []
    for i in texts:
        last = np.asarray(probe.padded(i, side=side).last, np.float64)
        naive, right = naive_index(probe.length(i), probe.width, side)
        cos = float(cosines(last[naive], last[right])[0]) if last[naive].any() else float("nan")
        out.append((cos, i, lands_on_pad(probe.length(i), probe.width, side)))
    return out


def _worst(picks: list[tuple[float, int, bool]]) -> tuple[float, int]:
    """The lowest defined cosine and its text (NaN when every pick was a zero state)."""
    defined = [(c, i) for c, i, _ in picks if np.isfinite(c)]
    return min(defined) if defined else (float("nan"), picks[0][1])


def _side_words(side: str, picks: list[tuple[float, int, bool]], name) -> str:
    cos, text = _worst(picks)
    words = f"{side} padding: min pooled cos {fmt_cos(cos, precise=True)} ({name(text)})"
    on_pad = [p for p in picks if p[2]]
    if on_pad:
        zero = sum(1 for c, _, _ in on_pad if not np.isfinite(c))
        words += (f", the naive index lands on a pad in {len(on_pad)} of {len(picks)} texts"
                  + (f" ({zero} exactly zero pad states: no direction, no cosine)" if zero else ""))
    return words


def last_token_pooling(ctx) -> Verdict:
    """The naive index's pooled cosine against the last real token, on this side (the verdict)
    and on the other (reported)."""
    probe, tol = ctx.probe, ctx.tol(NAME)
    side, other = probe.side, other_side(probe)
    picks = {s: side_cosines(probe, s) for s in (side, other)}
    value, _ = _worst(picks[side])
    passed = not any(p[2] for p in picks[side]) and bool(value >= tol.cos)
    words = {s: _side_words(s, p, ctx.seqs.name) for s, p in picks.items()}
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
