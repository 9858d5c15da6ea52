"""Sessions reading the weights in place from the model file give the same outputs as the file."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

from padlens.errors import ModelLoadError
from padlens.inspector.inputs.resolve import resolve_models
from padlens.inspector.model import inplace
from padlens.inspector.runtime import session as session_mod
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
def test_a_session_reading_weights_in_place_gives_bit_identical_outputs(zoo, style, monkeypatch):
    folder = zoo(style)
    enc = Encoder.open(resolve_models([str(_model(folder))], str(folder))[0], attention=False)
    feeds = make_feeds(enc.graph.inputs, enc.encode(TEXTS, max_length=16))
    path = _model(folder)
    handed = _spy_handed(monkeypatch)
    in_place = create_session(path).session
    assert isinstance(handed[-1], bytes) and len(handed[-1]) < path.stat().st_size  # referring, not copying
    whole = create_session(path.read_bytes()).session
    for a, b in zip(in_place.run(None, feeds), whole.run(None, feeds)):
        np.testing.assert_array_equal(a, b)


def test_a_weightless_graph_refers_to_every_large_weight_and_keeps_the_rest(zoo):
    path = _model(zoo("padlens"))
    raw = path.read_bytes()
    light = inplace.weightless(raw, path.name)
    full = onnx.load_model_from_string(raw)
    assert light.ByteSize() < len(raw) / 2
    assert [n.name for n in light.graph.node] == [n.name for n in full.graph.node]
    for a, b in zip(light.graph.initializer, full.graph.initializer):
        assert (a.name, list(a.dims), a.data_type) == (b.name, list(b.dims), b.data_type)
        assert a == b or a.data_location == onnx.TensorProto.EXTERNAL


def _spy_handed(monkeypatch) -> list:
    """What ONNX Runtime is handed, in order (bytes or a path)."""
    handed = []
    real = session_mod._new_session
    monkeypatch.setattr(session_mod, "_new_session", lambda model, *a: handed.append(model) or real(model, *a))
    return handed


@pytest.mark.parametrize("data", [b"", b"\xff\xff\xff", b"not a model at all", bytes(range(256))])
def test_bytes_that_do_not_read_as_a_model_stay_as_they_are(data):
    assert inplace.referencing_bytes(data, "model.onnx") is None


def test_a_model_of_small_initializers_has_nothing_to_move(zoo):
    path = _model(zoo("padlens"))
    assert inplace.referencing_bytes(path.read_bytes(), path.name, min_size=1 << 40) is None


def test_encoders_read_their_weights_in_place_and_fall_back_when_refused(zoo, monkeypatch):
    folder = zoo("padlens")
    ref = resolve_models([str(folder)])[0]
    size = _model(folder).stat().st_size
    handed = _spy_handed(monkeypatch)
    for stats in (False, True):
        for keep_model in (True, False):
            enc = Encoder.open(ref, stats=stats, keep_model=keep_model)
            assert len(handed[-1]) < size and enc.uses_stats == stats  # the weights referred to in the file
    batch = enc.encode(TEXTS, max_length=16)
    assert enc.verify_exposure(batch) == 0.0  # against a session on the unmodified file
    real = session_mod._new_session

    def refuse(model, *args):
        if isinstance(model, bytes) and len(model) < size:
            raise ModelLoadError("onnxruntime cannot load the instrumented model: refused")
        handed.append(model)
        return real(model, *args)

    monkeypatch.setattr(session_mod, "_new_session", refuse)
    for keep_model in (True, False):
        enc = Encoder.open(ref, stats=True, keep_model=keep_model)
        assert len(handed[-1]) > size and enc.uses_stats  # the whole model, the delta appended
        np.testing.assert_array_equal(enc.run(batch).hidden[-1], Encoder.open(ref).run(batch).hidden[-1])
