"""Pad metrics: small pure numpy functions and mergeable accumulators (DESIGN.md definitions).

Every accumulator holds sums of per-sequence values and counts, in float64, so batches,
processes and machines combine exactly with ``merge``. Nothing is O(n²) over positions and no
activation is stored, except the capped per-text vectors that the cross-text metrics
(``pad_content_rsa``, pooling k-NN and Spearman) need: the first ``TEXT_CAP`` texts only.

Zero states are degenerate, not undefined (DESIGN.md): a state that is exactly zero (a zero
embedding row; pads that only see zero pads) has norm 0, counts in the norms, and has no
direction: it is left out of every cosine and counted (``PadStats.zero_pads``). NaN/Inf is a
fault: a sequence with a non-finite state at a layer is counted in ``failed`` and left out of
that layer's pad metrics; its ``real_norm`` still counts when its real tokens are finite.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from padlens.inspector.stats.cosine import row_cosines


def _quiet(func):
    """NaN/Inf states are expected input (counted as failures), not warnings."""
    @functools.wraps(func)
    def inner(*args, **kwargs):
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return func(*args, **kwargs)
    return inner

SEQUENCE_METRICS = ("pad_pad_cos", "pad_real_cos", "pad_norm", "real_norm", "pad_anchor_cos", "pad_step")
ATTENTION_METRICS = ("pad_to_cls", "pad_to_sep", "pad_to_content", "pad_to_pad", "real_to_pad")
OFFSET_BUCKETS = 12  # offsets 1, 2, 3-4, 5-8, ..., 1025+ (the last bucket is open)
TEXT_CAP = 2000  # per-text vectors kept for the cross-text metrics
KNN_K = 5


# ---------------------------------------------------------------- small pure functions

@_quiet
def unit_rows(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(h / ‖h‖, ‖h‖)`` over the last axis, in float64 (0/0 gives NaN)."""
    h = np.asarray(h, dtype=np.float64)
    norms = np.sqrt(np.einsum("...h,...h->...", h, h))
    with np.errstate(divide="ignore", invalid="ignore"):
        return h / norms[..., None], norms


@_quiet
def prepare(h: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(h, ‖h‖, 1/‖h‖)`` in float64: computed once per layer and batch and shared by the
    metrics, which weight rows by 1/‖h‖ instead of materialising unit vectors. A zero or
    non-finite row weighs 0 (no direction); its states are zeroed so it adds nothing to a sum."""
    h = np.asarray(h, dtype=np.float64)
    finite = np.isfinite(h).all(axis=-1)
    if not finite.all():  # 0 × NaN is NaN: a faulty row would spoil its sequence's other sums
        h = np.where(finite[..., None], h, 0.0)
    norms = np.sqrt(np.einsum("bth,bth->bt", h, h))
    inv = np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1.0), 0.0)
    return h, np.where(finite, norms, np.nan), inv


def valid_sequences(h: np.ndarray) -> np.ndarray:
    """``[B]`` bool: True where the states ``[B, T, H]`` are all finite (a zero state is valid:
    it has norm 0 and no direction, see the module docstring)."""
    return np.isfinite(np.asarray(h)).all(axis=(1, 2))


def finite_real(h: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``[B]`` bool: the real tokens' states are finite (a faulty pad never drops them)."""
    finite = np.isfinite(np.asarray(h)).all(axis=-1)
    return (finite | (np.asarray(mask) == 0)).all(axis=1)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with NaN where den is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


@_quiet
def pad_sequence_metrics(h: np.ndarray, mask: np.ndarray,
                         prepared: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """DESIGN.md's four metrics per sequence, from sums of unit vectors.

    ``h`` is ``[B, T, H]``, ``mask`` ``[B, T]`` (1 real incl. specials, 0 pad). Returns arrays
    ``[B]``: ``pad_pad_cos`` = (‖Σu_p‖² − |P|)/(|P|(|P|−1)) (NaN when |P| < 2),
    ``pad_real_cos`` = (Σu_p)·(Σu_r)/(|P||R|), ``pad_norm`` / ``real_norm`` = mean ‖h‖ over
    P / R (NaN when the set is empty), plus ``n_pad``, ``n_real``, ``zero_pad`` and ``valid``.
    Zero states count in the norms and are left out of the cosines (|P|, |R| count the states
    that have a direction). ``prepared`` is ``prepare(h)`` when the caller already has it.
    """
    h64, norms, inv = prepared if prepared is not None else prepare(h)
    pad = (np.asarray(mask) == 0).astype(np.float64)
    real = 1.0 - pad
    weights = np.stack([pad * inv, real * inv], axis=1)  # Σ u = Σ h/‖h‖: [B, 2, T] @ [B, T, H]
    s_p, s_r = np.moveaxis(np.matmul(weights, h64), 1, 0)
    per = sequence_metrics_from_sums(norms, s_p, s_r, mask, valid_sequences(h))
    per["real_valid"] = finite_real(h, mask)
    return per


@_quiet
def sequence_metrics_from_sums(norms: np.ndarray, pad_sum: np.ndarray, real_sum: np.ndarray,
                               mask: np.ndarray, valid: np.ndarray) -> dict[str, np.ndarray]:
    """``pad_sequence_metrics`` from its sums: ``norms`` ``[B, T]`` = ‖h‖, ``pad_sum`` /
    ``real_sum`` ``[B, H]`` = Σu over P / over R (zero states add nothing), ``valid`` ``[B]``
    (float64 wherever given; the in-graph statistics of ``padlens.inspector.stats.ingraph``
    bring these sums). The cosines count only the states with a direction (norm > 0)."""
    pad = (np.asarray(mask) == 0).astype(np.float64)
    real = 1.0 - pad
    norms = np.asarray(norms, np.float64)
    directed, zero = norms > 0, norms == 0  # NaN norms (faults): neither
    n_p, n_r = pad.sum(1), real.sum(1)
    d_p, d_r = (directed * pad).sum(-1), (directed * real).sum(-1)  # may be [L, B]
    s_p, s_r = np.asarray(pad_sum, np.float64), np.asarray(real_sum, np.float64)
    return {  # leading axes before [B] (layers stacked) broadcast: see add_layer_sums
        "pad_pad_cos": _safe_div(np.einsum("...h,...h->...", s_p, s_p) - d_p, d_p * (d_p - 1)),
        "pad_real_cos": _safe_div(np.einsum("...h,...h->...", s_p, s_r), d_p * d_r),
        "pad_norm": _safe_div(np.where(pad > 0, norms, 0.0).sum(-1), n_p),
        "real_norm": _safe_div(np.where(real > 0, norms, 0.0).sum(-1), n_r),
        "n_pad": n_p, "n_real": n_r, "zero_pad": (zero * pad).sum(-1), "valid": np.asarray(valid, bool),
    }


def pad_anchor(mask: np.ndarray) -> np.ndarray:
    """``[B]`` index of the pad next to the content: the first pad when padding is on the
    right, the last pad when it is on the left (the index is meaningless without pads)."""
    pad = np.asarray(mask) == 0
    t = pad.shape[1]
    first_pad = pad.argmax(1)
    last_pad = t - 1 - pad[:, ::-1].argmax(1)
    real = ~pad
    last_real = np.where(real.any(1), t - 1 - real[:, ::-1].argmax(1), -1)
    return np.where(last_pad > last_real, first_pad, last_pad)


def offset_bucket(offset: np.ndarray) -> np.ndarray:
    """Bucket of a pad offset ≥ 1: 1→0, 2→1, 3-4→2, 5-8→3, … (ceil log2), capped."""
    offset = np.maximum(np.asarray(offset, dtype=np.int64), 1)
    bucket = np.ceil(np.log2(offset)).astype(np.int64)
    return np.minimum(bucket, OFFSET_BUCKETS - 1)


def offset_bucket_labels() -> list[str]:
    """Labels of the offset buckets: "1", "2", "3-4", "5-8", …, "1025+"."""
    labels = ["1", "2"]
    for b in range(2, OFFSET_BUCKETS):
        lo, hi = 2 ** (b - 1) + 1, 2 ** b
        labels.append(f"{lo}+" if b == OFFSET_BUCKETS - 1 else f"{lo}-{hi}")
    return labels


@_quiet
def pad_position_metrics(h: np.ndarray, mask: np.ndarray,
                         prepared: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """How pad states change along positions, per sequence.

    The anchor a is the pad next to the content (``pad_anchor``); the offset of pad p is
    |p − a|. Returns ``pad_anchor_cos`` ``[B]`` = mean over p ∈ P, p ≠ a of cos(h_p, h_a)
    (NaN when |P| < 2); ``pad_step`` ``[B]`` = mean ‖h_p − h_{p+1}‖ over neighbouring pads
    (both in P; NaN when there is no such pair); and ``cos_to_anchor`` / ``offset`` ``[B, T]``
    with ``is_offset`` marking the pads p ≠ a (for the per-offset curve). A zero pad or anchor
    has no direction: its cosine is NaN and left out. ``prepared`` as in ``pad_sequence_metrics``.
    """
    h64, norms, inv = prepared if prepared is not None else prepare(h)
    b, t = np.asarray(mask).shape
    anchor = pad_anchor(mask)
    rows = np.arange(b)
    dots = np.matmul(h64, h64[rows, anchor][:, :, None])[..., 0]  # h_p · h_a: [B, T]
    directed = (norms > 0) & (norms[rows, anchor] > 0)[:, None]
    cos = np.where(directed, dots * inv * inv[rows, anchor][:, None], np.nan)
    steps = np.linalg.norm(h64[:, 1:] - h64[:, :-1], axis=-1) if t > 1 else np.zeros((b, 0))
    return position_metrics_from_sums(cos, steps, mask)


@_quiet
def position_metrics_from_sums(cos: np.ndarray, steps: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    """``pad_position_metrics`` from ``cos`` ``[B, T]`` = cos(h_t, h_anchor) (anchor:
    ``pad_anchor(mask)``) and ``steps`` ``[B, T-1]`` = ‖h_t − h_{t+1}‖. A NaN cosine (a zero
    pad or anchor: no direction) is left out of the mean and of the per-offset curve."""
    pad = np.asarray(mask) == 0
    t = pad.shape[1]
    anchor = pad_anchor(mask)
    offset = np.abs(np.arange(t)[None, :] - anchor[:, None])
    is_offset = pad & (offset > 0) & np.isfinite(cos)  # cos may be [L, B, T]: so is is_offset
    anchor_cos = _safe_div(np.where(is_offset, cos, 0.0).sum(-1), is_offset.sum(-1))
    pairs = pad[:, 1:] & pad[:, :-1]
    step = _safe_div(np.where(pairs, steps, 0.0).sum(-1), pairs.sum(1))
    return {"pad_anchor_cos": anchor_cos, "pad_step": step, "cos_to_anchor": cos,
            "offset": offset, "is_offset": is_offset}


@_quiet
def attention_sequence_masses(probs: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    """Attention mass per sequence, averaged over heads and queries.

    ``probs`` ``[B, heads, T(query), T(key)]``. [CLS] is the first real position, [SEP] the
    last real one (the same key when a sequence has one real token), content the other real
    positions. ``pad_to_*`` average over pad queries (NaN without pads); ``real_to_pad`` is the
    mass real queries put on pad keys (≈ 0 when the mask works). Also ``valid`` ``[B]``.
    """
    p = np.asarray(probs).mean(axis=1, dtype=np.float64)  # no float64 copy of [B, heads, T, T]
    masses = np.matmul(p, key_groups(mask))  # one pass over p for the four key groups: [B, T(query), 4]
    valid = np.isfinite(p).all(axis=(1, 2))  # NaN/Inf in any head survives the head mean
    return masses_per_sequence(masses, mask, valid)


KEY_GROUPS = ("cls", "sep", "content", "pad")


def key_groups(mask: np.ndarray) -> np.ndarray:
    """``[B, T(key), 4]`` float64 one-hot of each key's group, in ``KEY_GROUPS`` order: [CLS]
    (first real), [SEP] (last real), content (other real positions), pad."""
    real = np.asarray(mask) != 0
    b, t = real.shape
    rows = np.arange(b)
    cls = np.zeros((b, t), bool)
    sep = np.zeros((b, t), bool)
    cls[rows, real.argmax(1)] = real.any(1)
    sep[rows, t - 1 - real[:, ::-1].argmax(1)] = real.any(1)
    content = real & ~cls & ~sep
    return np.stack([cls, sep, content, ~real], axis=2).astype(np.float64)


@_quiet
def masses_per_sequence(masses: np.ndarray, mask: np.ndarray, valid: np.ndarray) -> dict[str, np.ndarray]:
    """``attention_sequence_masses`` from ``masses`` ``[B, T(query), 4]``: the head-mean
    attention each query puts on each key group (``key_groups``), and ``valid`` ``[B]``. A NaN
    row (a fully masked pad query) leaves ``real_to_pad`` defined: ``real_valid`` marks the
    sequences whose real queries are finite."""
    real = np.asarray(mask) != 0
    masses = np.asarray(masses, np.float64)
    rows_ok = np.isfinite(masses).all(-1)  # [..., B, T(query)]
    masses = np.where(rows_ok[..., None], masses, 0.0)
    mass = {k: masses[..., i] for i, k in enumerate(KEY_GROUPS)}
    padf, realf = (~real).astype(np.float64), real.astype(np.float64)
    out = {f"pad_to_{k}": _safe_div((m * padf).sum(-1), padf.sum(1)) for k, m in mass.items()}  # m may be [A, B, T]
    out["real_to_pad"] = _safe_div((mass["pad"] * realf).sum(-1), realf.sum(1))
    out["valid"] = np.asarray(valid, bool)
    out["real_valid"] = (rows_ok | ~real).all(-1)
    return out


def rankdata(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties get the mean of their ranks (as scipy.stats.rankdata 'average')."""
    x = np.asarray(x, dtype=np.float64).ravel()
    order = np.argsort(x)  # ties get one average whatever their order: no stable sort needed (6x faster)
    ordered = x[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1], True])
    counts = np.diff(starts)
    average = starts[:-1] + (counts - 1) / 2.0 + 1.0
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.repeat(average, counts)
    return ranks


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation in float64; NaN when either side is constant or has < 2 values."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if len(a) < 2:
        return float("nan")
    a, b = a - a.mean(), b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else float("nan")


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (ties averaged) over the pairs where both are finite."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    keep = np.isfinite(a) & np.isfinite(b)
    return pearson(rankdata(a[keep]), rankdata(b[keep]))


@_quiet
def cosine_matrix(x: np.ndarray) -> np.ndarray:
    """``[n, n]`` cosine similarities between the rows of ``x`` (float64)."""
    u, _ = unit_rows(x)
    return u @ u.T


def upper_triangle(m: np.ndarray) -> np.ndarray:
    """The values above the diagonal: one per unordered pair (i, j), i < j."""
    i, j = np.triu_indices(m.shape[0], k=1)
    return m[i, j]


def knn_overlap(sim_a: np.ndarray, sim_b: np.ndarray, k: int = KNN_K) -> tuple[float, int]:
    """Mean fraction of each item's k nearest neighbours (self excluded) shared by two
    similarity matrices; k is capped at n − 1. Returns ``(overlap, k)``; NaN when n < 2.
    Ties at the k-th place go to the lower index (a stable sort's order)."""
    n = sim_a.shape[0]
    k = min(k, n - 1)
    if k < 1:
        return float("nan"), 0
    sets = [nearest_sets(sim, k) for sim in (sim_a, sim_b)]
    return float(((sets[0] & sets[1]).sum(1) / k).mean()), k


def nearest_sets(sim: np.ndarray, k: int) -> np.ndarray:
    """``[n, n]`` bool: row i marks i's k most similar items (itself excluded), ties to the
    lower index; the same sets as a stable argsort of −sim, from a partition (O(n²), no sort)."""
    s = np.array(sim, dtype=np.float64)
    n = s.shape[0]
    np.fill_diagonal(s, -np.inf)
    if np.count_nonzero(np.isfinite(s)) != n * n - n:  # NaN/inf off the diagonal: the sort decides
        member = np.zeros((n, n), bool)
        member[np.arange(n)[:, None], np.argsort(-s, axis=1, kind="stable")[:, :k]] = True
        return member
    kth = np.partition(s, n - k, axis=1)[:, n - k:n - k + 1]  # each row's k-th largest value
    member = s > kth
    tied = s == kth
    room = k - member.sum(1)  # places left for the values equal to the k-th
    crowded = tied.sum(1) > room  # rows where ties at the k-th place go to the lower indexes
    member |= tied
    if crowded.any():
        rows = np.flatnonzero(crowded)
        member[rows] &= ~tied[rows] | (np.cumsum(tied[rows], axis=1) <= room[rows, None])
    return member


def rsa(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman, over pairs of rows (i < j), between cos(x_i, x_j) and cos(y_i, y_j).

    Rows where either side is not finite are dropped; NaN with fewer than 3 rows left.
    """
    keep = np.isfinite(x).all(1) & np.isfinite(y).all(1)
    if keep.sum() < 3:
        return float("nan")
    return spearman(upper_triangle(cosine_matrix(x[keep])), upper_triangle(cosine_matrix(y[keep])))


def pad_content_rsa(pad_means: np.ndarray, real_means: np.ndarray) -> float:
    """Spearman over text pairs between cos(mean pad_i, mean pad_j) and
    cos(mean real_i, mean real_j): high means pads mirror sentence content. Texts without
    pads (NaN pad mean) are left out."""
    return rsa(np.asarray(pad_means, np.float64), np.asarray(real_means, np.float64))


def _mean(total: float, count: int) -> float:
    return float(total / count) if count else float("nan")


# ---------------------------------------------------------------- mergeable accumulators

@dataclass
class MeanSums:
    """Sums and counts of named per-sequence values; NaN values are skipped, not averaged.

    Attributes:
        sums: name -> float64 sum of the defined per-sequence values.
        counts: name -> number of sequences that contributed to ``sums[name]``.
    """

    names: tuple[str, ...]
    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in self.names:
            self.sums.setdefault(name, 0.0)
            self.counts.setdefault(name, 0)

    def add(self, values: dict[str, np.ndarray], keep: np.ndarray) -> None:
        for name in self.names:
            v = np.asarray(values[name], dtype=np.float64)[keep]
            v = v[np.isfinite(v)]
            self.sums[name] += float(v.sum())
            self.counts[name] += int(v.size)

    def merge(self, other: MeanSums) -> None:
        for name in self.names:
            self.sums[name] += other.sums[name]
            self.counts[name] += other.counts[name]

    def means(self) -> dict[str, float]:
        return {name: _mean(self.sums[name], self.counts[name]) for name in self.names}


def _add_real_only(values: MeanSums, per: dict[str, np.ndarray], ok: np.ndarray, name: str) -> None:
    """Add ``name`` (a real-token metric) for the faulty sequences whose real tokens are finite:
    a fault in the pads never drops a sequence's real-token metrics."""
    faulty_pads_only = per.get("real_valid", ok) & ~ok
    if faulty_pads_only.any():
        MeanSums((name,), values.sums, values.counts).add(per, faulty_pads_only)


@dataclass
class LayerSums:
    """One batch of one layer reduced to what ``PadStats`` needs (``PadStats.add_sums``).

    Attributes:
        norms: ``[B, T]`` ‖h‖ per position.
        pad_sum, real_sum: ``[B, H]`` Σ h/‖h‖ over pads, over real positions.
        anchor_cos: ``[B, T]`` cos(h_t, h_anchor), anchor = ``pad_anchor(mask)``.
        steps: ``[B, T-1]`` ‖h_t − h_{t+1}‖.
        position_sum: ``[T, H]`` Σ over the batch's pads of h at each position.
        valid: ``[B]`` sequences whose states are finite with no zero row.
    """

    norms: np.ndarray
    pad_sum: np.ndarray
    real_sum: np.ndarray
    anchor_cos: np.ndarray
    steps: np.ndarray
    position_sum: np.ndarray
    valid: np.ndarray


@dataclass
class PadStats:
    """Mergeable pad statistics of one layer: ``add`` batches, ``merge`` parts, read ``result``.

    Attributes:
        max_positions: positions kept for the per-position mean pad vector (max_length).
        sequences: sequences seen; failed: those with NaN/Inf states (left out of the pad
            metrics; their real_norm counts when their real tokens are finite).
        without_pads: valid sequences with no pad; single_pad: valid ones with exactly one.
        pads, zero_pads: pad positions of the valid sequences, and those whose state is exactly
            zero (norm 0, no direction: in pad_norm, left out of the cosines).
        padded: sequences with at least one pad, valid or not ("no text has pads" means 0).
        values: sums/counts of the per-sequence metrics in ``SEQUENCE_METRICS``.
        offset_sum, offset_count: Σ cos(h_p, h_anchor) and counts per offset bucket
            (pooled over all pads at that offset, every sequence's pads together).
        position_sum, position_count: Σ h over pads at each absolute position, and counts.
    """

    max_positions: int = 512
    sequences: int = 0
    failed: int = 0
    without_pads: int = 0
    single_pad: int = 0
    pads: int = 0
    zero_pads: int = 0
    padded: int = 0
    values: MeanSums = field(default_factory=lambda: MeanSums(SEQUENCE_METRICS))
    offset_sum: np.ndarray = field(default_factory=lambda: np.zeros(OFFSET_BUCKETS))
    offset_count: np.ndarray = field(default_factory=lambda: np.zeros(OFFSET_BUCKETS, np.int64))
    position_sum: np.ndarray | None = None
    position_count: np.ndarray | None = None

    def add(self, h: np.ndarray, mask: np.ndarray) -> None:
        """Accumulate one batch of one layer: ``h`` ``[B, T, H]``, ``mask`` ``[B, T]``."""
        mask = np.asarray(mask)
        prepared = prepare(h)  # float64 states and norms, once per layer and batch
        h64 = prepared[0]
        per = pad_sequence_metrics(h, mask, prepared)  # h as given: validity is checked on it
        pos = pad_position_metrics(h64, mask, prepared)
        self._add_sequences(per, pos)
        self._add_positions(h64, mask, per["valid"])

    def add_sums(self, sums: LayerSums, mask: np.ndarray) -> None:
        """Accumulate one batch from its sums instead of its states (the in-graph statistics,
        ``padlens.inspector.stats.ingraph``): the same values ``add`` would add. Every sequence must
        be valid (a batch with NaN/Inf states goes through ``add``; zero states are valid)."""
        mask = np.asarray(mask)
        if not np.all(sums.valid):
            raise ValueError("add_sums needs valid states in every sequence: use add(h, mask)")
        per = sequence_metrics_from_sums(sums.norms, sums.pad_sum, sums.real_sum, mask, sums.valid)
        pos = position_metrics_from_sums(sums.anchor_cos, sums.steps, mask)
        self._add_sequences(per, pos)
        self._add_position_sums(np.asarray(sums.position_sum, np.float64), (mask == 0).sum(0))

    def _add_sequences(self, per: dict[str, np.ndarray], pos: dict[str, np.ndarray]) -> None:
        ok = per["valid"]
        self.sequences += len(ok)
        self.failed += int((~ok).sum())
        self.without_pads += int((ok & (per["n_pad"] == 0)).sum())
        self.single_pad += int((ok & (per["n_pad"] == 1)).sum())
        self.padded += int((per["n_pad"] > 0).sum())
        self.pads += int(per["n_pad"][ok].sum())
        self.zero_pads += int(per["zero_pad"][ok].sum())
        self.values.add({**per, **pos}, ok)
        _add_real_only(self.values, per, ok, "real_norm")
        self._add_offsets(pos, ok)

    def _add_offsets(self, pos: dict[str, np.ndarray], ok: np.ndarray) -> None:
        pick = pos["is_offset"] & ok[:, None]
        buckets = offset_bucket(pos["offset"][pick])
        self.offset_sum += np.bincount(buckets, pos["cos_to_anchor"][pick], OFFSET_BUCKETS)
        self.offset_count += np.bincount(buckets, minlength=OFFSET_BUCKETS)

    def _add_positions(self, h: np.ndarray, mask: np.ndarray, ok: np.ndarray) -> None:
        t = min(h.shape[1], self.max_positions)
        pad = ((mask[:, :t] == 0) & ok[:, None]).astype(np.float64)
        hv = np.asarray(h[:, :t], dtype=np.float64)
        if not ok.all():  # 0 × NaN is NaN: failed rows are zeroed, not just weighted 0
            hv = np.where(ok[:, None, None], hv, 0.0)
        self._add_position_sums(np.einsum("bt,bth->th", pad, hv), pad.sum(0))

    def _add_position_sums(self, sums: np.ndarray, counts: np.ndarray) -> None:
        """Add ``[T, H]`` sums of pad states per position and ``[T]`` pad counts."""
        t = min(sums.shape[0], self.max_positions)
        if self.position_sum is None:
            self.position_sum = np.zeros((self.max_positions, sums.shape[1]))
            self.position_count = np.zeros(self.max_positions, np.int64)
        self.position_sum[:t] += sums[:t]
        self.position_count[:t] += np.asarray(counts[:t]).astype(np.int64)

    def merge(self, other: PadStats) -> PadStats:
        """Add ``other``'s sums into this one (exact: parts merged equal the whole)."""
        for name in ("sequences", "failed", "without_pads", "single_pad", "pads", "zero_pads", "padded"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.values.merge(other.values)
        self.offset_sum = self.offset_sum + other.offset_sum
        self.offset_count = self.offset_count + other.offset_count
        if other.position_sum is not None:
            if self.position_sum is None:
                self.position_sum = np.zeros_like(other.position_sum)
                self.position_count = np.zeros_like(other.position_count)
            self.position_sum = self.position_sum + other.position_sum
            self.position_count = self.position_count + other.position_count
        return self

    def means(self) -> dict[str, float]:
        """Mean over sequences of each metric in ``SEQUENCE_METRICS`` (NaN when none)."""
        return self.values.means()

    def offset_curve(self) -> dict[str, float]:
        """Mean cos(h_p, h_anchor) per offset bucket label, for the buckets that saw pads."""
        labels = offset_bucket_labels()
        return {labels[b]: float(self.offset_sum[b] / self.offset_count[b])
                for b in range(OFFSET_BUCKETS) if self.offset_count[b]}

    def position_means(self) -> np.ndarray | None:
        """``[max_positions, H]`` mean pad vector per absolute position (NaN rows: no pad)."""
        if self.position_sum is None:
            return None
        return self.position_sum / np.where(self.position_count > 0, self.position_count, np.nan)[:, None]


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


#: the values of sequence_metrics_from_sums / position_metrics_from_sums / masses_per_sequence
#: that differ per layer (the rest depend on the mask only)
_PER_LAYER = frozenset(("pad_pad_cos", "pad_real_cos", "pad_norm", "real_norm", "pad_anchor_cos",
                        "pad_step", "cos_to_anchor", "pad_to_cls", "pad_to_sep", "pad_to_content",
                        "pad_to_pad", "real_to_pad", "valid", "is_offset", "zero_pad",
                        "real_valid"))


def _layer_of(values: dict[str, np.ndarray], layer: int, keys=_PER_LAYER) -> dict[str, np.ndarray]:
    """One layer's values from values computed for stacked layers (mask-only ones shared)."""
    return {k: v[layer] if k in keys else v for k, v in values.items()}


def add_layer_sums(stats: Sequence[PadStats], layers: Sequence[LayerSums], mask: np.ndarray) -> None:
    """``stats[l].add_sums(layers[l], mask)`` for every layer, the per-sequence maths done once
    for the layers stacked (the in-graph statistics of one batch: a few numpy calls instead of a
    few per layer). Every layer must be valid and of one shape."""
    mask = np.asarray(mask)
    shapes = {(l.norms.shape, l.pad_sum.shape) for l in layers}
    if len(layers) < 2 or len(shapes) != 1:
        for stat, layer in zip(stats, layers):
            stat.add_sums(layer, mask)
        return
    if not all(np.all(layer.valid) for layer in layers):
        raise ValueError("add_layer_sums needs valid states in every sequence: use PadStats.add(h, mask)")

    def stacked(name: str) -> np.ndarray:
        return np.stack([np.asarray(getattr(layer, name), np.float64) for layer in layers])

    valid = np.ones(mask.shape[0], bool)
    per = sequence_metrics_from_sums(stacked("norms"), stacked("pad_sum"), stacked("real_sum"), mask, valid)
    per["valid"] = np.broadcast_to(valid, (len(layers), len(valid)))
    pos = position_metrics_from_sums(stacked("anchor_cos"), stacked("steps"), mask)
    counts = (mask == 0).sum(0)
    for index, (stat, layer) in enumerate(zip(stats, layers)):
        stat._add_sequences(_layer_of(per, index), _layer_of(pos, index))
        stat._add_position_sums(np.asarray(layer.position_sum, np.float64), counts)


def add_attention_masses(stats: Sequence[AttentionStats], masses: Sequence[np.ndarray], mask: np.ndarray) -> None:
    """``stats[a].add_masses(masses[a], mask)`` for every attention map, computed stacked."""
    if len(masses) < 2 or len({np.shape(m) for m in masses}) != 1:
        for stat, m in zip(stats, masses):
            stat.add_masses(m, mask)
        return
    stacked = np.stack([np.asarray(m, np.float64) for m in masses])  # [A, B, T, 4]
    per = masses_per_sequence(stacked, mask, np.isfinite(stacked).all(axis=(2, 3)))
    for index, stat in enumerate(stats):
        stat._add_sequences(_layer_of(per, index))


@dataclass
class AttentionStats:
    """Mergeable attention masses of one layer (see ``attention_sequence_masses``).

    Attributes:
        sequences: sequences seen; failed: those with NaN/Inf probabilities (left out).
        values: sums/counts of the per-sequence masses in ``ATTENTION_METRICS``.
    """

    sequences: int = 0
    failed: int = 0
    values: MeanSums = field(default_factory=lambda: MeanSums(ATTENTION_METRICS))

    def add(self, probs: np.ndarray, mask: np.ndarray) -> None:
        self._add_sequences(attention_sequence_masses(probs, mask))

    def add_masses(self, masses: np.ndarray, mask: np.ndarray) -> None:
        """Accumulate one batch from ``masses`` ``[B, T(query), 4]``: the head-mean mass per key
        group (``key_groups``), as the in-graph statistics bring it; a sequence with a NaN or
        Inf mass is failed, as one with NaN/Inf probabilities is in ``add``."""
        masses = np.asarray(masses, np.float64)
        self._add_sequences(masses_per_sequence(masses, mask, np.isfinite(masses).all(axis=(1, 2))))

    def _add_sequences(self, per: dict[str, np.ndarray]) -> None:
        ok = per["valid"]
        self.sequences += len(ok)
        self.failed += int((~ok).sum())
        self.values.add(per, ok)
        _add_real_only(self.values, per, ok, "real_to_pad")

    def merge(self, other: AttentionStats) -> AttentionStats:
        self.sequences += other.sequences
        self.failed += other.failed
        self.values.merge(other.values)
        return self

    def means(self) -> dict[str, float]:
        return self.values.means()


@_quiet
def text_vectors(h: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    """Per-text vectors of one layer ``[B, T, H]``: ``masked`` (mean over real positions),
    ``unmasked`` (mean over all T positions), ``pad`` (mean over pads; NaN without pads) and
    ``cls`` (the first real position's state), each ``[B, H]`` float64; and ``valid`` ``[B]``."""
    h64 = np.asarray(h, dtype=np.float64)
    real = (np.asarray(mask) != 0).astype(np.float64)
    pad = 1.0 - real
    with np.errstate(divide="ignore", invalid="ignore"):
        masked = np.einsum("bt,bth->bh", real, h64) / real.sum(1)[:, None]
        padded = np.einsum("bt,bth->bh", pad, h64) / pad.sum(1)[:, None]
    first_real = (np.asarray(mask) != 0).argmax(1)
    return {"masked": masked, "unmasked": h64.mean(axis=1), "pad": padded,
            "cls": h64[np.arange(h64.shape[0]), first_real], "valid": valid_sequences(h)}


@_quiet
def text_vectors_from_sums(sums: np.ndarray, mask: np.ndarray, valid: np.ndarray) -> dict[str, np.ndarray]:
    """``text_vectors`` from ``sums`` ``[B, 4, H]``: Σh over real positions, over all
    positions, over pads, and the first real position's state (``TEXT_SUM_ROWS``)."""
    sums = np.asarray(sums, np.float64)
    real = (np.asarray(mask) != 0).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        masked = sums[:, 0] / real.sum(1)[:, None]
        padded = sums[:, 2] / (1.0 - real).sum(1)[:, None]
    return {"masked": masked, "unmasked": sums[:, 1] / real.shape[1], "pad": padded,
            "cls": sums[:, 3], "valid": np.asarray(valid, bool)}


TEXT_SUM_ROWS = ("real", "all", "pad", "cls")


def has_direction(v: np.ndarray) -> np.ndarray:
    """``[B]`` bool: the ``[B, H]`` row is not all zeros (a zero row has no direction and is
    left out of every cosine here, see the module docstring)."""
    return np.any(np.asarray(v) != 0, axis=-1)


@dataclass
class TextStats:
    """Mergeable pooling statistics of the last layer, plus the capped per-text vectors.

    Per-text cosines (cos(masked mean, unmasked mean), cos(CLS, masked mean)) are summed over
    every text; the vectors the cross-text metrics need (masked mean, unmasked mean, pad mean)
    are kept for the first ``cap`` texts only, so memory stays bounded. ``merge`` appends the
    other part's vectors after this one's (parts must be merged in text order).

    Attributes:
        cap: most texts whose vectors are kept; texts: texts seen; failed: texts left out
            (NaN/Inf/zero states); kept: texts whose vectors are kept.
        values: sums/counts of ``masked_unmasked_cos`` and ``cls_masked_cos``.
        min_cos, max_cos: extremes of cos(masked mean, unmasked mean).
        masked, unmasked, pad: lists of ``[b, H]`` chunks of kept vectors.
    """

    cap: int = TEXT_CAP
    texts: int = 0
    failed: int = 0
    kept: int = 0
    values: MeanSums = field(default_factory=lambda: MeanSums(("masked_unmasked_cos", "cls_masked_cos")))
    min_cos: float = float("inf")
    max_cos: float = float("-inf")
    masked: list = field(default_factory=list)
    unmasked: list = field(default_factory=list)
    pad: list = field(default_factory=list)

    def add(self, h: np.ndarray, mask: np.ndarray) -> None:
        """Accumulate one batch of the last layer's states ``[B, T, H]``."""
        self.add_vectors(text_vectors(h, mask))

    def add_vectors(self, v: dict[str, np.ndarray]) -> None:
        """Accumulate one batch of per-text vectors (``text_vectors``, or
        ``text_vectors_from_sums`` for the in-graph statistics)."""
        ok = v["valid"]
        self.texts += len(ok)
        self.failed += int((~ok).sum())
        directed = has_direction(v["masked"])
        cos = np.where(directed & has_direction(v["unmasked"]), row_cosines(v["masked"], v["unmasked"]), np.nan)
        cls = np.where(directed & has_direction(v["cls"]), row_cosines(v["cls"], v["masked"]), np.nan)
        self.values.add({"masked_unmasked_cos": cos, "cls_masked_cos": cls}, ok)
        cos = cos[ok & np.isfinite(cos)]
        if cos.size:
            self.min_cos = min(self.min_cos, float(cos.min()))
            self.max_cos = max(self.max_cos, float(cos.max()))
        self._keep({k: v[k][ok] for k in ("masked", "unmasked", "pad")})

    def _keep(self, chunk: dict[str, np.ndarray]) -> None:
        room = self.cap - self.kept
        n = min(room, len(chunk["masked"]))
        if n <= 0:
            return
        for key in ("masked", "unmasked", "pad"):
            getattr(self, key).append(chunk[key][:n])
        self.kept += n

    def merge(self, other: TextStats) -> TextStats:
        self.texts += other.texts
        self.failed += other.failed
        self.values.merge(other.values)
        self.min_cos = min(self.min_cos, other.min_cos)
        self.max_cos = max(self.max_cos, other.max_cos)
        if other.kept:
            self._keep({k: np.concatenate(getattr(other, k)) for k in ("masked", "unmasked", "pad")})
        return self

    def stacked(self, key: str) -> np.ndarray:
        """The kept vectors ``[kept, H]`` of ``key`` (masked, unmasked or pad)."""
        chunks = getattr(self, key)
        return np.concatenate(chunks) if chunks else np.zeros((0, 0))

    def pooling(self, k: int = KNN_K) -> dict[str, float | int]:
        """Pooling damage: per-text cosines, and across the kept texts the k-NN overlap and
        the Spearman correlation between the masked and unmasked similarity matrices."""
        return self.pooling_and_rsa(k, rsa=False)[0]

    def pooling_and_rsa(self, k: int = KNN_K, rsa: bool = True) -> tuple[dict[str, float | int], float]:
        """``pooling(k)`` and ``pad_content_rsa()`` together: the masked similarity matrix and
        its ranks, which both need, are computed once (the same values as the two calls)."""
        means = self.values.means()
        out: dict[str, float | int] = {
            "masked_unmasked_cos": means["masked_unmasked_cos"],
            "masked_unmasked_cos_min": self.min_cos if self.values.counts["masked_unmasked_cos"] else float("nan"),
            "masked_unmasked_cos_max": self.max_cos if self.values.counts["masked_unmasked_cos"] else float("nan"),
            "cls_masked_cos": means["cls_masked_cos"],
        }
        cross, ranks = self._cross_text(k)
        return {**out, **cross}, (self._rsa(ranks) if rsa else float("nan"))

    def _cross_text(self, k: int) -> tuple[dict[str, float | int], np.ndarray | None]:
        """The cross-text pooling metrics, and the ranks of the masked similarities (None
        unless every pair's similarity is finite)."""
        nan = float("nan")
        out = {"texts_compared": self.kept, "knn_k": 0, "knn_overlap": nan, "similarity_spearman": nan,
               "similarity_mean_masked": nan, "similarity_mean_unmasked": nan}
        if self.kept < 2:
            return out, None
        sim_m = cosine_matrix(self.stacked("masked"))
        sim_u = cosine_matrix(self.stacked("unmasked"))
        out["knn_overlap"], out["knn_k"] = knn_overlap(sim_m, sim_u, k)
        tri_m, tri_u = upper_triangle(sim_m), upper_triangle(sim_u)
        ranks = rankdata(tri_m) if np.isfinite(tri_m).all() else None
        if ranks is not None and np.isfinite(tri_u).all():  # spearman's pairs: all of them
            out["similarity_spearman"] = pearson(ranks, rankdata(tri_u))  # NaN with < 2 pairs
        else:
            out["similarity_spearman"] = spearman(tri_m, tri_u) if len(tri_m) >= 2 else nan
        out["similarity_mean_masked"] = float(tri_m.mean())
        out["similarity_mean_unmasked"] = float(tri_u.mean())
        return out, ranks

    def _rsa(self, masked_ranks: np.ndarray | None) -> float:
        """``pad_content_rsa``, reusing the masked similarities' ranks when every text is kept
        by it (every pad mean finite) and every pair's similarity is finite."""
        if self.kept < 3:
            return float("nan")
        pads, masked = self.stacked("pad"), self.stacked("masked")
        if masked_ranks is not None and np.isfinite(pads).all() and np.isfinite(masked).all():
            tri_p = upper_triangle(cosine_matrix(pads))
            if np.isfinite(tri_p).all():
                return pearson(rankdata(tri_p), masked_ranks)
        return pad_content_rsa(pads, masked)

    def pad_content_rsa(self) -> float:
        """``pad_content_rsa`` over the kept texts that have pads (NaN with fewer than 3)."""
        if self.kept < 3:
            return float("nan")
        return pad_content_rsa(self.stacked("pad"), self.stacked("masked"))
