"""The Encoder: every layer exposed and run on padded batches, inputs filled by role and dtype."""
from __future__ import annotations

import shutil
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from tokenizers import Tokenizer

from padlens.errors import BadInput
from padlens.inspector.inputs.resolve import ModelRef, resolve_models
from padlens.inspector.inputs.tokenize import load_tokenizer
from padlens.inspector.runtime.encoder import Encoder, max_abs_diff
from padlens.inspector.runtime.feeds import make_feeds
from tests.inspector.test_tokenize import write_tokenizer

LAYERS, HIDDEN, MAX_POS = 2, 32, 64  # tests/fixtures/build.py
TEXTS = ["this is a sample sentence", "the cat sat on the mat", "dog"]


@pytest.fixture(scope="module")
def export(zoo):
    return zoo("padlens")


@pytest.fixture(scope="module")
def encoder(export):
    (ref,) = resolve_models([export])
    return Encoder.open(ref, threads=1)


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
    from padlens.inspector.runtime import encoder as encoder_mod

    made = []
    real = encoder_mod.create_session
    monkeypatch.setattr(encoder_mod, "create_session", lambda model, *a, **k: made.append(model) or real(model, *a, **k))
    (ref,) = resolve_models([export])
    plain = Encoder.open(ref, threads=1, attention=False)
    assert len(made) == 1 and plain.attention_outputs == []
    graph = onnx.load_model_from_string(made[0])
    assert [o.name for o in graph.graph.output] == [o.name for o in onnx.load(ref.path).graph.output]
    assert len(made[0]) < ref.path.stat().st_size
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


@pytest.mark.parametrize("plain_ahead", [False, True])
def test_a_tokenizer_larger_than_the_embedding_table_is_bad_input(export, tmp_path, plain_ahead):
    """Also with a session made ahead: the failed open waits for it (no thread left behind)."""
    import threading

    tok = Tokenizer.from_file(str(export / "tokenizer.json"))
    tok.add_tokens([f"extra{i}" for i in range(50)])
    tok.save(str(tmp_path / "tokenizer.json"))
    ref = ModelRef(export / "model.onnx", "big-vocab", "fp32", tmp_path)
    with pytest.raises(BadInput, match="embedding table has .* rows"):
        Encoder.open(ref, plain_ahead=plain_ahead)
    assert not [t for t in threading.enumerate() if t.name == "padlens-plain-session"]


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


def test_the_unmodified_session_made_ahead_serves_the_exposure_check(encoder, export, monkeypatch):
    from padlens.inspector.runtime import encoder as encoder_mod

    (ref,) = resolve_models([export])
    ahead = Encoder.open(ref, threads=1, plain_ahead=True)
    made = []
    real = encoder_mod.create_session
    monkeypatch.setattr(encoder_mod, "create_session", lambda model, *a, **k: made.append(model) or real(model, *a, **k))
    batch = encoder.encode(TEXTS, max_length=16)
    assert ahead.verify_exposure(batch) == encoder.verify_exposure(batch)
    assert len(made) == 1  # the encoder without a session ahead made its own; the other none
    assert ahead._plain is None  # used once, then released


def test_int32_inputs_are_fed_as_int32_and_give_the_same_states(export, encoder, tmp_path):
    (ref,) = resolve_models([int32_copy(export, tmp_path / "int32")])
    narrow = Encoder.open(ref, threads=1)
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
    bare = Encoder.open(ref, threads=1)
    batch = bare.encode(TEXTS, max_length=16, side="left")
    forward = bare.run(batch)
    assert len(forward.hidden) == LAYERS + 1 and list(forward.outputs) == ["last_hidden_state"]
    np.testing.assert_array_equal(forward.hidden[LAYERS], forward.outputs["last_hidden_state"])
    assert len(forward.attention) == LAYERS
    assert forward.attention[0].shape == (3, 2, 16, 16)
    np.testing.assert_allclose(forward.attention[0].sum(axis=-1), 1.0, atol=1e-5)
    assert bare.verify_exposure(batch, forward) < 1e-5


def test_a_process_that_exits_right_after_open_waits_for_the_session_made_ahead(export):
    """An error just after open (inspect's length check) ends the process while the unmodified
    session is still being made: it must exit with its own code, not abort inside ONNX Runtime."""
    import subprocess
    import sys

    code = ("import sys; from padlens.inspector.runtime.encoder import Encoder; "
            "from padlens.inspector.inputs.resolve import resolve_models; "
            f"Encoder.open(resolve_models([{str(export)!r}])[0], plain_ahead=True); sys.exit(2)")
    for _ in range(3):
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr[-500:]
