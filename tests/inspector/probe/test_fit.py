"""The probe estimators on synthetic states: a planted linear signal is found, noise is not."""
from __future__ import annotations

import numpy as np
import pytest

from padlens.inspector.probe import fit as F


def _shuffled_by_text(y, groups, rng):
    texts = np.unique(groups)
    source = dict(zip(texts, rng.permutation(texts)))
    first = {g: i for i, g in reversed(list(enumerate(groups)))}
    return y[[first[source[g]] for g in groups]]


def _per_text(values, groups):
    return values[groups]


def test_regression_finds_a_planted_per_text_signal_and_its_control_stays_near_zero(grouped):
    rng, X, groups, test = grouped(texts=400)
    length = rng.normal(size=groups.max() + 1)
    X[:, 0] += 10 * _per_text(length, groups)  # noise variance 1: R² ≈ 0.99 at best
    y = _per_text(length, groups)
    out = F.evaluate("regression", X, y, groups, test, _shuffled_by_text(y, groups, rng))
    assert out["score"] > 0.9
    assert abs(out["control"]) <= 0.05
    assert out["selectivity"] == pytest.approx(out["score"] - out["control"])
    assert out["ci"][0] <= out["score"] <= out["ci"][1]


def test_regression_on_pure_noise_scores_at_the_control_level(grouped):
    rng, X, groups, test = grouped()
    y = _per_text(rng.normal(size=groups.max() + 1), groups)
    out = F.evaluate("regression", X, y, groups, test, _shuffled_by_text(y, groups, rng))
    assert out["score"] < 0.05
    assert abs(out["selectivity"]) < 0.1
    assert out["ci"][0] < 0.05


def test_content_probe_reads_a_planted_vector_far_above_the_mean_vector_baseline(grouped):
    rng, X, groups, test = grouped(dims=16)
    W = rng.normal(size=(16, 8))
    content = rng.normal(size=(groups.max() + 1, 16)) @ W + 2.0  # a shared offset, as real states have
    X[:] = _per_text(content @ np.linalg.pinv(W), groups) + 0.1 * rng.normal(size=X.shape)
    y = _per_text(content, groups)
    out = F.evaluate("content", X, y, groups, test, _shuffled_by_text(y, groups, rng))
    assert out["score"] > 0.95
    assert out["score"] > out["baseline"] + 0.2
    assert abs(out["control"] - out["baseline"]) < 0.05


def test_content_probe_on_noise_scores_the_baseline(grouped):
    rng, X, groups, test = grouped()
    y = _per_text(rng.normal(size=(groups.max() + 1, 8)) + 1.0, groups)
    out = F.evaluate("content", X, y, groups, test, _shuffled_by_text(y, groups, rng))
    assert abs(out["score"] - out["baseline"]) < 0.05


def test_classifier_reads_planted_classes_well_above_the_majority(grouped):
    rng, X, groups, test = grouped()
    classes = rng.integers(0, 4, size=groups.max() + 1)
    X[:, :4] += 3 * np.eye(4)[_per_text(classes, groups)]
    y = _per_text(classes, groups)
    out = F.evaluate("classification", X, y, groups, test, _shuffled_by_text(y, groups, rng))
    assert out["score"] > 0.9
    assert out["score"] > out["baseline"] + 0.4
    assert out["control"] < out["baseline"] + 0.15
    assert out["classes"] == 4


def test_classifier_on_noise_is_no_better_than_the_majority(grouped):
    rng, X, groups, test = grouped()
    y = _per_text(rng.choice(3, size=groups.max() + 1, p=[0.6, 0.3, 0.1]), groups)
    out = F.evaluate("classification", X, y, groups, test, _shuffled_by_text(y, groups, rng))
    assert out["score"] < out["baseline"] + 0.1


def test_counts_are_texts_and_states_on_each_side_of_a_text_split(grouped):
    rng, X, groups, test = grouped(texts=40, per_text=3)
    y = _per_text(rng.normal(size=40), groups)
    out = F.evaluate("regression", X, y, groups, test, y[::-1].copy())
    assert out["n_train"] + out["n_test"] == 40
    assert out["n_test"] == np.unique(groups[test]).size
    assert (out["n_train_states"], out["n_test_states"]) == (int((~test).sum()), int(test.sum()))
    assert out["dims"] == X.shape[1]
    assert out["alpha"] in F.ALPHAS


def test_weighted_r2_with_unit_weights_is_sklearns_r2():
    from sklearn.metrics import r2_score

    rng = np.random.default_rng(3)
    truth, pred = rng.normal(size=50), rng.normal(size=50)
    value = F.weighted_r2(truth, pred, np.ones((1, 50)))[0]
    assert value == pytest.approx(r2_score(truth, pred))
    doubled = F.weighted_r2(np.r_[truth, truth], np.r_[pred, pred], np.ones((1, 100)))[0]
    assert F.weighted_r2(truth, pred, np.full((1, 50), 2.0))[0] == pytest.approx(doubled)


def test_weighted_r2_is_nan_for_a_constant_target():
    assert np.isnan(F.weighted_r2(np.ones(5), np.zeros(5), np.ones((1, 5)))[0])


@pytest.mark.parametrize(("a", "b", "cos"), [
    ([1.0, 0.0], [2.0, 0.0], 1.0),            # same direction, any length
    ([1.0, 0.0], [0.0, 3.0], 0.0),            # orthogonal
    ([1.0, 1.0], [-1.0, -1.0], -1.0),         # opposite
    ([0.0, 0.0], [1.0, 1.0], 0.0),            # a zero row has no direction: shares none with another
    ([1.0, 1.0], [0.0, 0.0], 0.0),
    ([0.0, 0.0], [0.0, 0.0], 1.0),            # two zero rows are the same vector
    ([np.nan, 0.0], [1.0, 0.0], np.nan),      # a non-finite row has no cosine (a fault)
    ([1e-300, 0.0], [1e-300, 0.0], 1.0),      # tiny but non-zero rows keep their direction
])
def test_the_one_row_cosine_and_its_zero_row_rule(a, b, cos):
    from padlens.inspector.stats.cosine import row_cosines

    got = row_cosines(np.array([a]), np.array([b]))[0]
    assert (np.isnan(got) and np.isnan(cos)) or got == pytest.approx(cos, abs=1e-12)


def test_an_unknown_kind_is_refused(grouped):
    _, X, groups, test = grouped(texts=20)
    with pytest.raises(ValueError, match="unknown probe kind"):
        F.evaluate("ranking", X, groups.astype(float), groups, test, groups.astype(float))
