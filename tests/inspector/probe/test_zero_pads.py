"""The probe's samples under zero and faulty pad states (DESIGN.md: zero is degenerate, NaN a fault)."""
from __future__ import annotations

import numpy as np

from padlens.inspector.probe.data import Collector

from .test_data import fake_batch, fake_hidden


def _collect(batch, hidden):
    collector = Collector(len(batch.attention_mask), floor=6, per_text=3)
    collector.add(batch, hidden, 0)
    return collector.finish()


def test_zero_pad_states_are_valid_samples():
    batch = fake_batch([4, 5, 6], side="left")
    hidden = fake_hidden(batch)
    for h in hidden:
        h[batch.attention_mask == 0] = 0.0
    data = _collect(batch, hidden)
    assert data.kept.all() and set(data.pads.text.tolist()) == {0, 1, 2}
    assert all(not layer.any() for layer in data.pads.states)  # what the pads hold: nothing
    assert all(np.isfinite(c).all() for c in data.content)


def test_a_nan_pad_drops_its_pad_samples_only():
    batch = fake_batch([4, 5, 6])
    hidden = fake_hidden(batch)
    hidden[1][0, 10, 2] = np.nan  # text 0, a pad, layer 1
    data = _collect(batch, hidden)
    assert data.kept.all() and data.length.tolist() == [4, 5, 6]
    assert 0 not in data.pads.text and {1, 2} <= set(data.pads.text.tolist())
    assert 0 in data.reals.text and all(np.isfinite(c[0]).all() for c in data.content)


def test_a_nan_real_token_drops_the_text():
    batch = fake_batch([4, 5, 6])
    hidden = fake_hidden(batch)
    hidden[0][2, 1, 0] = np.inf  # text 2, a real token
    data = _collect(batch, hidden)
    assert data.kept.tolist() == [True, True, False]
    assert 2 not in data.pads.text and 2 not in data.reals.text
