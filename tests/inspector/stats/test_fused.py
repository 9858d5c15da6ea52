"""The compiled one-pass sums (``padlens.inspector.stats.fused``) against numpy in float64, and where they are used."""
from __future__ import annotations

import numpy as np
import pytest

from padlens.inspector.runtime.encoder import fused_here
from padlens.inspector.runtime.session import SessionOptions
from padlens.inspector.stats import fused, measures


def _batch(seed: int = 0, b: int = 5, t: int = 12, h: int = 40, side: str = "right"):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((b, t, h)) * 3).astype(np.float32)
    lengths = np.array([t, 1, 4, 7, 2][:b] + [3] * max(0, b - 5))
    mask = (np.arange(t)[None, :] < lengths[:, None]).astype(np.int64)
    if side == "left":
        mask = mask[:, ::-1].copy()
    return x, mask


def _reference(states, mask):
    """The same sums, one numpy expression each, in float64."""
    pad = (mask == 0).astype(np.float64)
    anchor = measures.pad_anchor(mask)
    first = (mask != 0).argmax(1)
    rows = np.arange(mask.shape[0])
    out = {k: [] for k in ("sq", "sums", "dots", "steps", "positions")}
    for x in states:
        x = x.astype(np.float64)
        sq = (x ** 2).sum(-1)
        u = x / np.maximum(np.sqrt(sq), np.finfo(np.float32).tiny)[..., None]
        steps = sq.copy()
        steps[:, 1:] = ((x[:, 1:] - x[:, :-1]) ** 2).sum(-1)
        out["sq"].append(sq)
        out["sums"].append(np.stack([np.einsum("bt,bth->bh", pad, u), np.einsum("bt,bth->bh", 1 - pad, u),
                                     x[rows, anchor]], axis=1))
        out["dots"].append(np.einsum("bth,bh->bt", x, x[rows, anchor])[..., None])
        out["steps"].append(steps)
        out["positions"].append(np.einsum("bt,bth->th", pad, x)[:, None, :])
    last = states[-1].astype(np.float64)
    text = np.stack([np.einsum("bt,bth->bh", 1 - pad, last), last.sum(1), np.einsum("bt,bth->bh", pad, last),
                     last[rows, first]], axis=1)
    return out, text


def test_the_compiled_module_is_built(monkeypatch):
    """The install builds it wherever a C compiler is (CI's does): without it inspect is slower, not wrong."""
    monkeypatch.delenv(fused.OFF_SWITCH, raising=False)
    assert fused.available()
    monkeypatch.setenv(fused.OFF_SWITCH, "1")
    assert not fused.available() and not fused_here(SessionOptions(("cpu",)), 32)


@pytest.mark.parametrize("threads", [1, 2, 5])
@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("b", [1, 2, 5, 9])
def test_one_pass_sums_equal_numpy_in_float64(side, b, threads):
    states = [_batch(seed, b=b, side=side)[0] for seed in range(3)]
    mask = _batch(0, b=b, side=side)[1]
    states[1][0, 3] = 0.0  # a zero state: no direction, adds nothing to the unit sums
    sq, sums, dots, steps, positions, text = fused.layer_sums(states, mask, threads)
    ref, ref_text = _reference(states, mask)
    for name, got in zip(("sq", "sums", "dots", "steps", "positions"), (sq, sums, dots, steps, positions)):
        assert got.dtype == np.float64 and got.shape == (3, *ref[name][0].shape), name
        np.testing.assert_allclose(got, np.stack(ref[name]), rtol=1e-12, atol=1e-10, err_msg=name)
    np.testing.assert_allclose(text, ref_text, rtol=1e-12, atol=1e-10)


def test_non_finite_states_give_non_finite_sums():
    """NaN in a state must reach the sums: ``BatchSums.valid`` then sends the batch the numpy way."""
    x, mask = _batch()
    x[2, 5, 0] = np.nan
    sq, sums, *_ = fused.layer_sums([x], mask)
    assert np.isnan(sq[0][2, 5]) and np.isnan(sums[0][2]).any() and np.isfinite(sq[0][[0, 1, 3, 4]]).all()


def test_a_threads_results_are_kept_for_two_more_calls():
    """A ring of workspaces: no fresh pages each batch, and a batch's sums still whole while the next is read."""
    x, mask = _batch()
    first = fused.layer_sums([x], mask)
    kept = [a.copy() for a in first]
    for _ in range(fused.RING - 1):
        again = fused.layer_sums([x * 2], mask)
        assert again[0] is not first[0]
        for a, k in zip(first, kept):
            np.testing.assert_array_equal(a, k)
    assert fused.layer_sums([x], mask)[0] is first[0]  # the ring came round


def test_past_the_rings_size_each_call_takes_fresh_arrays(monkeypatch):
    """A wide model's workspaces are not kept three times over: each call has its own."""
    monkeypatch.setattr(fused, "RING_BYTES", 0)
    x, mask = _batch()
    first = fused.layer_sums([x], mask)
    kept = [a.copy() for a in first]
    second = fused.layer_sums([x * 2], mask)
    assert all(a is not b for a, b in zip(first, second))
    for a, k in zip(first, kept):
        np.testing.assert_array_equal(a, k)
    np.testing.assert_allclose(second[0], 4 * kept[0], rtol=1e-12)


def test_bad_buffers_are_refused_with_words():
    x, mask = _batch()
    pad = (mask == 0).astype(np.uint8)
    anchor = measures.pad_anchor(mask).astype(np.int64)
    first = np.zeros(5, np.int64)
    b, t, h = x.shape
    out = [np.zeros((b, t)), np.zeros((b, t)), np.zeros((b, t)), np.zeros((b, 3, h)), np.zeros((t, h))]
    from padlens.inspector.stats import _fused

    _fused.layer(x, pad, anchor, first, 0, b, *out, None)  # as it should be: no error
    with pytest.raises(TypeError, match="x: items of format 'd'"):
        _fused.layer(x.astype(np.float64), pad, anchor, first, 0, b, *out, None)
    with pytest.raises(ValueError, match="sums: 200 items where 600 are needed"):
        _fused.layer(x, pad, anchor, first, 0, b, *out[:3], np.zeros((b, h)), out[4], None)
    with pytest.raises(ValueError, match="sequences 0..6 of 5"):
        _fused.layer(x, pad, anchor, first, 0, 6, *out, None)
    with pytest.raises(ValueError, match="anchor or first position out of"):
        _fused.layer(x, pad, anchor + t, first, 0, b, *out, None)
    with pytest.raises(ValueError, match="no states"):
        fused.layer_sums([], mask)
    with pytest.raises(ValueError, match="x: a state"):
        _fused.layer(x[0], pad, anchor, first, 0, b, *out, None)


def test_the_fused_sums_run_on_the_cpu_and_for_narrow_states_only():
    """On a GPU provider the states would be copied to the host each batch, and a wide model's states would
    all be held to the end of each run: there the operators stay in the graph."""
    assert fused_here(SessionOptions(("cpu",)), 384)
    assert fused_here(SessionOptions(("CPUExecutionProvider",)), fused.MAX_WIDTH)
    assert not fused_here(SessionOptions(("cuda",)), 384)
    assert not fused_here(SessionOptions(("cuda", "cpu")), 384)
    assert not fused_here(SessionOptions(("cpu",)), fused.MAX_WIDTH + 1)
    assert not fused_here(SessionOptions(("cpu",)), None)  # a width the graph does not say


def test_an_encoder_on_the_cpu_takes_the_sums_from_its_states_with_its_threads(zoo):
    from padlens.inspector.inputs.resolve import resolve_models
    from padlens.inspector.runtime.encoder import Encoder

    enc = Encoder.open(resolve_models([str(zoo("padlens"))])[0], SessionOptions(threads=1), stats=True)
    assert enc.stats.fused and enc.stats.threads == 1 and enc.stats.hidden == tuple(enc.hidden_outputs)
    assert enc.session.options.stop_spinning  # ONNX Runtime's threads leave the cores when a run returns
    # no per-layer node in the graph: the session's inputs are the model's and the key groups
    inputs = {i.name for i in enc.session.session.get_inputs()} - {s.name for s in enc.graph.inputs}
    assert inputs == {"padlens.stats.keys"}
