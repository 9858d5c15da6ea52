"""Which states the probe keeps: pads in the common window, content tokens, seeded per text."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from padlens.inspector.probe.data import Collector, pad_floor

WIDTH, DIMS, LAYERS = 16, 3, 2


def fake_batch(lengths, side="right", width=WIDTH):
    """[CLS] w w … [SEP] then pads (or pads first): ids = 100 + position on real tokens."""
    n = len(lengths)
    mask = np.zeros((n, width), dtype=np.int64)
    special = np.zeros((n, width), dtype=np.int64)
    ids = np.zeros((n, width), dtype=np.int64)
    for row, length in enumerate(lengths):
        cols = np.arange(length) if side == "right" else np.arange(width - length, width)
        mask[row, cols] = 1
        special[row, cols[[0, -1]]] = 1
        ids[row, cols] = 100 + np.arange(length)
    return SimpleNamespace(attention_mask=mask, special_tokens_mask=special, input_ids=ids, side=side)


def fake_hidden(batch, offset=0):
    """Layer l, row b, position t holds [l, offset + b, t]: every state says where it came from."""
    n, width = batch.attention_mask.shape
    layers = []
    for layer in range(LAYERS):
        h = np.zeros((n, width, DIMS), dtype=np.float32)
        h[..., 0] = layer
        h[..., 1] = offset + np.arange(n)[:, None]
        h[..., 2] = np.arange(width)[None, :]
        layers.append(h)
    return layers


def collect(lengths, floor, per_text=2, side="right", batch_size=None, seed=0):
    collector = Collector(len(lengths), floor, per_text, seed)
    size = batch_size or len(lengths)
    for offset in range(0, len(lengths), size):
        batch = fake_batch(lengths[offset: offset + size], side)
        collector.add(batch, fake_hidden(batch, offset), offset)
    return collector.finish()


def test_pads_are_sampled_only_in_the_common_window_and_long_texts_are_left_out():
    data = collect([4, 6, 9, 12], floor=9, per_text=3)
    assert set(data.pads.text.tolist()) == {0, 1, 2}  # 12 real tokens > floor 9: no pad probed
    assert data.pads.position.min() >= 9
    for text in (0, 1, 2):
        assert (data.pads.text == text).sum() == 3


def test_left_padding_window_is_counted_from_the_text_side():
    data = collect([4, 6, 9], floor=9, per_text=3, side="left")
    assert data.pads.position.max() < WIDTH - 9
    assert data.pads.size == 9


def test_states_are_read_at_the_sampled_positions_of_their_own_text():
    data = collect([4, 6, 9, 12], floor=9)
    for layer, states in enumerate(data.pads.states):
        assert (states[:, 0] == layer).all()
        assert (states[:, 1] == data.pads.text).all()
        assert (states[:, 2] == data.pads.position).all()


def test_real_tokens_are_content_tokens_never_special_ones():
    lengths = [3, 4, 6, 12]
    data = collect(lengths, floor=9, per_text=10)
    last = np.array(lengths)[data.reals.text] - 1
    assert (data.reals.position >= 1).all() and (data.reals.position < last).all()
    assert data.reals.size == sum(n - 2 for n in lengths)


def test_distance_is_measured_from_the_last_real_token_for_pads_and_reals():
    lengths = np.array([4, 6, 9])
    data = collect(list(lengths), floor=9, per_text=4)
    assert (data.pads.distance == data.pads.position - (lengths[data.pads.text] - 1)).all()
    assert (data.reals.distance == (lengths[data.reals.text] - 1) - data.reals.position).all()


def test_content_is_the_masked_mean_length_and_first_token_per_text():
    data = collect([4, 6], floor=9)
    assert data.length.tolist() == [4, 6]
    assert data.first_token.tolist() == [101, 101]  # the token after [CLS]
    # position column: mean of 0..L-1 over real tokens only
    assert data.content[1][:, 2].tolist() == pytest.approx([1.5, 2.5])
    assert data.content[1][:, 0].tolist() == [1.0, 1.0]


def test_sampling_does_not_depend_on_the_batch_size_and_follows_the_seed():
    lengths = [3, 5, 4, 6, 2, 7, 3, 5]
    one = collect(lengths, floor=8, batch_size=8)
    small = collect(lengths, floor=8, batch_size=3)
    assert one.pads.position.tolist() == small.pads.position.tolist()
    assert one.reals.position.tolist() == small.reals.position.tolist()
    other = collect(lengths, floor=8, batch_size=8, seed=1)
    assert other.pads.position.tolist() != one.pads.position.tolist()


def test_a_text_with_non_finite_states_is_left_out_everywhere():
    collector = Collector(3, 9, 2, 0)
    batch = fake_batch([4, 5, 6])
    hidden = fake_hidden(batch)
    hidden[1][1, 2, 0] = np.nan
    collector.add(batch, hidden, 0)
    data = collector.finish()
    assert data.kept.tolist() == [True, False, True]
    assert 1 not in data.pads.text and 1 not in data.reals.text
    assert np.isnan(data.content[0][1]).all()


def test_the_window_keeps_at_least_ninety_percent_of_the_texts_and_no_more_than_needed():
    lengths = np.random.default_rng(0).integers(3, 60, size=200)
    floor = pad_floor(lengths)
    assert (lengths <= floor).mean() >= 0.9
    assert (lengths <= floor - 1).mean() < 0.9
    assert pad_floor(np.array([5])) == 5
