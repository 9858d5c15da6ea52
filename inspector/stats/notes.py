"""The words shown to users about what a run's pad statistics cannot say, and why (each said once)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from padlens.inspector.stats.accumulators import AttentionStats, PadStats


def pad_notes(layers: Sequence[PadStats]) -> list[str]:
    """What a run's pad statistics cannot say, and why, each said once (layer 0 first): NaN/Inf
    faults per layer; pad states exactly zero (degenerate, not undefined: pad_norm 0, no
    direction for the cosines); no pads at all (pad metrics undefined)."""
    notes = [f"layer {i}: {s.failed} of {s.sequences} sequences had NaN or Inf states: their pad "
             "metrics are left out (real_norm kept where the real tokens are finite)"
             for i, s in enumerate(layers) if s.failed]
    zero = [i for i, s in enumerate(layers) if s.zero_pads]
    if zero:
        every = all(layers[i].zero_pads == layers[i].pads for i in zero)
        share = "" if every else " (" + ", ".join(f"{layers[i].zero_pads} of {layers[i].pads}" for i in zero) + ")"
        notes.append(f"pad states are exactly zero at layers {_spans(zero)}{share}: norm 0 (in pad_norm), "
                     "no direction (left out of the pad cosines)")
    if layers and layers[0].sequences and not layers[0].padded:
        notes.append("no text has pads (each filled max length, or padding to the longest of one): "
                     "pad metrics are undefined")
    return notes


def attention_notes(layers: Sequence[AttentionStats | None]) -> list[str]:
    """NaN/Inf attention probabilities, said once for every layer that has them (layer 1 first)."""
    bad = [(i, s) for i, s in enumerate(layers) if s is not None and s.failed]
    if not bad:
        return []
    counts = ", ".join(f"{s.failed} of {s.sequences}" for _, s in bad)
    return [f"attention probabilities hold NaN or Inf at layers {_spans([i for i, _ in bad])} ({counts} sequences; "
            "e.g. a fully masked pad query): pad-query masses left out, real->pad kept where real queries are finite"]


def _spans(indexes: list[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2, 5"``."""
    spans: list[list[int]] = []
    for i in indexes:
        if spans and spans[-1][1] == i - 1:
            spans[-1][1] = i
        else:
            spans.append([i, i])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)
