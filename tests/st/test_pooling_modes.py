"""Every pooling mode against sentence-transformers' own Pooling module, on the same token states,
padded on the right and on the left (pooling.npz, made by tests/st/build.py)."""
from __future__ import annotations

import numpy as np
import pytest

from padlens.inspector.contract import POOLING_MODES
from padlens.inspector.stats.pooling import POOLINGS, pool

#: (mode, side) where padlens and sentence-transformers' padded code path agree. Under left
#: padding sentence-transformers' weightedmean weighs each token by its column, pads counted;
#: padlens weighs the k-th real token by k on either side (tested below).
AGREE = [(m, side) for side in ("right", "left") for m in (*POOLING_MODES, "cls+mean")
         if (m, side) != ("weightedmean", "left")]


@pytest.fixture(scope="module")
def states(st_models):
    return dict(np.load(st_models["pooling"] / "pooling.npz"))


def test_every_sentence_transformers_mode_is_a_pooling_choice():
    assert set(POOLING_MODES) == {"cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken"}
    assert POOLINGS == ("auto", *POOLING_MODES)


@pytest.mark.parametrize("mode, side", AGREE)
def test_pooling_equals_sentence_transformers_pooling_module(states, mode, side):
    got = pool(states["h"], states[side], mode)
    np.testing.assert_allclose(got, states[f"{side}:{mode}"], rtol=1e-5, atol=1e-6)


def test_the_table_pads_rows_on_the_side_it_names(states):
    right, left = states["right"], states["left"]
    assert (right[:, 0] == 1).all() and not (right[:, -1] == 1).all()
    assert (left[:, -1] == 1).all() and not (left[:, 0] == 1).all()


def test_weightedmean_weighs_the_kth_real_token_by_k_on_either_side(states):
    h, left = states["h"], states["left"]
    want = np.stack([np.average(h[i, -n:], axis=0, weights=np.arange(1, n + 1)) for i, n in enumerate(left.sum(1))])
    np.testing.assert_allclose(pool(h, left, "weightedmean"), want, rtol=1e-5, atol=1e-6)
    # sentence-transformers' padded path weighs by column, pads counted: under left padding it differs
    assert not np.allclose(states["left:weightedmean"], want, atol=1e-3)


def test_lasttoken_follows_the_mask_not_the_count_of_real_tokens(states):
    h, left = states["h"], states["left"]
    naive = h[np.arange(len(h)), left.sum(1) - 1]  # sum(mask) - 1: a pad under left padding
    got = pool(h, left, "lasttoken")
    np.testing.assert_allclose(got, h[:, -1], rtol=1e-6)  # left padding: the last column is real
    padded = left.sum(1) < left.shape[1]
    assert padded.any() and not np.allclose(got[padded], naive[padded])


def test_a_row_without_real_tokens_pools_to_zeros():
    h = np.arange(24, dtype=np.float32).reshape(2, 3, 4) + 1
    mask = np.array([[1, 1, 0], [0, 0, 0]])
    for mode in POOLING_MODES:
        assert np.all(pool(h, mask, mode)[1] == 0), mode


def test_modes_joined_by_plus_are_concatenated(states):
    h, mask = states["h"], states["right"]
    np.testing.assert_array_equal(pool(h, mask, "cls+mean"),
                                  np.concatenate([pool(h, mask, "cls"), pool(h, mask, "mean")], axis=1))
