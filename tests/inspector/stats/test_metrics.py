"""Pad metrics: known answers, closed forms against brute force, exact merges, NaN handling."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from padlens.inspector.stats import accumulators as acc
from padlens.inspector.stats import measures
from padlens.inspector.stats import notes as words

E = np.eye(6)


def seq(rows, mask):
    """One sequence as a batch of one: h [1, T, H], mask [1, T]."""
    return np.asarray(rows, dtype=np.float64)[None], np.asarray(mask)[None]


def brute(h: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """DESIGN.md's definitions written as plain loops over positions and pairs."""
    u = [v / np.linalg.norm(v) for v in h]
    P = [t for t, m in enumerate(mask) if m == 0]
    R = [t for t, m in enumerate(mask) if m != 0]
    pp = [u[p] @ u[q] for p, q in itertools.permutations(P, 2)]
    pr = [u[p] @ u[r] for p in P for r in R]
    nan = float("nan")
    return {
        "pad_pad_cos": float(np.mean(pp)) if pp else nan,
        "pad_real_cos": float(np.mean(pr)) if pr else nan,
        "pad_norm": float(np.mean([np.linalg.norm(h[p]) for p in P])) if P else nan,
        "real_norm": float(np.mean([np.linalg.norm(h[r]) for r in R])) if R else nan,
    }


def random_batch(rng, b=7, t=11, h=6, side="right"):
    states = rng.normal(size=(b, t, h))
    lengths = rng.integers(1, t + 1, size=b)
    mask = (np.arange(t)[None, :] < lengths[:, None]).astype(np.int64)
    return states, (mask[:, ::-1].copy() if side == "left" else mask)


KNOWN = [
    # name, rows, mask, metric, expected
    ("identical pads", [E[0], E[1], E[2], E[2], E[2]], [1, 1, 0, 0, 0], "pad_pad_cos", 1.0),
    ("orthogonal pads", [E[0], E[1], E[2], E[3]], [1, 0, 0, 0], "pad_pad_cos", 0.0),
    ("opposite pad pair", [E[0], E[1], -E[1]], [1, 0, 0], "pad_pad_cos", -1.0),
    ("pads = -reals", [E[0], E[0], -E[0], -E[0]], [1, 1, 0, 0], "pad_real_cos", -1.0),
    ("pads = reals", [E[1], E[1], 5 * E[1]], [1, 1, 0], "pad_real_cos", 1.0),
    ("pads orthogonal to reals", [E[0], E[1], E[2], E[3]], [1, 1, 0, 0], "pad_real_cos", 0.0),
    ("scale does not matter", [E[0], 3 * E[2], 0.1 * E[2]], [1, 0, 0], "pad_pad_cos", 1.0),
    ("pad norm", [E[0], 3 * E[1], 5 * E[2]], [1, 0, 0], "pad_norm", 4.0),
    ("real norm", [2 * E[0], 4 * E[0], E[1]], [1, 1, 0], "real_norm", 3.0),
    ("left padding", [E[2], E[2], E[0], E[1]], [0, 0, 1, 1], "pad_pad_cos", 1.0),
    ("half-way pads", [E[0], E[0], E[0] + E[1]], [1, 0, 0], "pad_pad_cos", 1 / math.sqrt(2)),
]


@pytest.mark.parametrize("name,rows,mask,metric,expected", KNOWN, ids=[k[0] for k in KNOWN])
def test_known_answers(name, rows, mask, metric, expected):
    h, m = seq(rows, mask)
    got = measures.pad_sequence_metrics(h, m)[metric][0]
    assert got == pytest.approx(expected, abs=1e-12)


UNDEFINED = [
    ("one pad has no pad pair", [E[0], E[1]], [1, 0], {"pad_pad_cos"}),
    ("no pad", [E[0], E[1]], [1, 1], {"pad_pad_cos", "pad_real_cos", "pad_norm"}),
]


@pytest.mark.parametrize("name,rows,mask,undefined", UNDEFINED, ids=[u[0] for u in UNDEFINED])
def test_undefined_metrics_are_nan_not_zero(name, rows, mask, undefined):
    per = measures.pad_sequence_metrics(*seq(rows, mask))
    for metric in ("pad_pad_cos", "pad_real_cos", "pad_norm", "real_norm"):
        assert np.isnan(per[metric][0]) == (metric in undefined), metric


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_closed_forms_equal_brute_force_pairs(side, seed):
    h, mask = random_batch(np.random.default_rng(seed), side=side)
    per = measures.pad_sequence_metrics(h, mask)
    for i in range(len(h)):
        for metric, value in brute(h[i], mask[i]).items():
            np.testing.assert_allclose(per[metric][i], value, rtol=1e-12, atol=1e-14, equal_nan=True)


def test_run_mean_weighs_every_sequence_the_same():
    """A sequence with 1 pad pair and one with 6 pairs count once each, not per pair."""
    h1, m1 = seq([E[0], E[1], E[1]], [1, 0, 0])                     # pad_pad_cos 1
    h2, m2 = seq([E[0], E[1], E[2], E[3]], [1, 0, 0, 0])            # pad_pad_cos 0
    stats = acc.PadStats(max_positions=4)
    stats.add(h1, m1)
    stats.add(h2, m2)
    assert stats.means()["pad_pad_cos"] == pytest.approx(0.5)


def test_sequences_without_pads_are_counted_and_left_out():
    stats = acc.PadStats()
    stats.add(*seq([E[0], E[1], E[1]], [1, 0, 0]))
    stats.add(*seq([E[0], E[1], E[2]], [1, 1, 0]))
    stats.add(*seq([E[0], E[3], E[4]], [1, 1, 1]))
    assert (stats.sequences, stats.without_pads, stats.single_pad, stats.failed) == (3, 1, 1, 0)
    assert stats.values.counts["pad_pad_cos"] == 1
    assert stats.values.counts["pad_norm"] == 2
    assert stats.values.counts["real_norm"] == 3
    assert stats.means()["pad_pad_cos"] == 1.0


@pytest.mark.parametrize("poison", [np.nan, np.inf, -np.inf])
def test_non_finite_states_are_counted_as_failures_not_averaged(poison):
    rng = np.random.default_rng(3)
    h, mask = random_batch(rng, b=5)
    clean = acc.PadStats(max_positions=11)
    clean.add(h[1:], mask[1:])
    bad = h.copy()
    bad[0, 0, 0] = poison  # a real token (right padding): the whole sequence is left out
    stats = acc.PadStats(max_positions=11)
    stats.add(bad, mask)
    assert stats.failed == 1 and stats.sequences == 5
    assert stats.means() == pytest.approx(clean.means(), nan_ok=True)
    np.testing.assert_allclose(stats.position_means(), clean.position_means(), equal_nan=True)
    assert np.isfinite(list(stats.means().values())).any()


@pytest.mark.parametrize("side", ["right", "left"])
def test_merging_parts_equals_one_run_over_the_whole(side):
    h, mask = random_batch(np.random.default_rng(4), b=12, side=side)
    whole = acc.PadStats(max_positions=11)
    whole.add(h, mask)
    parts = [acc.PadStats(max_positions=11) for _ in range(3)]
    for part, idx in zip(parts, np.array_split(np.arange(12), 3)):
        part.add(h[idx], mask[idx])
    merged = parts[0].merge(parts[1]).merge(parts[2])
    for name in ("sequences", "failed", "without_pads", "single_pad"):
        assert getattr(merged, name) == getattr(whole, name)
    assert merged.values.counts == whole.values.counts
    np.testing.assert_allclose(list(merged.means().values()), list(whole.means().values()), rtol=1e-12)
    np.testing.assert_allclose(merged.offset_sum, whole.offset_sum, rtol=1e-12)
    np.testing.assert_array_equal(merged.offset_count, whole.offset_count)
    np.testing.assert_allclose(merged.position_means(), whole.position_means(), rtol=1e-12)


def test_merge_into_an_empty_accumulator():
    h, mask = random_batch(np.random.default_rng(5))
    full = acc.PadStats(max_positions=11)
    full.add(h, mask)
    merged = acc.PadStats(max_positions=11).merge(full)
    np.testing.assert_allclose(merged.position_means(), full.position_means(), rtol=1e-12)


# ---------------------------------------------------------------- position dependence

@pytest.mark.parametrize("mask,anchor", [
    ([1, 1, 0, 0, 0], 2),   # right padding: first pad
    ([0, 0, 0, 1, 1], 2),   # left padding: last pad
    ([1, 1, 1, 1, 0], 4),
    ([0, 1, 1, 1, 1], 0),
])
def test_anchor_is_the_pad_next_to_the_content(mask, anchor):
    assert measures.pad_anchor(np.asarray([mask]))[0] == anchor


@pytest.mark.parametrize("offset,bucket", [(1, 0), (2, 1), (3, 2), (4, 2), (5, 3), (8, 3), (9, 4), (10**6, 11)])
def test_offset_buckets(offset, bucket):
    assert measures.offset_bucket(np.asarray([offset]))[0] == bucket
    assert len(measures.offset_bucket_labels()) == measures.OFFSET_BUCKETS


def test_pad_states_that_move_along_positions():
    """Pads h_p = e0 + p·e1: each step moves by 1; cos to the anchor falls with the offset."""
    rows = [E[2], E[3]] + [E[0] + p * E[1] for p in range(4)]
    h, mask = seq(rows, [1, 1, 0, 0, 0, 0])
    pos = measures.pad_position_metrics(h, mask)
    assert pos["pad_step"][0] == pytest.approx(1.0)
    cos = [1 / math.sqrt(1 + p * p) for p in (1, 2, 3)]
    assert pos["pad_anchor_cos"][0] == pytest.approx(np.mean(cos))
    stats = acc.PadStats(max_positions=6)
    stats.add(h, mask)
    assert stats.offset_curve() == pytest.approx({"1": cos[0], "2": cos[1], "3-4": cos[2]})
    np.testing.assert_allclose(stats.position_means()[3], E[0] + E[1])
    assert np.isnan(stats.position_means()[0]).all()


def test_identical_pads_have_no_position_dependence():
    h, mask = seq([E[0], E[1], E[1], E[1]], [1, 0, 0, 0])
    pos = measures.pad_position_metrics(h, mask)
    assert (pos["pad_step"][0], pos["pad_anchor_cos"][0]) == pytest.approx((0.0, 1.0))


def test_left_padding_offsets_count_away_from_the_content():
    rows = [E[0] + p * E[1] for p in (3, 2, 1, 0)] + [E[2]]
    h, mask = seq(rows, [0, 0, 0, 0, 1])
    stats = acc.PadStats(max_positions=5)
    stats.add(h, mask)
    assert stats.offset_curve() == pytest.approx({"1": 1 / math.sqrt(2), "2": 1 / math.sqrt(5),
                                                  "3-4": 1 / math.sqrt(10)})


# ---------------------------------------------------------------- attention

def test_uniform_attention_masses():
    probs = np.full((1, 2, 5, 5), 0.2)
    out = measures.attention_sequence_masses(probs, np.asarray([[1, 1, 1, 0, 0]]))
    expected = {"pad_to_cls": 0.2, "pad_to_sep": 0.2, "pad_to_content": 0.2, "pad_to_pad": 0.4,
                "real_to_pad": 0.4}
    assert {k: out[k][0] for k in expected} == pytest.approx(expected)


def test_masked_attention_puts_no_mass_on_pads_and_cls_is_the_first_real_token():
    """Left padding: [CLS] at 2. Real queries see real keys only; pad queries all look at [CLS]."""
    mask = np.asarray([[0, 0, 1, 1, 1, 1]])
    probs = np.zeros((1, 3, 6, 6))
    probs[0, :, 2:, 2:] = 0.25
    probs[0, :, :2, 2] = 1.0
    out = measures.attention_sequence_masses(probs, mask)
    assert out["real_to_pad"][0] == 0.0
    assert (out["pad_to_cls"][0], out["pad_to_sep"][0], out["pad_to_content"][0]) == (1.0, 0.0, 0.0)


def test_attention_masses_average_heads_then_queries_and_count_nan():
    mask = np.asarray([[1, 1, 0], [1, 1, 0]])
    probs = np.zeros((2, 2, 3, 3))
    probs[:, 0, :, 2] = 1.0      # head 0: everything on the pad
    probs[:, 1, :, 0] = 1.0      # head 1: everything on [CLS]
    probs[1, 0, 0, 0] = np.nan
    stats = acc.AttentionStats()
    stats.add(probs, mask)
    assert (stats.sequences, stats.failed) == (2, 1)
    assert stats.means()["pad_to_pad"] == pytest.approx(0.5)
    assert stats.means()["real_to_pad"] == pytest.approx(0.5)
    assert stats.means()["pad_to_cls"] == pytest.approx(0.5)


# ---------------------------------------------------------------- ranks and correlations

@pytest.mark.parametrize("x,ranks", [
    ([10, 20, 30], [1, 2, 3]),
    ([30, 10, 20], [3, 1, 2]),
    ([10, 20, 20, 30], [1, 2.5, 2.5, 4]),
    ([5, 5, 5], [2, 2, 2]),
    ([2, 1, 2, 1, 3], [3.5, 1.5, 3.5, 1.5, 5]),
])
def test_rankdata_averages_ties(x, ranks):
    np.testing.assert_array_equal(measures.rankdata(np.asarray(x)), ranks)


def test_rankdata_of_distinct_values_and_the_upper_triangle_match_their_definitions():
    rng = np.random.default_rng(5)
    m = rng.normal(size=(9, 9))
    np.testing.assert_array_equal(measures.upper_triangle(m), m[np.triu_indices(9, k=1)])
    x = rng.normal(size=200)
    np.testing.assert_array_equal(measures.rankdata(x), np.argsort(np.argsort(x)) + 1.0)


def _clustered(rng: np.random.Generator, n: int) -> np.ndarray:
    """Distinct values with clusters a few ulps apart: they share the packed sort's kept bits and come
    out of its one sort in index order, to be put in value order."""
    x = rng.uniform(-1.0, 1.0, n)
    x[::400] = 0.25 + rng.integers(0, 6, len(x[::400])) * 2.0 ** -54  # ulps of 0.25, in random order
    x[1::400] = -0.5 - rng.integers(0, 6, len(x[1::400])) * 2.0 ** -53
    return x


def test_sorting_order_sorts_large_vectors_without_argsort(monkeypatch):
    """The packed sort (no np.argsort) on cosines, both zeros and tiny negatives, and near-equal values:
    the order sorts, and the ranks are scipy's."""
    from scipy.stats import rankdata as scipy_ranks

    rng = np.random.default_rng(3)
    n = measures.PACKED_SORT_FROM * 2
    cases = [rng.uniform(-1.0, 1.0, n), _clustered(rng, n),
             np.r_[np.zeros(7), -np.zeros(7), rng.normal(size=n) * 1e-300, [-1.0, 1.0, -0.0]]]
    expected = [scipy_ranks(x) for x in cases]

    def refused(*args, **kwargs):
        raise AssertionError("np.argsort called")

    monkeypatch.setattr(np, "argsort", refused)
    for x, ranks in zip(cases, expected):
        order = measures.sorting_order(x)
        assert np.array_equal(np.sort(order), np.arange(len(x)))
        assert (np.diff(x[order]) >= 0).all()
        np.testing.assert_array_equal(measures.rankdata(x), ranks)


@pytest.mark.parametrize("kind", ["ties", "nan", "small"])
def test_sorting_order_takes_argsort_where_the_packed_sort_would_not_pay(kind, monkeypatch):
    """Many equal values (rounded), non-finite values or a short vector: np.argsort, the same ranks."""
    from scipy.stats import rankdata as scipy_ranks

    rng = np.random.default_rng(4)
    n = measures.PACKED_SORT_FROM * 2
    x = {"ties": np.round(rng.normal(size=n), 1), "nan": np.r_[rng.normal(size=n), np.nan],
         "small": rng.normal(size=measures.PACKED_SORT_FROM - 1)}[kind]
    calls = []
    argsort = np.argsort
    monkeypatch.setattr(np, "argsort", lambda *a, **k: calls.append(1) or argsort(*a, **k))
    order = measures.sorting_order(x)
    assert calls and np.array_equal(order, argsort(x))
    if kind != "nan":
        np.testing.assert_array_equal(measures.rankdata(x), scipy_ranks(x))


@pytest.mark.parametrize("a,b,rho", [
    ([1, 2, 3, 4, 5], [1, 4, 9, 16, 25], 1.0),
    ([1, 2, 3, 4, 5], [5, 4, 3, 2, 1], -1.0),
    ([1, 2, 3, 4, 5], [5, 6, 7, 8, 7], 8 / math.sqrt(95)),       # ranks 1,2,3.5,5,3.5
    ([1, 2, 3, 4], [1, 3, 2, 4], 0.8),                            # 1 − 6·2/(4·15)
    ([1, 2, 3], [7, 7, 7], float("nan")),
    ([1, 2, np.nan, 4], [1, 2, 99, 3], 1.0),                       # non-finite pairs dropped
])
def test_spearman_hand_computed(a, b, rho):
    got = measures.spearman(np.asarray(a, float), np.asarray(b, float))
    assert got == pytest.approx(rho, nan_ok=True)


def test_knn_overlap_identical_similarities_is_one():
    x = np.random.default_rng(6).normal(size=(9, 4))
    sim = measures.cosine_matrix(x)
    assert measures.knn_overlap(sim, sim) == (1.0, 5)


def test_knn_overlap_caps_k_at_n_minus_one():
    sim_a = measures.cosine_matrix(np.random.default_rng(7).normal(size=(3, 4)))
    sim_b = measures.cosine_matrix(np.random.default_rng(8).normal(size=(3, 4)))
    assert measures.knn_overlap(sim_a, sim_b) == (1.0, 2)
    assert np.isnan(measures.knn_overlap(sim_a[:1, :1], sim_b[:1, :1])[0])


def test_knn_overlap_hand_computed():
    """k=1: the nearest neighbours of items 0..3 are 1,0,3,2 in a and 2,0,3,0 in b."""
    a = np.array([[1, .9, .1, .1], [.9, 1, .2, .1], [.1, .2, 1, .8], [.1, .1, .8, 1]])
    b = np.array([[1, .1, .9, .2], [.8, 1, .1, .1], [.1, .2, 1, .7], [.9, .1, .7, 1]])
    assert measures.knn_overlap(a, b, k=1) == (0.5, 1)


def test_pad_content_rsa_is_one_when_pads_mirror_content_and_skips_texts_without_pads():
    real = np.random.default_rng(9).normal(size=(6, 5))
    pad = 2 * real
    pad[2] = np.nan
    assert measures.pad_content_rsa(pad, real) == pytest.approx(1.0)
    assert np.isnan(measures.pad_content_rsa(pad[:3], real[:3]))


# ---------------------------------------------------------------- pooling

def test_pooling_without_pads_is_undamaged():
    h, mask = random_batch(np.random.default_rng(10), b=6)
    mask[:] = 1
    stats = acc.TextStats()
    stats.add(h, mask)
    pooling = stats.pooling()
    assert pooling["masked_unmasked_cos"] == pytest.approx(1.0)
    assert (pooling["knn_overlap"], pooling["similarity_spearman"]) == pytest.approx((1.0, 1.0))
    assert pooling["knn_k"] == 5 and pooling["texts_compared"] == 6
    assert np.isnan(stats.pad_content_rsa())


def test_pooling_per_text_cosine_matches_numpy():
    h, mask = random_batch(np.random.default_rng(11), b=5)
    stats = acc.TextStats()
    stats.add(h, mask)
    cos = []
    for i in range(5):
        masked, unmasked = h[i][mask[i] == 1].mean(0), h[i].mean(0)
        cos.append(masked @ unmasked / np.linalg.norm(masked) / np.linalg.norm(unmasked))
    pooling = stats.pooling()
    assert pooling["masked_unmasked_cos"] == pytest.approx(np.mean(cos), rel=1e-12)
    assert pooling["masked_unmasked_cos_min"] == pytest.approx(min(cos), rel=1e-12)


def test_text_vectors_are_capped_and_merges_keep_text_order():
    h, mask = random_batch(np.random.default_rng(12), b=10)
    whole = acc.TextStats(cap=7)
    whole.add(h, mask)
    a, b = acc.TextStats(cap=7), acc.TextStats(cap=7)
    a.add(h[:4], mask[:4])
    b.add(h[4:], mask[4:])
    merged = a.merge(b)
    assert (merged.kept, merged.texts) == (7, 10)
    np.testing.assert_array_equal(merged.stacked("masked"), whole.stacked("masked"))
    np.testing.assert_allclose(list(merged.pooling().values()), list(whole.pooling().values()),
                               rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(merged.pad_content_rsa(), whole.pad_content_rsa(), rtol=1e-12)


def test_text_with_nan_states_is_counted_not_pooled():
    h, mask = random_batch(np.random.default_rng(13), b=4)
    h[1, 0, 0] = np.nan
    stats = acc.TextStats()
    stats.add(h, mask)
    assert (stats.texts, stats.failed, stats.kept) == (4, 1, 3)
    assert np.isfinite(stats.pooling()["masked_unmasked_cos"])


def test_a_text_whose_pooled_vector_is_zero_is_left_out_of_the_pooling_cosines():
    """The metrics' zero-state rule over stats.cosine.row_cosines (which says 1.0 / 0.0 for zero rows):
    a zero vector has no direction, so its text adds nothing to the means, the min or the max."""
    rng = np.random.default_rng(14)
    masked, unmasked, cls = (rng.normal(size=(4, 6)) for _ in range(3))
    masked[1] = 0.0  # zero against non-zero: row_cosines' 0.0 would lower the mean and the min
    unmasked[2] = cls[3] = 0.0
    stats = acc.TextStats()
    stats.add_vectors({"masked": masked, "unmasked": unmasked, "pad": masked, "cls": cls, "valid": np.ones(4, bool)})
    kept = [float(masked[i] @ unmasked[i] / np.linalg.norm(masked[i]) / np.linalg.norm(unmasked[i])) for i in (0, 3)]
    cls_kept = [float(cls[i] @ masked[i] / np.linalg.norm(cls[i]) / np.linalg.norm(masked[i])) for i in (0, 2)]
    pooling = stats.pooling()
    assert stats.values.counts == {"masked_unmasked_cos": 2, "cls_masked_cos": 2}
    assert pooling["masked_unmasked_cos"] == pytest.approx(np.mean(kept), rel=1e-12)
    assert (pooling["masked_unmasked_cos_min"], pooling["masked_unmasked_cos_max"]) == pytest.approx(
        (min(kept), max(kept)), rel=1e-12)
    assert pooling["cls_masked_cos"] == pytest.approx(np.mean(cls_kept), rel=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_nearest_sets_equal_a_stable_sort_with_ties_and_non_finite_values(seed):
    """The partition-based k-NN sets are the stable argsort's, ties at the k-th place included."""
    rng = np.random.default_rng(seed)
    n, k = 40, 7
    sim = np.round(rng.normal(size=(n, n)), 1)  # rounded: many ties, also at the k-th place
    if seed % 3 == 2:
        sim[3, 5] = sim[10, 2] = np.nan  # the sort's order decides here
    ref = np.array(sim)
    np.fill_diagonal(ref, -np.inf)
    expected = np.zeros((n, n), bool)
    expected[np.arange(n)[:, None], np.argsort(-ref, axis=1, kind="stable")[:, :k]] = True
    got = measures.nearest_sets(sim, k)
    np.testing.assert_array_equal(got, expected)
    assert (got.sum(1) == k).all()


@pytest.mark.parametrize("no_pads", [False, True])
def test_pooling_and_rsa_together_equal_the_two_calls(no_pads):
    """The shared masked ranks give exactly what pooling() and pad_content_rsa() give apart."""
    rng = np.random.default_rng(11)
    stats = acc.TextStats()
    for _ in range(3):
        masked, unmasked, pad = (rng.normal(size=(7, 6)) for _ in range(3))
        if no_pads:
            pad[2] = np.nan  # a text without pads: left out of the RSA only
        stats.add_vectors({"masked": masked, "unmasked": masked + 0.3 * unmasked, "pad": pad,
                           "cls": rng.normal(size=(7, 6)), "valid": np.ones(7, bool)})
    pooling, rsa = stats.pooling_and_rsa()
    expected = stats.pooling()
    assert pooling.keys() == expected.keys()
    for key, value in expected.items():
        assert pooling[key] == pytest.approx(value, rel=1e-12, nan_ok=True), key
    assert rsa == pytest.approx(stats.pad_content_rsa(), rel=1e-12) and not np.isnan(rsa)
    assert rsa == pytest.approx(measures.pad_content_rsa(stats.stacked("pad"), stats.stacked("masked")), rel=1e-12)


def test_cross_text_metrics_match_their_definitions():
    """k-NN overlap, similarity Spearman and pad_content_rsa over 100 texts (4,950 pairs: the packed sort
    ranks them) equal scipy's Spearman and the plain k-NN definition on the cosine matrices; a text
    without pads is left out of the RSA only."""
    from scipy.stats import spearmanr

    rng = np.random.default_rng(12)
    stats = acc.TextStats()
    for _ in range(4):
        masked, unmasked, pad = (rng.normal(size=(25, 8)) for _ in range(3))
        stats.add_vectors({"masked": masked, "unmasked": masked + 0.5 * unmasked, "pad": pad + 0.3 * masked,
                           "cls": rng.normal(size=(25, 8)), "valid": np.ones(25, bool)})
    stats.pad[0][3] = np.nan
    pooling, rsa = stats.pooling_and_rsa()
    m, u, p = (stats.stacked(k) for k in ("masked", "unmasked", "pad"))
    sim_m, sim_u = measures.cosine_matrix(m), measures.cosine_matrix(u)
    tri = np.triu_indices(100, k=1)
    assert pooling["texts_compared"] == 100 and pooling["knn_k"] == measures.KNN_K
    assert pooling["knn_overlap"] == pytest.approx(measures.knn_overlap(sim_m, sim_u)[0], rel=1e-12)
    assert pooling["similarity_spearman"] == pytest.approx(spearmanr(sim_m[tri], sim_u[tri])[0], rel=1e-9)
    assert pooling["similarity_mean_masked"] == pytest.approx(sim_m[tri].mean(), rel=1e-12)
    keep = np.isfinite(p).all(1)
    pm, mm = measures.cosine_matrix(p[keep]), measures.cosine_matrix(m[keep])
    inner = np.triu_indices(int(keep.sum()), k=1)
    assert rsa == pytest.approx(spearmanr(pm[inner], mm[inner])[0], rel=1e-9)


def brute_directed(h: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """DESIGN.md's zero-state rule written as loops: zero states count in the norms and are
    left out of the cosines (no direction)."""
    norms = np.linalg.norm(h, axis=1)
    keep = norms > 0
    cos = brute(h[keep], np.asarray(mask)[keep])
    P = [t for t, m in enumerate(mask) if m == 0]
    R = [t for t, m in enumerate(mask) if m != 0]
    nan = float("nan")
    return {**cos, "pad_norm": float(np.mean(norms[P])) if P else nan,
            "real_norm": float(np.mean(norms[R])) if R else nan}


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("zeros", [1, 2, 4])
def test_zero_pad_states_count_in_pad_norm_and_are_left_out_of_the_cosines(side, zeros):
    rng = np.random.default_rng(zeros)
    h = rng.normal(size=(9, 5))
    mask = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0])
    if side == "left":
        h, mask = h[::-1].copy(), mask[::-1].copy()
    pads = np.flatnonzero(mask == 0)
    h[pads[:zeros]] = 0.0
    stats = acc.PadStats(max_positions=9)
    stats.add(*seq(h, mask))
    expected = brute_directed(h, mask)
    got = stats.means()
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, nan_ok=True), name
    assert stats.failed == 0 and stats.zero_pads == zeros and stats.pads == 4 and stats.padded == 1
    if zeros < 4:
        assert got["pad_norm"] < np.linalg.norm(h[pads[zeros:]], axis=1).mean()  # the zeros pull it down
    else:
        assert got["pad_norm"] == 0.0 and math.isnan(got["pad_pad_cos"]) and math.isnan(got["pad_real_cos"])
        assert math.isnan(got["pad_anchor_cos"]) and got["pad_step"] == 0.0


def test_every_pad_zero_keeps_real_metrics_and_is_said_once_never_as_no_pads():
    rng = np.random.default_rng(5)
    h, mask = random_batch(rng, b=6, side="left")
    mask[:, 0] = 0  # every text has a pad
    h[mask == 0] = 0.0
    layers = [acc.PadStats(max_positions=11) for _ in range(3)]
    for stats in layers:
        stats.add(h, mask)
    means = layers[0].means()
    assert means["pad_norm"] == 0.0 and layers[0].failed == 0
    assert means["real_norm"] == pytest.approx(np.linalg.norm(h, axis=2)[mask == 1].mean(), rel=0.3)
    assert np.isfinite(means["real_norm"]) and layers[0].values.counts["real_norm"] == 6
    notes = words.pad_notes(layers)
    assert notes == ["pad states are exactly zero at layers 0-2: norm 0 (in pad_norm), no direction "
                     "(left out of the pad cosines)"]


def test_no_text_has_pads_only_when_no_text_has_a_pad():
    rng = np.random.default_rng(6)
    h = rng.normal(size=(3, 4, 5))
    full = acc.PadStats(max_positions=4)
    full.add(h, np.ones((3, 4), int))
    assert any("no text has pads" in n for n in words.pad_notes([full]))
    nan_pads = acc.PadStats(max_positions=4)
    bad, mask = h.copy(), np.ones((3, 4), int)
    mask[:, -1] = 0
    bad[:, -1] = np.nan  # every padded sequence faulty: still not "no pads"
    nan_pads.add(bad, mask)
    notes = words.pad_notes([nan_pads])
    assert not any("no text has pads" in n for n in notes)
    assert notes[0].startswith("layer 0: 3 of 3 sequences had NaN or Inf states")


def test_a_nan_pad_never_drops_its_sequence_real_norm():
    rng = np.random.default_rng(7)
    h = rng.normal(size=(1, 6, 4))
    mask = np.array([[1, 1, 1, 1, 0, 0]])
    bad = h.copy()
    bad[0, 5, 1] = np.nan
    stats = acc.PadStats(max_positions=6)
    stats.add(bad, mask)
    assert stats.failed == 1
    assert stats.means()["real_norm"] == pytest.approx(np.linalg.norm(h[0, :4], axis=1).mean())
    assert math.isnan(stats.means()["pad_norm"]) and math.isnan(stats.means()["pad_real_cos"])


def test_zero_pad_states_merge_exactly():
    rng = np.random.default_rng(8)
    h, mask = random_batch(rng, b=10, side="left")
    h[(mask == 0) & (rng.random(mask.shape) < 0.5)] = 0.0
    whole = acc.PadStats(max_positions=11)
    whole.add(h, mask)
    a, b = acc.PadStats(max_positions=11), acc.PadStats(max_positions=11)
    a.add(h[:4], mask[:4])
    b.add(h[4:], mask[4:])
    merged = a.merge(b)
    assert (merged.zero_pads, merged.pads, merged.padded) == (whole.zero_pads, whole.pads, whole.padded)
    assert whole.zero_pads > 0
    assert merged.means() == pytest.approx(whole.means(), nan_ok=True)
    assert merged.offset_curve() == pytest.approx(whole.offset_curve())


def test_a_fully_masked_pad_query_leaves_real_to_pad_defined_and_is_said_once():
    probs = np.full((2, 1, 4, 4), 0.25)
    mask = np.array([[0, 1, 1, 1], [1, 1, 1, 1]])
    probs[0, :, 0] = np.nan  # the pad query of a left-padded causal row sees no key
    probs[0, :, 1:] = [0.1, 0.3, 0.3, 0.3]  # real queries put 0.1 on the pad key
    layers = [None, acc.AttentionStats(), acc.AttentionStats()]
    for stats in layers[1:]:
        stats.add(probs, mask)
    means = layers[1].means()
    assert layers[1].failed == 1 and math.isnan(means["pad_to_pad"])
    assert layers[1].values.counts["real_to_pad"] == 2 and means["real_to_pad"] == pytest.approx(0.1 / 2)
    notes = words.attention_notes(layers)
    assert len(notes) == 1 and notes[0].startswith("attention probabilities hold NaN or Inf at layers 1-2")


def _layer_sums(h: np.ndarray, mask: np.ndarray) -> acc.LayerSums:
    """``LayerSums`` of states ``h`` [B, T, H], as the in-graph statistics bring them (float64 here)."""
    norms = np.linalg.norm(h, axis=-1)
    units = h / np.where(norms > 0, norms, 1.0)[..., None]
    pad = mask == 0
    anchor = h[np.arange(len(h)), measures.pad_anchor(mask)]
    with np.errstate(invalid="ignore", divide="ignore"):  # a zero state: NaN cosine, as the graph gives
        cos = np.einsum("bth,bh->bt", h, anchor) / norms / np.linalg.norm(anchor, axis=-1)[:, None]
    return acc.LayerSums(norms=norms, pad_sum=(units * pad[..., None]).sum(1), real_sum=(units * ~pad[..., None]).sum(1),
                         anchor_cos=cos, steps=np.linalg.norm(h[:, 1:] - h[:, :-1], axis=-1),
                         position_sum=(h * pad[..., None]).sum(0), valid=np.ones(len(h), bool))


def test_the_layers_added_stacked_equal_each_layer_added_alone():
    """``add_layer_sums`` takes each sum once for all layers: the same counts, means, offset curves and
    position sums as each layer's ``add_sums`` (rows with no pad, one pad, a zero pad state)."""
    rng = np.random.default_rng(5)
    mask = np.ones((6, 12), np.int64)
    for row, real in enumerate((12, 11, 7, 3, 5, 9)):
        mask[row, real:] = 0
    states = [rng.normal(size=(6, 12, 8)) for _ in range(4)]
    states[2][3, 8] = 0.0  # a zero pad: a norm, no direction
    layers = [_layer_sums(h, mask) for h in states]
    stacked, alone = [acc.PadStats(max_positions=12) for _ in layers], [acc.PadStats(max_positions=12) for _ in layers]
    for _ in range(2):
        acc.add_layer_sums(stacked, layers, mask)
        for stat, layer in zip(alone, layers):
            stat.add_sums(layer, mask)
    for a, b in zip(stacked, alone):
        for name in ("sequences", "failed", "without_pads", "single_pad", "pads", "zero_pads", "padded"):
            assert getattr(a, name) == getattr(b, name), name
        assert a.values.counts == b.values.counts
        for name in measures.SEQUENCE_METRICS:
            assert a.values.sums[name] == pytest.approx(b.values.sums[name], rel=1e-12, abs=1e-12)
        np.testing.assert_array_equal(a.offset_count, b.offset_count)
        np.testing.assert_allclose(a.offset_sum, b.offset_sum, rtol=1e-12)
        np.testing.assert_allclose(a.position_sum, b.position_sum, rtol=1e-12)
    assert stacked[2].zero_pads == 2 and stacked[0].without_pads == 2 and stacked[0].single_pad == 2


def test_the_attention_maps_added_stacked_equal_each_map_added_alone():
    """``add_attention_masses`` as one call: the same as each map's ``add_masses``, a NaN pad query (its
    sequence failed, its real_to_pad still counted) and a NaN real query (all of it failed) included."""
    rng = np.random.default_rng(6)
    mask = np.ones((5, 10), np.int64)
    for row, real in enumerate((10, 6, 4, 8, 2)):
        mask[row, real:] = 0
    masses = [rng.dirichlet(np.ones(4), size=(5, 10)) for _ in range(3)]
    masses[1][2, 7] = np.nan  # a pad query of row 2
    masses[2][3, 1] = np.nan  # a real query of row 3
    stacked, alone = [acc.AttentionStats() for _ in masses], [acc.AttentionStats() for _ in masses]
    acc.add_attention_masses(stacked, masses, mask)
    for stat, m in zip(alone, masses):
        stat.add_masses(m, mask)
    for a, b in zip(stacked, alone):
        assert (a.sequences, a.failed, a.values.counts) == (b.sequences, b.failed, b.values.counts)
        for name in measures.ATTENTION_METRICS:
            assert a.values.sums[name] == pytest.approx(b.values.sums[name], rel=1e-12, abs=1e-12)
    assert [s.failed for s in stacked] == [0, 1, 1]
    assert stacked[1].values.counts["real_to_pad"] == 5 and stacked[2].values.counts["real_to_pad"] == 4
