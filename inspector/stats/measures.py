"""Pure per-batch pad statistics: small numpy functions, float64 where precision matters (DESIGN.md definitions).

Each function reads one batch of one layer (or of stacked layers) and returns per-sequence values; nothing here
holds state (``accumulators`` sums these values across batches, ``notes`` words what they cannot say).

Zero states are degenerate, not undefined (DESIGN.md): a state that is exactly zero (a zero
embedding row; pads that only see zero pads) has norm 0, counts in the norms, and has no
direction: it is left out of every cosine. NaN/Inf is a fault: a sequence with a non-finite
state is marked invalid (``valid``), its real-token values kept where its real tokens are finite.
"""
from __future__ import annotations

import functools

import numpy as np


def quiet(func):
    """NaN/Inf states are expected input (counted as failures), not warnings."""
    @functools.wraps(func)
    def inner(*args, **kwargs):
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return func(*args, **kwargs)
    return inner


SEQUENCE_METRICS = ("pad_pad_cos", "pad_real_cos", "pad_norm", "real_norm", "pad_anchor_cos", "pad_step")
ATTENTION_METRICS = ("pad_to_cls", "pad_to_sep", "pad_to_content", "pad_to_pad", "real_to_pad")
OFFSET_BUCKETS = 12  # offsets 1, 2, 3-4, 5-8, ..., 1025+ (the last bucket is open)
KNN_K = 5


# ---------------------------------------------------------------- small pure functions

@quiet
def unit_rows(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(h / ‖h‖, ‖h‖)`` over the last axis, in float64 (0/0 gives NaN)."""
    h = np.asarray(h, dtype=np.float64)
    norms = np.sqrt(np.einsum("...h,...h->...", h, h))
    with np.errstate(divide="ignore", invalid="ignore"):
        return h / norms[..., None], norms


@quiet
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


@quiet
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


@quiet
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


@quiet
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


@quiet
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


@quiet
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


@quiet
def masses_per_sequence(masses: np.ndarray, mask: np.ndarray, valid: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """``attention_sequence_masses`` from ``masses`` ``[B, T(query), 4]`` (or stacked ``[A, B, T, 4]``):
    the head-mean attention each query puts on each key group (``key_groups``), and ``valid``
    ``[..., B]`` (None: the sequences whose masses are all finite). A NaN row (a fully masked pad
    query) leaves ``real_to_pad`` defined: ``real_valid`` marks the sequences whose real queries are finite."""
    real = np.asarray(mask) != 0
    masses = np.asarray(masses, np.float64)
    if np.isfinite(masses).all():  # nearly always: one pass, no per-row reduction over the 4 groups
        rows_ok = np.ones(masses.shape[:-1], bool)  # [..., B, T(query)]
    else:
        rows_ok = np.isfinite(masses).all(-1)
        masses = np.where(rows_ok[..., None], masses, 0.0)
    valid = rows_ok.all(-1) if valid is None else valid
    queries = np.stack([~real, real], axis=-1).astype(np.float64)  # [B, T(query), 2]: pad, real
    sums = np.swapaxes(masses, -1, -2) @ queries  # [..., B, 4, 2]: each group's mass over pad / real queries
    counts = queries.sum(1)  # [B, 2]
    out = {f"pad_to_{k}": _safe_div(sums[..., i, 0], counts[:, 0]) for i, k in enumerate(KEY_GROUPS)}
    out["real_to_pad"] = _safe_div(sums[..., KEY_GROUPS.index("pad"), 1], counts[:, 1])
    out["valid"] = np.asarray(valid, bool)
    out["real_valid"] = (rows_ok | ~real).all(-1)
    return out


#: below this many values ``sorting_order`` is ``np.argsort`` (the packed sort pays off from here)
PACKED_SORT_FROM = 4096


def sorting_order(x: np.ndarray) -> np.ndarray:
    """Indexes that sort the float64 vector ``x`` in ascending order (among equal values in any order),
    as ``np.argsort(x)``, about twice as fast on a large finite ``x``.

    NumPy sorts plain numbers with SIMD but argsorts them one comparison at a time (1024 texts' pairs,
    523,776 cosines: 10 against 36 ms). So each value becomes an int64 that orders as the float does
    (its bits, the magnitude flipped for negatives), its lowest bits replaced by its index; one sort of
    those, and the index read back. Values that shared the kept high bits (they differ by less than
    about 2^-(52 - bits) of themselves) may come out in index order: those runs are put in value order
    by a lexsort. Non-finite values, or too many values for the index bits, take ``np.argsort``."""
    n = len(x)
    bits = max(1, (n - 1).bit_length())
    if n < PACKED_SORT_FROM or bits > 40 or not np.isfinite(x).all():
        return np.argsort(x)
    key = (x + 0.0).view(np.int64)  # + 0.0 turns −0.0 into 0.0: equal floats, equal keys
    key = key ^ ((key >> 63) & np.int64(0x7FFFFFFFFFFFFFFF))  # negatives: magnitude flipped, order kept
    key = (key >> bits << bits) | np.arange(n, dtype=np.int64)
    key.sort()
    order = key & np.int64((1 << bits) - 1)
    prefix = key >> bits
    same = prefix[1:] == prefix[:-1]
    if same.any():  # runs with one prefix: in index order, put them in value order
        shared = np.flatnonzero(np.r_[same, False] | np.r_[False, same])
        if len(shared) > n // 8:  # many equal values (rounded ones): argsort is faster than the lexsort
            return np.argsort(x)
        order[shared] = order[shared][np.lexsort((x[order[shared]], prefix[shared]))]
    return order


def rankdata(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties get the mean of their ranks (as scipy.stats.rankdata 'average')."""
    x = np.asarray(x, dtype=np.float64).ravel()
    order = sorting_order(x)  # ties get one average whatever their order: no stable sort needed
    ordered = x[order]
    ranks = np.empty(len(x), dtype=np.float64)
    tied = ordered[1:] == ordered[:-1]
    if not tied.any():  # distinct values (cosines of real vectors, nearly always): the ranks are the order
        ranks[order] = np.arange(1.0, len(x) + 1.0)
        return ranks
    starts = np.flatnonzero(np.r_[True, ~tied, True])
    counts = np.diff(starts)
    average = starts[:-1] + (counts - 1) / 2.0 + 1.0
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


@quiet
def cosine_matrix(x: np.ndarray) -> np.ndarray:
    """``[n, n]`` cosine similarities between the rows of ``x`` (float64)."""
    u, _ = unit_rows(x)
    return u @ u.T


def upper_triangle(m: np.ndarray) -> np.ndarray:
    """The values above the diagonal: one per unordered pair (i, j), i < j."""
    m = np.asarray(m)
    return m[np.triu(np.ones(m.shape, bool), k=1)]  # row-major: the order of np.triu_indices


def knn_overlap(sim_a: np.ndarray, sim_b: np.ndarray, k: int = KNN_K) -> tuple[float, int]:
    """Mean fraction of each item's k nearest neighbours (self excluded) shared by two
    similarity matrices; k is capped at n − 1. Returns ``(overlap, k)``; NaN when n < 2.
    Ties at the k-th place go to the lower index (a stable sort's order)."""
    n = sim_a.shape[0]
    k = min(k, n - 1)
    if k < 1:
        return float("nan"), 0
    return shared_neighbours(nearest_sets(sim_a, k), nearest_sets(sim_b, k), k), k


def shared_neighbours(a: np.ndarray, b: np.ndarray, k: int) -> float:
    """Mean fraction of each item's ``k`` nearest neighbours shared by two ``nearest_sets``."""
    return float(((a & b).sum(1) / k).mean())


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


@quiet
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


@quiet
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
