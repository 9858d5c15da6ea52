"""Sessions reading the weights in place from the model file give the same outputs as the file."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

from padlens.errors import ModelLoadError
from padlens.inspector.inputs.resolve import resolve_models
from padlens.inspector.model import inplace
from padlens.inspector.runtime import encoder as encoder_mod
from padlens.inspector.runtime.encoder import Encoder
from padlens.inspector.runtime.feeds import make_feeds
from padlens.inspector.runtime.session import create_session

TEXTS = ["this is a sample sentence", "the cat sat on the mat", "dog"]


def _model(folder):
    return folder / "model.onnx"


@pytest.mark.parametrize("style", ["padlens", "int8-dynamic", "int8-qdq"])
def test_each_large_initializer_points_at_its_own_bytes_in_the_file(zoo, style):
    path = _model(zoo(style))
    raw = path.read_bytes()
    small = inplace.referencing_bytes(raw, path.name)
    assert small is not None and len(small) < len(raw)
    original = {t.name: t for t in onnx.load_model_from_string(raw).graph.initializer}
    moved = 0
    for t in onnx.load_model_from_string(small).graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            info = {e.key: e.value for e in t.external_data}
            start, length = int(info["offset"]), int(info["length"])
            assert info["location"] == path.name and length >= inplace.MIN_SIZE
            assert raw[start:start + length] == original[t.name].raw_data
            moved += 1
        else:
            assert t == original[t.name]  # small ones stay as they were
    assert moved > 0


@pytest.mark.parametrize("style", ["padlens", "int8-dynamic", "int8-qdq", "ort-fused"])
def test_a_session_reading_weights_in_place_gives_bit_identical_outputs(zoo, style):
    folder = zoo(style)
    enc = Encoder.open(resolve_models([str(_model(folder))], str(folder))[0], attention=False)
    feeds = make_feeds(enc.graph.inputs, enc.encode(TEXTS, max_length=16))
    path = _model(folder)
    small = inplace.referencing_bytes(path.read_bytes(), path.name)
    in_place = create_session(small, weights_folder=folder).session
    plain = create_session(path).session
    for a, b in zip(in_place.run(None, feeds), plain.run(None, feeds)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("data", [b"", b"\xff\xff\xff", b"not a model at all", bytes(range(256))])
def test_bytes_that_do_not_read_as_a_model_stay_as_they_are(data):
    assert inplace.referencing_bytes(data, "model.onnx") is None


def test_a_model_of_small_initializers_has_nothing_to_move(zoo):
    path = _model(zoo("padlens"))
    assert inplace.referencing_bytes(path.read_bytes(), path.name, min_size=1 << 40) is None


def test_encoders_read_their_weights_in_place_and_fall_back_when_refused(zoo, monkeypatch):
    folder = zoo("padlens")
    ref = resolve_models([str(folder)])[0]
    calls = []
    real = encoder_mod.create_session

    def spy(model, *args, weights_folder=None, **kwargs):
        calls.append(weights_folder)
        return real(model, *args, weights_folder=weights_folder, **kwargs)

    monkeypatch.setattr(encoder_mod, "create_session", spy)
    for stats in (False, True):
        enc = Encoder.open(ref, stats=stats)
        assert calls[-1] == folder and enc.uses_stats == stats
    batch = enc.encode(TEXTS, max_length=16)
    assert enc.verify_exposure(batch) == 0.0  # against a session on the unmodified file

    def refuse(model, *args, weights_folder=None, **kwargs):
        if weights_folder is not None:
            raise ModelLoadError("onnxruntime cannot load the instrumented model: refused")
        calls.append("whole")
        return real(model, *args, **kwargs)

    monkeypatch.setattr(encoder_mod, "create_session", refuse)
    enc = Encoder.open(ref, stats=True)
    assert calls[-1] == "whole" and enc.uses_stats
    np.testing.assert_array_equal(enc.run(batch).hidden[-1], Encoder.open(ref).run(batch).hidden[-1])
