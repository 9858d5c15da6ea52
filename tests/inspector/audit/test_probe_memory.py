"""The audit keeps only what its checks read of each run (``variants.Row``): a text's real tokens
at every layer, the last layer whole, the first non-finite layer, and the pads' states only when
runs are compared. A run's [B, T, H] outputs are never held by a cached variant (at 0.6B a whole
row is 15 MB; this is what brings the audit's peak memory near a bare ONNX Runtime loop's)."""
from __future__ import annotations

import numpy as np
import pytest

from padlens.inspector.audit import registry, running
from padlens.inspector.audit.facts import RunContext
from padlens.inspector.audit.run import Settings, open_run, run_check
from padlens.inspector.audit.variants import take_row

TEXTS = ["this is a sample sentence", "the cat sat on the mat", "a dog", "padding text is short"]


def _audited(toy, compared=False, side="auto", kind="honest"):
    """A probe after every single-run check of ``kind`` has read it."""
    from padlens.inspector.inputs.resolve import resolve_models
    from padlens.inspector.runtime.encoder import Encoder

    enc = Encoder.open(resolve_models([toy(kind)])[0], attention=False)
    probe, facts = open_run(enc, TEXTS, Settings(max_length=32, side=side), compared)
    ctx = RunContext(probe, facts, "m", {}, 0)
    results = [run_check(spec, ctx) for spec in registry.SPECS if spec.family != registry.DRIFT]
    return probe, results


def _cached(probe):
    """(text index or None, row) of every cached variant."""
    return ([(i, r) for i, r in probe._refs.items()] + [(k[0], r) for k, r in probe._padded.items()]
            + [(None, r) for r in probe._in_batch.values()])


@pytest.mark.parametrize("batched", [True, False])
def test_every_cached_variant_holds_its_real_tokens_in_arrays_of_its_own(toy, monkeypatch, batched):
    if not batched:
        monkeypatch.setattr(running, "measure_independence", lambda runner, layout: running.Independence())
    probe, results = _audited(toy)
    assert probe.batched == batched and all(r.passed for r in results)
    layers, cached = len(probe.encoder.hidden_outputs), _cached(probe)
    assert len(cached) >= 2 * len(TEXTS) and (not batched or probe._in_batch)
    for i, row in cached:
        assert len(row.real) == layers and row.pads is None and row.nonfinite is None
        if i is not None:
            assert all(h.shape[0] == probe.length(i) for h in row.real)
        assert row.last.base is None and all(h.base is None for h in row.real[:-1])  # not views of a run
        assert row.real[-1].base is row.last
    # only the width's variants are kept: +1 and +8 pads are measured and dropped
    assert {w for _, w, _ in probe._padded} == {probe.width}


@pytest.mark.parametrize("side", ["right", "left"])
def test_a_compared_run_keeps_the_pads_of_each_text_padded_to_the_width(toy, side):
    probe, _ = _audited(toy, compared=True, side=side)
    assert probe.side == side
    for i in filter(probe.has_pads, range(probe.count)):
        row, n, width = probe.padded(i), probe.length(i), probe.width
        pads, real = (slice(n, width), slice(0, n)) if side == "right" else (slice(0, width - n), slice(width - n, width))
        assert len(row.pads) == len(row.real) and all(p.shape[0] == width - n for p in row.pads)
        assert np.array_equal(row.pads[-1], row.last[pads]) and np.array_equal(row.real[-1], row.last[real])
    other = [r for (_, _, s), r in probe._padded.items() if s != side]
    assert other and all(r.pads is None for r in other)


def test_a_row_is_its_real_tokens_on_its_side_and_the_first_layer_with_a_nan_anywhere():
    hidden = [np.arange(2 * 5 * 3, dtype=np.float32).reshape(2, 5, 3) + 100 * layer for layer in range(4)]
    hidden[2][1, 0, 1] = np.nan  # a pad of row 1, left-padded with 3 real tokens
    right, left = take_row(hidden, 0, 3, "right", pads=True), take_row(hidden, 1, 3, "left")
    assert np.array_equal(right.real[1], hidden[1][0, :3]) and np.array_equal(right.pads[3], hidden[3][0, 3:])
    assert np.array_equal(left.real[0], hidden[0][1, 2:]) and left.pads is None
    assert right.nonfinite is None and left.nonfinite == 2
    assert np.array_equal(left.last, hidden[3][1])


def test_the_audit_s_sessions_run_without_onnx_runtime_s_memory_pattern(toy):
    """With it, the second run of a shape takes a new block for all its activations (+330 MB at
    0.6B, 32 × 128); the audit runs each shape many times. Other commands keep ORT's default."""
    from padlens.inspector.audit.run import _encoders, _model_refs
    from padlens.inspector.inputs.options import RunOptions
    from padlens.inspector.runtime.encoder import Encoder

    options = RunOptions(providers=("cpu",))
    [(_, _, audited)] = list(_encoders(_model_refs([str(toy("honest"))], options), options))
    plain = Encoder.open(audited.ref)
    assert audited.session.session.get_session_options().enable_mem_pattern is False
    assert plain.session.session.get_session_options().enable_mem_pattern is True
