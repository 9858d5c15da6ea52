"""State comparisons shared by the checks: how far real tokens moved, and which case is worst."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from padlens.inspector.audit import tolerances as tl
from padlens.inspector.report.fmt import fmt_cos
from padlens.inspector.stats.cosine import row_cosines


@dataclass
class StateDiff:
    """How far one text's real-token states moved against its reference.

    Attributes:
        min_cos: lowest cosine of one real token's state, over every layer (1.0 when equal).
        cos_layer: the layer holding it (0 embeddings, 1..L blocks).
        max_delta: largest |Δ| of one token's state, relative to the mean state norm of
            the reference at that layer.
        delta_layer: the layer holding it.
        pooled_cos: cosine of the masked-mean pooled last layer.
        nonfinite_layer: first layer with NaN/Inf anywhere in the compared states, else None.
        layer_cos: per layer 0..L, the lowest cosine of one real token's state (-1 where non-finite).
        layer_delta: per layer 0..L, the largest relative |Δ| of one token's state (inf where non-finite).
    """

    min_cos: float = 1.0
    cos_layer: int = 0
    max_delta: float = 0.0
    delta_layer: int = 0
    pooled_cos: float = 1.0
    nonfinite_layer: int | None = None
    layer_cos: list[float] = field(default_factory=list)
    layer_delta: list[float] = field(default_factory=list)

    def first_beyond(self, cos: float | None, delta: float | None) -> int | None:
        """The first layer whose cosine is below ``cos`` or whose |Δ| is above ``delta``, else None."""
        for layer, (c, d) in enumerate(zip(self.layer_cos, self.layer_delta)):
            if (cos is not None and c < cos) or (delta is not None and d > delta):
                return layer
        return None

    @property
    def worst_cos(self) -> float:
        """The lower of the token and pooled cosines (the value the checks report)."""
        return min(self.min_cos, self.pooled_cos)

    def mark_nonfinite(self, layer: int) -> None:
        """Count NaN/Inf first seen at ``layer`` as the worst possible movement."""
        self.nonfinite_layer, self.min_cos, self.pooled_cos, self.cos_layer = layer, -1.0, -1.0, layer


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``stats.cosine.row_cosines`` of matching rows (its zero-row rule); NaN/Inf rows count as 0.0, the worst."""
    return np.nan_to_num(row_cosines(np.atleast_2d(a), np.atleast_2d(b)), nan=0.0)


def compare_states(ref: Sequence[np.ndarray], got: Sequence[np.ndarray]) -> StateDiff:
    """Compare per-layer real-token states ``[n, H]`` of a text with its reference.

    NaN/Inf in ``got`` (at any position handed in) sets ``nonfinite_layer`` and counts as
    the worst possible cosine. Layers of one shape are compared together (one set of numpy
    calls for every layer: the audit compares thousands of such pairs).
    """
    diff = StateDiff()
    stacked = _stacked(ref, got)
    if stacked is None:
        for layer, (r, g) in enumerate(zip(ref, got)):
            r64, g64 = np.asarray(r, np.float64), np.asarray(g, np.float64)
            if not np.isfinite(g64).all():
                if diff.nonfinite_layer is None:
                    diff.nonfinite_layer = layer
                diff.min_cos, diff.cos_layer = -1.0, layer
                diff.layer_cos.append(-1.0)
                diff.layer_delta.append(math.inf)
                continue
            cos = float(cosines(r64, g64).min()) if len(r64) else 1.0
            _note_layer(diff, layer, cos, _max_delta(r64[None], g64[None])[0] if len(r64) else 0.0)
    else:
        r64, g64 = stacked  # [L, n, H], every state finite, n >= 1
        cos = cosines(r64.reshape(-1, r64.shape[-1]), g64.reshape(-1, g64.shape[-1])).reshape(r64.shape[:2])
        for layer, (c, d) in enumerate(zip(cos.min(axis=1).tolist(), _max_delta(r64, g64).tolist())):
            _note_layer(diff, layer, c, d)
    if diff.nonfinite_layer is not None:
        diff.pooled_cos = -1.0
    elif len(ref) and len(ref[-1]):
        diff.pooled_cos = float(cosines(np.mean(np.asarray(ref[-1], np.float64), 0),
                                        np.mean(np.asarray(got[-1], np.float64), 0))[0])
    return diff


def _stacked(ref: Sequence[np.ndarray], got: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray] | None:
    """``ref`` and ``got`` as float64 ``[L, n, H]`` when every layer has one shape with n >= 1
    and ``got`` is finite; None when the layers must be compared one by one."""
    if not len(ref) or len(ref) != len(got):
        return None
    shape = np.shape(ref[0])
    if len(shape) != 2 or not shape[0] or any(np.shape(x) != shape for x in (*ref, *got)):
        return None
    g64 = np.asarray(got, np.float64)
    if not np.isfinite(g64).all():
        return None
    return np.asarray(ref, np.float64), g64


def _max_delta(r64: np.ndarray, g64: np.ndarray) -> np.ndarray:
    """Per layer of ``[L, n, H]``: the largest ‖g − r‖ of one token over the mean ‖r‖ (1 when 0)."""
    scale = np.linalg.norm(r64, axis=-1).mean(axis=-1)
    return np.linalg.norm(g64 - r64, axis=-1).max(axis=-1) / np.where(scale > 0, scale, 1.0)


def _note_layer(diff: StateDiff, layer: int, cos: float, delta: float) -> None:
    """Record ``layer``'s cosine and Δ; keep them when they are the worst so far (the first layer wins ties)."""
    diff.layer_cos.append(float(cos))
    diff.layer_delta.append(float(delta))
    if cos < diff.min_cos:
        diff.min_cos, diff.cos_layer = cos, layer
    if delta > diff.max_delta:
        diff.max_delta, diff.delta_layer = float(delta), layer


def first_nonfinite(layers: Sequence[np.ndarray]) -> int | None:
    """Index of the first layer holding NaN or Inf, else None."""
    for i, h in enumerate(layers):
        if not np.isfinite(h).all():
            return i
    return None


@dataclass
class Case:
    """One measured comparison: which text, what was done to it, how far it moved.

    Attributes:
        index: the text's index.
        what: what was done, in words ("padded to 17 (+8)").
        diff: the measured movement.
        added_pads: pads added to the text alone (padding cases), else 0.
        sides: (reference, variant) as ``trace.Side`` (batch, row, real tokens) where the case can be
            traced to its node, else None.
    """

    index: int
    what: str
    diff: StateDiff
    added_pads: int = 0
    sides: tuple | None = None


def score(diff: StateDiff, tol: tl.Tolerance) -> float:
    """How far past its tolerance a case is: <= 1 passes; NaN/Inf is infinitely bad."""
    if diff.nonfinite_layer is not None:
        return math.inf
    cos_part = (1.0 - diff.worst_cos) / max(1.0 - (tol.cos if tol.cos is not None else 0.0), 1e-15)
    delta_part = diff.max_delta / max(tol.delta, 1e-30) if tol.delta is not None else 0.0
    return max(cos_part, delta_part)


def worst(cases: list[Case], tol: tl.Tolerance) -> tuple[bool, Case | None]:
    """(every case within ``tol``, the worst case)."""
    if not cases:
        return True, None
    scored = [(score(c.diff, tol), c) for c in cases]
    top = max(scored, key=lambda sc: sc[0])
    return all(s <= 1.0 for s, _ in scored), top[1]


def describe(text_name: str, case: Case) -> str:
    """``text 3 'The kettle...' (9 tokens) padded to 17 (+8): min token cos ... at layer 4, ...``"""
    d = case.diff
    head = f"{text_name} {case.what}"
    if d.nonfinite_layer is not None:
        return f"{head}: NaN/Inf at layer {d.nonfinite_layer}"
    if d.max_delta == 0.0:
        return f"{head}: real tokens bit-identical at every layer"
    return (f"{head}: min token cos {fmt_cos(d.min_cos, precise=True)} at layer {d.cos_layer}, pooled cos "
            f"{fmt_cos(d.pooled_cos, precise=True)}, max |Δ| {d.max_delta:.3g} × state norm at layer "
            f"{d.delta_layer}")
