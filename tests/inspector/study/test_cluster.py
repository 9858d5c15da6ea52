"""k-means, the adjusted Rand index and the moved share (study.cluster, scikit-learn) on known answers."""
from __future__ import annotations

import numpy as np
import pytest

from padlens.inspector.study import cluster


@pytest.mark.parametrize("a, b, expected", [
    ([0, 0, 1, 1], [1, 1, 0, 0], 1.0),                        # the same grouping, renamed
    ([0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 2, 2], 0.24242424242424243),  # scikit-learn's user-guide example
    ([0, 0, 1, 1], [0, 1, 0, 1], -0.5),
])
def test_ari_against_a_known_assignment_is_the_textbook_value(a, b, expected):
    assert cluster.ari(a, b) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("reference, other, expected", [
    ([0, 0, 1, 1, 2, 2], [2, 2, 0, 0, 1, 1], 0.0),        # renamed clusters move nobody
    ([0, 0, 1, 1, 2, 2], [1, 1, 0, 0, 2, 0], 1 / 6),      # one text changed cluster
    ([0, 0, 0, 0], [0, 0, 1, 1], 0.5),                    # a cluster split in two: half moved
])
def test_moved_share_matches_clusters_one_to_one_before_counting(reference, other, expected):
    assert cluster.moved_share(reference, other) == pytest.approx(expected)


def test_kmeans_finds_separated_directions_whatever_their_norm():
    rng = np.random.default_rng(0)
    centres = np.eye(4)[:3] * 5
    x = np.concatenate([c + rng.normal(scale=0.2, size=(20, 4)) for c in centres])
    x *= rng.uniform(0.5, 20, size=(60, 1))  # normalised before clustering: norms do not matter
    truth = np.repeat(np.arange(3), 20)
    assert cluster.ari(cluster.kmeans(x, 3, seed=0), truth) == 1.0
    assert np.array_equal(cluster.kmeans(x, 3, seed=0), cluster.kmeans(x, 3, seed=0))
