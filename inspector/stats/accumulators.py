"""Mergeable accumulators of the pad statistics: ``PadStats``, ``AttentionStats``, ``TextStats``.

Every accumulator holds sums of per-sequence values (``measures``) and counts, in float64, so batches,
processes and machines combine exactly with ``merge``. Nothing is O(n²) over positions and no
activation is stored, except the capped per-text vectors that the cross-text metrics
(``pad_content_rsa``, pooling k-NN and Spearman) need: the first ``TEXT_CAP`` texts only.
A state that is exactly zero counts in the norms and is left out of the cosines
(``PadStats.zero_pads``); a sequence with NaN/Inf states at a layer is counted in ``failed`` and
left out of that layer's pad metrics; its ``real_norm`` still counts when its real tokens are finite.
"""
from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from padlens.inspector.stats.cosine import row_cosines
from padlens.inspector.stats.measures import (
    ATTENTION_METRICS,
    KNN_K,
    OFFSET_BUCKETS,
    SEQUENCE_METRICS,
    attention_sequence_masses,
    cosine_matrix,
    has_direction,
    masses_per_sequence,
    nearest_sets,
    offset_bucket,
    offset_bucket_labels,
    pad_content_rsa,
    pad_position_metrics,
    pad_sequence_metrics,
    pearson,
    position_metrics_from_sums,
    prepare,
    rankdata,
    sequence_metrics_from_sums,
    shared_neighbours,
    spearman,
    text_vectors,
    upper_triangle,
)

TEXT_CAP = 2000  # per-text vectors kept for the cross-text metrics


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
        _add_means([self], values, np.asarray(keep, bool)[None])

    def merge(self, other: MeanSums) -> None:
        for name in self.names:
            self.sums[name] += other.sums[name]
            self.counts[name] += other.counts[name]

    def means(self) -> dict[str, float]:
        return {name: _mean(self.sums[name], self.counts[name]) for name in self.names}


def _add_means(means: Sequence[MeanSums], values: dict[str, np.ndarray], keep: np.ndarray) -> None:
    """``means[l]`` += the values of layer l where ``keep[l]`` ([L, B]; values [L, B], or [B] when they
    depend on the mask only): each name's sums taken once for all layers, NaN values skipped."""
    for name in means[0].names:
        v = np.broadcast_to(np.asarray(values[name], np.float64), keep.shape)
        use = keep & np.isfinite(v)
        sums, counts = np.where(use, v, 0.0).sum(-1), use.sum(-1)
        for index, mean in enumerate(means):
            mean.sums[name] += float(sums[index])
            mean.counts[name] += int(counts[index])


def _add_real_only(means: Sequence[MeanSums], per: dict[str, np.ndarray], ok: np.ndarray, name: str) -> None:
    """Add ``name`` (a real-token metric) for the faulty sequences whose real tokens are finite
    (``ok`` [L, B]): a fault in the pads never drops a sequence's real-token metrics."""
    faulty_pads_only = np.broadcast_to(per.get("real_valid", ok), ok.shape) & ~ok
    if faulty_pads_only.any():
        _add_means([MeanSums((name,), m.sums, m.counts) for m in means], per, faulty_pads_only)


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
        _add_pad_sequences([self], per, pos, np.asarray(per["valid"], bool)[None])

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
    pos = position_metrics_from_sums(stacked("anchor_cos"), stacked("steps"), mask)
    _add_pad_sequences(stats, per, pos, np.ones((len(layers), mask.shape[0]), bool))
    counts = (mask == 0).sum(0)
    for stat, layer in zip(stats, layers):
        stat._add_position_sums(np.asarray(layer.position_sum, np.float64), counts)


def _add_pad_sequences(stats: Sequence[PadStats], per: dict[str, np.ndarray], pos: dict[str, np.ndarray],
                       ok: np.ndarray) -> None:
    """Add each layer's per-sequence values to ``stats[l]``: values stacked [L, B ...] (mask-only ones
    [B ...]), ``ok`` [L, B] the valid sequences; each sum taken once for all layers, the offsets of
    every layer in one bincount (a bin's values added in the same order as layer by layer)."""
    n, n_pad = len(stats), per["n_pad"]
    counts = {"failed": (~ok).sum(-1), "without_pads": (ok & (n_pad == 0)).sum(-1),
              "single_pad": (ok & (n_pad == 1)).sum(-1), "pads": np.where(ok, n_pad, 0).sum(-1),
              "zero_pads": np.where(ok, per["zero_pad"], 0).sum(-1)}
    _add_means([stat.values for stat in stats], {**per, **pos}, ok)
    _add_real_only([stat.values for stat in stats], per, ok, "real_norm")
    pick = np.broadcast_to(pos["is_offset"], (*ok.shape, pos["offset"].shape[-1])) & ok[..., None]
    bucket = (np.arange(n)[:, None, None] * OFFSET_BUCKETS + offset_bucket(pos["offset"]))[pick]
    cos = np.broadcast_to(pos["cos_to_anchor"], pick.shape)[pick]
    offset_sum = np.bincount(bucket, cos, n * OFFSET_BUCKETS).reshape(n, -1)
    offset_count = np.bincount(bucket, minlength=n * OFFSET_BUCKETS).reshape(n, -1)
    for index, stat in enumerate(stats):
        stat.sequences += ok.shape[-1]
        stat.padded += int((n_pad > 0).sum())
        for name, count in counts.items():
            setattr(stat, name, getattr(stat, name) + int(count[index]))
        stat.offset_sum += offset_sum[index]
        stat.offset_count += offset_count[index]


def add_attention_masses(stats: Sequence[AttentionStats], masses: Sequence[np.ndarray], mask: np.ndarray) -> None:
    """``stats[a].add_masses(masses[a], mask)`` for every attention map, computed stacked."""
    if len(masses) < 2 or len({np.shape(m) for m in masses}) != 1:
        for stat, m in zip(stats, masses):
            stat.add_masses(m, mask)
        return
    stacked = np.stack([np.asarray(m, np.float64) for m in masses])  # [A, B, T, 4]
    per = masses_per_sequence(stacked, mask)
    _add_attention_sequences(stats, per, per["valid"])


def _add_attention_sequences(stats: Sequence[AttentionStats], per: dict[str, np.ndarray], ok: np.ndarray) -> None:
    """Add each map's per-sequence masses (stacked [A, B]) to ``stats[a]``, ``ok`` [A, B] the valid ones."""
    _add_means([stat.values for stat in stats], per, ok)
    _add_real_only([stat.values for stat in stats], per, ok, "real_to_pad")
    for index, stat in enumerate(stats):
        stat.sequences += ok.shape[-1]
        stat.failed += int((~ok[index]).sum())


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
        self._add_sequences(masses_per_sequence(masses, mask))

    def _add_sequences(self, per: dict[str, np.ndarray]) -> None:
        _add_attention_sequences([self], per, np.asarray(per["valid"], bool)[None])

    def merge(self, other: AttentionStats) -> AttentionStats:
        self.sequences += other.sequences
        self.failed += other.failed
        self.values.merge(other.values)
        return self

    def means(self) -> dict[str, float]:
        return self.values.means()


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
        cross, rsa_value = self._cross_text(k, rsa)
        return {**out, **cross}, rsa_value

    def _cross_text(self, k: int, rsa: bool) -> tuple[dict[str, float | int], float]:
        """The cross-text pooling metrics, and ``pad_content_rsa`` (NaN unless ``rsa``). Where every
        pair's similarity is finite, whole triangles are ranked (masked, unmasked, pad), and the
        masked ranks serve both."""
        nan = float("nan")
        out = {"texts_compared": self.kept, "knn_k": 0, "knn_overlap": nan, "similarity_spearman": nan,
               "similarity_mean_masked": nan, "similarity_mean_unmasked": nan}
        if self.kept < 2:
            return out, nan
        masked, unmasked = self.stacked("masked"), self.stacked("unmasked")
        pads = self.stacked("pad") if rsa and self.kept >= 3 else None
        sides = {"masked": masked, "unmasked": unmasked}
        if pads is not None and np.isfinite(pads).all() and np.isfinite(masked).all():
            sides["pad"] = pads  # its ranks serve when the masked triangle is finite too
        near = min(k, self.kept - 1)
        (tri_m, rank_m, near_m), (tri_u, rank_u, near_u), *pad_side = _sides(sides, near)
        out["knn_overlap"], out["knn_k"] = shared_neighbours(near_m, near_u, near), near
        exact = rank_m is not None
        if exact and rank_u is not None:  # spearman's pairs: all of them
            out["similarity_spearman"] = pearson(rank_m, rank_u)  # NaN with < 2 pairs
        else:
            out["similarity_spearman"] = spearman(tri_m, tri_u) if len(tri_m) >= 2 else nan
        out["similarity_mean_masked"] = float(tri_m.mean())
        out["similarity_mean_unmasked"] = float(tri_u.mean())
        if pads is None:
            return out, nan
        if exact and pad_side and pad_side[0][1] is not None:
            return out, pearson(pad_side[0][1], rank_m)
        return out, pad_content_rsa(pads, masked)

    def pad_content_rsa(self) -> float:
        """``pad_content_rsa`` over the kept texts that have pads (NaN with fewer than 3)."""
        if self.kept < 3:
            return float("nan")
        return pad_content_rsa(self.stacked("pad"), self.stacked("masked"))


def _sides(vectors: dict[str, np.ndarray], near: int) -> list[tuple]:
    """For each kept-vectors side (masked, unmasked, pad: ``[n, H]``): the upper triangle of its cosine
    matrix, the triangle's ranks (None where a pair's cosine is not finite) and each text's ``near``
    nearest neighbours (``nearest_sets``; masked and unmasked only), in the order given. The matrix
    itself is not returned: each is freed once its side is measured.

    The sides are computed on two threads beside this one: NumPy's products and sorts run without the
    GIL, and ONNX Runtime is done by then (1,024 texts: 0.26 s computed one after the other)."""
    def side(name: str, x: np.ndarray) -> tuple:
        sim = cosine_matrix(x)
        tri = upper_triangle(sim)
        ranks = rankdata(tri) if np.isfinite(tri).all() else None
        return tri, ranks, nearest_sets(sim, near) if name != "pad" else None

    names = list(vectors)
    with ThreadPoolExecutor(2, thread_name_prefix="padlens-similarity") as pool:
        later = [pool.submit(side, name, vectors[name]) for name in names[1:]]
        first = side(names[0], vectors[names[0]])
        return [first] + [job.result() for job in later]
