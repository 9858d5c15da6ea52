"""The Encoder: every layer exposed and run on padded batches, inputs filled by role and dtype."""
from __future__ import annotations

import shutil
import threading
import weakref
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from tokenizers import Tokenizer

from padlens.errors import BadInput
from padlens.inspector.inputs.resolve import ModelRef, resolve_models
from padlens.inspector.inputs.tokenize import load_tokenizer
from padlens.inspector.runtime import encoder as encoder_mod
from padlens.inspector.runtime.encoder import Encoder, max_abs_diff
from padlens.inspector.runtime.feeds import make_feeds
from padlens.inspector.runtime.session import SessionOptions
from tests.inspector.inputs.test_tokenize import write_tokenizer

LAYERS, HIDDEN, MAX_POS = 2, 32, 64  # tests/fixtures/build.py
TEXTS = ["this is a sample sentence", "the cat sat on the mat", "dog"]


@pytest.fixture(scope="module")
def export(zoo):
    return zoo("padlens")


@pytest.fixture(scope="module")
def encoder(export):
    (ref,) = resolve_models([export])
    return Encoder.open(ref, SessionOptions(threads=1))


def test_run_returns_every_layer_as_float32_batch_seq_hidden(encoder):
    batch = encoder.encode(TEXTS, max_length=16)
    forward = encoder.run(batch)
    assert forward.num_layers == LAYERS and len(forward.hidden) == LAYERS + 1
    for h in forward.hidden:
        assert h.shape == (3, 16, HIDDEN) and h.dtype == np.float32
    assert forward.attention == [] or len(forward.attention) == LAYERS


def test_the_last_layer_is_the_models_own_last_hidden_state(encoder):
    forward = encoder.run(encoder.encode(TEXTS, max_length=16))
    np.testing.assert_array_equal(forward.hidden[LAYERS], forward.outputs["last_hidden_state"])
    assert not np.allclose(forward.hidden[0], forward.hidden[LAYERS])


def test_exposing_layers_leaves_the_models_own_outputs_unchanged(encoder):
    batch = encoder.encode(TEXTS, max_length=16)
    delta = encoder.verify_exposure(batch)
    assert 0.0 <= delta < 1e-5
    assert encoder.describe().exposure_max_abs_diff == delta


def test_without_attention_a_padlens_export_runs_as_the_file_is_with_the_same_states(encoder, export, monkeypatch):
    """attention=False exposes nothing on a file that lists every hidden state: the session is
    the file's own graph, its weights read in place (no delta, no copy) and gives the same states."""
    from padlens.inspector.runtime import session as session_mod

    added, handed = [], []
    real_create, real_new = session_mod.create_session, session_mod._new_session
    monkeypatch.setattr(encoder_mod, "create_session", lambda model, options, extra=None: added.append(extra)
                        or real_create(model, options, extra))
    monkeypatch.setattr(session_mod, "_new_session", lambda model, *a: handed.append(model) or real_new(model, *a))
    (ref,) = resolve_models([export])
    plain = Encoder.open(ref, SessionOptions(threads=1), attention=False)
    assert added == [None] and len(handed) == 1 and plain.attention_outputs == []
    graph = onnx.load_model_from_string(handed[0])
    assert [o.name for o in graph.graph.output] == [o.name for o in onnx.load(ref.path).graph.output]
    assert len(handed[0]) < ref.path.stat().st_size
    batch = encoder.encode(TEXTS, max_length=16)
    forward, full = plain.run(batch), encoder.run(batch)
    assert forward.attention == [] and len(full.attention) == LAYERS
    for a, b in zip(forward.hidden, full.hidden):
        np.testing.assert_array_equal(a, b)


def test_describe_names_the_run(encoder, export):
    info = encoder.describe()
    assert info.label == f"{export.name}/fp32" and info.precision == "fp32"
    assert info.provider == "CPUExecutionProvider" and info.num_layers == LAYERS
    assert len(info.tensors) == LAYERS + 1 and info.warnings == []


def test_real_tokens_do_not_move_when_padding_grows(encoder):
    short = encoder.run(encoder.encode(["the cat sat"], max_length=8))
    long = encoder.run(encoder.encode(["the cat sat"], max_length=40))
    np.testing.assert_allclose(short.hidden[LAYERS][0, :5], long.hidden[LAYERS][0, :5], atol=1e-5)


def test_max_length_beyond_the_position_embeddings_is_bad_input(encoder):
    encoder.check_max_length(MAX_POS)
    with pytest.raises(BadInput, match=f"^max_length {MAX_POS + 1} is beyond .*{MAX_POS} position"):
        encoder.check_max_length(MAX_POS + 1)
    with pytest.raises(BadInput):
        encoder.encode(TEXTS, max_length=128)


def test_a_tokenizer_larger_than_the_embedding_table_is_bad_input(export, tmp_path):
    tok = Tokenizer.from_file(str(export / "tokenizer.json"))
    tok.add_tokens([f"extra{i}" for i in range(50)])
    tok.save(str(tmp_path / "tokenizer.json"))
    ref = ModelRef(export / "model.onnx", "big-vocab", "fp32", tmp_path)
    with pytest.raises(BadInput, match="embedding table has .* rows"):
        Encoder.open(ref, check_exposure=True)


def test_the_tokenizer_loads_while_the_graph_is_read(export, monkeypatch):
    """Opening a model reads its graph and loads its tokenizer at the same time: the tokenizer here
    waits until the graph has started reading, which it could not if the two ran one after the other."""
    (ref,) = resolve_models([export])
    reading = threading.Event()
    real_graph, real_tokenizer = encoder_mod.graph_mod.load_encoder, encoder_mod.load_tokenizer

    def graph(*args, **kwargs):
        reading.set()
        return real_graph(*args, **kwargs)

    def tokenizer(path):
        assert reading.wait(timeout=30), "the tokenizer loaded before the graph was read, not beside it"
        return real_tokenizer(path)

    monkeypatch.setattr(encoder_mod.graph_mod, "load_encoder", graph)
    monkeypatch.setattr(encoder_mod, "load_tokenizer", tokenizer)
    enc = Encoder.open(ref, SessionOptions(threads=1))
    assert enc.tokenizer.pad_id == load_tokenizer(export).pad_id and enc.graph.layers.hidden


def test_a_broken_tokenizer_is_reported_before_a_broken_model(tmp_path):
    """Both loads fail: the error names the tokenizer, as when the tokenizer loaded first."""
    (tmp_path / "model.onnx").write_bytes(b"not a model")
    (tmp_path / "tokenizer.json").write_text("{ not json", encoding="utf-8")
    ref = ModelRef(tmp_path / "model.onnx", "broken", "fp32", tmp_path)
    with pytest.raises(BadInput, match="tokenizer .* cannot be read"):
        Encoder.open(ref)


def int32_copy(export, dest):
    """The export's model with int32 graph inputs (cast to int64 inside), and its tokenizer."""
    model = onnx.load(str(export / "model.onnx"))
    names = {inp.name: inp.name + "_i64" for inp in model.graph.input}
    for node in model.graph.node:
        node.input[:] = [names.get(n, n) for n in node.input]
    for inp in model.graph.input:
        inp.type.tensor_type.elem_type = TensorProto.INT32
    for name, wide in names.items():
        model.graph.node.insert(0, helper.make_node("Cast", [name], [wide], to=TensorProto.INT64))
    dest.mkdir()
    onnx.save(model, str(dest / "model.onnx"))
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(export / name, dest / name)
    return dest


def _spy_sessions(monkeypatch) -> list:
    """(delta added, weak reference to the session) for every session the encoder makes, in order."""
    made = []
    real = encoder_mod.create_session

    def spy(model, options, added=None):
        info = real(model, options, added)
        made.append((added, weakref.ref(info.session)))
        return info

    monkeypatch.setattr(encoder_mod, "create_session", spy)
    return made


def test_the_exposure_check_releases_the_unmodified_session_before_the_instrumented_one_is_made(export, monkeypatch):
    """The weights are never held twice: the file's own outputs on the check's batch are taken from
    a session that is gone when the instrumented session is created, with or without statistics."""
    (ref,) = resolve_models([export])
    for stats in (False, True):
        made = _spy_sessions(monkeypatch)
        enc = Encoder.open(ref, SessionOptions(threads=1), keep_model=False, stats=stats, check_exposure=True)
        (plain_added, plain), (added, _) = made
        assert plain_added is None and added is not None
        assert plain() is None  # released
        assert enc.exposure_delta == 0.0 and enc.verify_exposure() == 0.0 and enc.uses_stats == stats
        assert len(made) == 2  # verify_exposure made no other session


def test_the_exposure_check_catches_an_instrumented_graph_whose_outputs_differ_from_the_files(export, tmp_path,
                                                                                              monkeypatch):
    """The check keeps its power: when the instrumented session computes something else than the
    file (here its largest weight changed on disk between the two sessions), the delta says so."""
    from padlens.inspector.model import inplace

    folder = tmp_path / "changed"
    shutil.copytree(export, folder)
    path = folder / "model.onnx"
    light = inplace.weightless(path.read_bytes(), path.name)
    offset, length = max(((int(e["offset"]), int(e["length"])) for e in (
        {x.key: x.value for x in t.external_data} for t in light.graph.initializer if t.external_data)),
        key=lambda item: item[1])
    real = encoder_mod.create_session

    def change_then_create(model, options, added=None):
        if added is not None:  # the instrumented session: its weights are read from the changed file
            with open(path, "r+b") as fh:
                fh.seek(offset)
                values = np.frombuffer(fh.read(length), np.float32)
                values = values + (np.arange(values.size) % 7).astype(np.float32) * np.float32(0.1)
                fh.seek(offset)
                fh.write(values.tobytes())
        return real(model, options, added)

    monkeypatch.setattr(encoder_mod, "create_session", change_then_create)
    (ref,) = resolve_models([folder])
    for keep_model in (True, False):
        shutil.copy(export / "model.onnx", path)
        enc = Encoder.open(ref, SessionOptions(threads=1), keep_model=keep_model, stats=True, check_exposure=True)
        assert enc.exposure_delta > 0.01
        assert enc.describe().exposure_max_abs_diff == enc.exposure_delta


def test_nothing_added_to_the_graph_needs_no_second_session_and_moves_nothing(export, monkeypatch):
    made = _spy_sessions(monkeypatch)
    (ref,) = resolve_models([export])
    enc = Encoder.open(ref, attention=False, check_exposure=True)
    assert [added for added, _ in made] == [None] and enc.exposure_delta == 0.0


def test_int32_inputs_are_fed_as_int32_and_give_the_same_states(export, encoder, tmp_path):
    (ref,) = resolve_models([int32_copy(export, tmp_path / "int32")])
    narrow = Encoder.open(ref, SessionOptions(threads=1))
    batch = narrow.encode(TEXTS, max_length=12)
    feeds = narrow.feeds(batch)
    assert {a.dtype for a in feeds.values()} == {np.dtype(np.int32)}
    assert set(feeds) == {"input_ids", "attention_mask", "token_type_ids"}
    forward = narrow.run(batch)
    np.testing.assert_allclose(forward.hidden[LAYERS], encoder.run(batch).hidden[LAYERS], atol=1e-6)
    assert narrow.ref.precision == "fp32"  # guessed from the graph: the file name says nothing


def spec(name, role, dtype="int64"):
    return SimpleNamespace(name=name, role=role, dtype=dtype)


def test_feeds_fill_each_input_by_role_and_dtype(tmp_path):
    write_tokenizer(tmp_path, {"pad_token": "[PAD]", "pad_token_type_id": 1})
    batch = load_tokenizer(tmp_path).encode(["cat", "the cat sat"], max_length=6, side="left")
    inputs = [spec("ids", "input_ids", "int32"), spec("mask", "attention_mask"),
              spec("types", "token_type_ids"), spec("pos", "position_ids", "int32")]
    feeds = make_feeds(inputs, batch)
    assert feeds["ids"].dtype == np.int32 and feeds["mask"].dtype == np.int64
    np.testing.assert_array_equal(feeds["ids"], batch.input_ids)
    assert feeds["types"][0].tolist() == [1, 1, 1, 0, 0, 0]
    # position ids follow the mask (left padding: real tokens still hold 0..n-1), never arange
    assert feeds["pos"].tolist() == [[0, 0, 0, 0, 1, 2], [0, 0, 1, 2, 3, 4]]


def test_a_float_or_bool_attention_mask_is_fed_in_its_own_dtype(tmp_path):
    write_tokenizer(tmp_path, {"pad_token": "[PAD]"})
    batch = load_tokenizer(tmp_path).encode(["cat"], max_length=4)
    feeds = make_feeds([spec("m", "attention_mask", "float32"), spec("b", "attention_mask", "bool")], batch)
    assert feeds["m"].dtype == np.float32 and feeds["m"][0].tolist() == [1.0, 1.0, 1.0, 0.0]
    assert feeds["b"].dtype == np.bool_ and feeds["b"][0].tolist() == [True, True, True, False]


def test_feeds_skip_inputs_the_graph_does_not_have(tmp_path):
    write_tokenizer(tmp_path, {"pad_token": "[PAD]"})
    batch = load_tokenizer(tmp_path).encode(["cat"], max_length=4)
    feeds = make_feeds([spec("input_ids", "input_ids"), spec("attention_mask", "attention_mask")], batch)
    assert set(feeds) == {"input_ids", "attention_mask"}


@pytest.mark.parametrize("a, b, expected", [
    ([1.0, 2.0], [1.0, 2.5], 0.5),
    ([1.0, np.nan], [1.0, np.nan], 0.0),
    ([1.0, np.nan], [1.0, 2.0], float("inf")),
    ([np.inf, 1.0], [np.inf, 1.0], 0.0),
    ([1.0], [1.0, 1.0], float("inf")),
    ([], [], 0.0),
])
def test_max_abs_diff_table(a, b, expected):
    assert max_abs_diff(np.array(a), np.array(b)) == expected


def test_a_third_party_file_with_only_last_hidden_state_is_located_and_exposed(zoo):
    (ref,) = resolve_models([zoo("torchscript") / "model.onnx"])
    bare = Encoder.open(ref, SessionOptions(threads=1))
    batch = bare.encode(TEXTS, max_length=16, side="left")
    forward = bare.run(batch)
    assert len(forward.hidden) == LAYERS + 1 and list(forward.outputs) == ["last_hidden_state"]
    np.testing.assert_array_equal(forward.hidden[LAYERS], forward.outputs["last_hidden_state"])
    assert len(forward.attention) == LAYERS
    assert forward.attention[0].shape == (3, 2, 16, 16)
    np.testing.assert_allclose(forward.attention[0].sum(axis=-1), 1.0, atol=1e-5)
    assert bare.verify_exposure(batch, forward) < 1e-5


def test_a_model_that_fails_on_the_check_batch_is_left_unchecked_and_fails_on_the_users_own(zoo, tmp_path):
    """The exposure check never words a failure: the user's first batch does, with its own shape."""
    from padlens.errors import ModelLoadError
    from tests.inspector.audit import causal_toys

    model = causal_toys.make("bad-gather", tmp_path / "bad-gather", zoo("padlens"))
    enc = Encoder.open(resolve_models([str(model / "model.onnx")], str(model))[0], check_exposure=True)
    assert enc.exposure_delta is None and "failed on the exposure check's batch" in enc.exposure_note
    assert enc.verify_exposure() is None  # no second try, no session made for it
    with pytest.raises(ModelLoadError, match=r"bad-gather/model on a batch of 1 text x 8 tokens"):
        enc.run(enc.encode(["a cat"], max_length=8))


def test_the_statistics_nodes_run_beside_the_layers_they_read(export, monkeypatch):
    """The statistics session (ready-first order) is handed a graph whose statistics nodes follow the
    states they read, not one with every statistic after the model's last node."""
    from padlens.inspector.runtime import session as session_mod

    handed = []
    real = session_mod._new_session
    monkeypatch.setattr(session_mod, "_new_session", lambda model, *a: handed.append(model) or real(model, *a))
    (ref,) = resolve_models([export])
    enc = Encoder.open(ref, SessionOptions(threads=1), keep_model=False, stats=True)
    assert enc.uses_stats
    graph = onnx.ModelProto.FromString(handed[-1]).graph
    names = [n.name for n in graph.node]
    stats = [i for i, n in enumerate(names) if n.startswith("padlens.stats")]
    model = [i for i, n in enumerate(names) if not n.startswith("padlens.stats")]
    assert stats[0] < model[-1] and sum(i < model[-1] for i in stats) > len(stats) // 2  # appended: none
