"""Locating layers in every graph style, and exposing them without changing the model."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from padlens.errors import BadInput, LayersNotFound
from padlens.inspector.model.graph import expose_outputs, load_encoder, locate_layers

LAYERS = 2
EXACT = 1e-4
# style -> (LayerMap.style, attention tensors located, tolerance vs the named layers or None)
STYLES = {
    "torchscript": ("layernorm", 2, EXACT),
    "opset14": ("decomposed-layernorm", 2, EXACT),
    "dynamo": ("layernorm", 2, EXACT),
    "ort-fused": ("ort-fused", 0, EXACT),
    "ort-fused-fp16": ("ort-fused", 0, None),
    "int8-dynamic": ("layernorm", 2, None),
    "int8-qdq": ("layernorm", 2, None),
    "int8-weight-only": ("layernorm", 2, None),
    "st-pooled": ("layernorm", 2, EXACT),
    "int32-inputs": ("layernorm", 2, EXACT),
    "position-ids": ("layernorm", 2, EXACT),
}


def batch(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two sequences, the second right-padded."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, 60, (2, 9))
    mask = np.ones_like(ids)
    mask[1, 6:] = 0
    ids[1, 6:] = 0
    return ids, mask


def feeds(encoder, ids, mask) -> dict[str, np.ndarray]:
    values = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids),
              "position_ids": np.broadcast_to(np.arange(ids.shape[1]), ids.shape)}
    return {s.name: np.ascontiguousarray(values[s.role]).astype(s.dtype) for s in encoder.inputs}


def run(model: onnx.ModelProto, feed: dict) -> dict[str, np.ndarray]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feed)))


def run_layers(encoder, ids, mask) -> tuple[list[np.ndarray], list[np.ndarray], dict]:
    names = encoder.layers.hidden + encoder.layers.attention
    exposed, fetch = expose_outputs(encoder.model, names)
    out = run(exposed, feeds(encoder, ids, mask))
    hidden = [out[fetch[n]].astype(np.float32) for n in encoder.layers.hidden]
    return hidden, [out[fetch[n]] for n in encoder.layers.attention], out


@pytest.fixture(scope="module")
def reference(zoo):
    """The padlens export's named hidden_states.0..L on the test batch."""
    encoder = load_encoder(zoo("padlens") / "model.onnx")
    out = run(encoder.model, feeds(encoder, *batch()))
    return [out[f"hidden_states.{i}"] for i in range(LAYERS + 1)]


def test_padlens_exports_are_read_by_their_output_names(zoo):
    layers = load_encoder(zoo("padlens") / "model.onnx").layers
    assert layers.style == "named"
    assert layers.hidden == [f"hidden_states.{i}" for i in range(LAYERS + 1)]
    assert len(layers.attention) == LAYERS and layers.hidden_size == 32


@pytest.mark.parametrize("style", sorted(STYLES))
def test_each_style_locates_one_state_per_block_plus_embeddings(zoo, style):
    encoder = load_encoder(zoo(style) / "model.onnx")
    kind, n_attention, _ = STYLES[style]
    assert len(encoder.layers.hidden) == LAYERS + 1
    assert encoder.layers.style == kind
    assert len(encoder.layers.attention) == n_attention
    assert encoder.layers.hidden_size == 32
    assert (encoder.vocab_size, encoder.max_positions) == (158, 64)


@pytest.mark.parametrize("style", sorted(STYLES))
def test_located_states_are_the_named_hidden_states(zoo, reference, style):
    encoder = load_encoder(zoo(style) / "model.onnx")
    hidden, _, _ = run_layers(encoder, *batch())
    tolerance = STYLES[style][2]
    for i, (got, want) in enumerate(zip(hidden, reference)):
        assert got.shape == want.shape, f"layer {i}"
        if tolerance is not None:
            assert np.abs(got - want).max() < tolerance, f"layer {i}"
        else:  # fp16 / int8: close, not equal
            corr = np.corrcoef(got.ravel(), want.ravel())[0, 1]
            assert corr > 0.9, f"layer {i}: correlation {corr:.3f}"


@pytest.mark.parametrize("style", sorted(STYLES))
def test_last_located_state_is_the_models_token_output(zoo, style):
    encoder = load_encoder(zoo(style) / "model.onnx")
    hidden, _, out = run_layers(encoder, *batch())
    np.testing.assert_array_equal(hidden[-1], out[encoder.outputs[0]].astype(np.float32))


@pytest.mark.parametrize("style", ["torchscript", "dynamo", "opset14"])
def test_attention_probabilities_sum_to_one_and_ignore_pads(zoo, style):
    encoder = load_encoder(zoo(style) / "model.onnx")
    _, attention, _ = run_layers(encoder, *batch())
    for probs in attention:
        assert probs.shape == (2, 2, 9, 9)
        np.testing.assert_allclose(probs.sum(-1), 1, atol=1e-5)
        assert probs[1, :, :6, 6:].max() < 1e-6  # real queries of the padded row skip pads


@pytest.mark.parametrize("style", ["post-ln-distilbert", "roberta"])
def test_other_post_ln_encoders_are_located(zoo, style):
    encoder = load_encoder(zoo(style) / "model.onnx")
    assert len(encoder.layers.hidden) == LAYERS + 1
    hidden, _, out = run_layers(encoder, *batch())
    np.testing.assert_array_equal(hidden[-1], out[encoder.outputs[0]])


def test_position_table_rows_are_read_from_the_graph(zoo):
    encoder = load_encoder(zoo("roberta") / "model.onnx")
    # RoBERTa counts positions from padding_idx + 1 (here pad id 0): 66 rows hold 65 tokens
    assert encoder.position_rows == 66 and encoder.structure.padding_idx == 0
    assert encoder.max_positions == 65


@pytest.mark.parametrize("style, roles, dtype", [
    ("st-pooled", ["input_ids", "attention_mask"], "int64"),
    ("int32-inputs", ["input_ids", "attention_mask"], "int32"),
    ("position-ids", ["input_ids", "attention_mask", "token_type_ids", "position_ids"], "int64"),
])
def test_inputs_are_recognised_by_role_and_dtype(zoo, style, roles, dtype):
    encoder = load_encoder(zoo(style) / "model.onnx")
    assert [s.role for s in encoder.inputs] == roles
    assert {s.dtype for s in encoder.inputs} == {dtype}


def test_fp16_graphs_report_float16_states(zoo):
    encoder = load_encoder(zoo("ort-fused-fp16") / "model.onnx")
    assert encoder.float_dtype == "float16"


@pytest.mark.parametrize("style, dtype", [("ort-fused-fp16", np.float16), ("int8-dynamic", np.float32)])
def test_exposed_outputs_are_left_untyped_and_onnx_runtime_infers_them(zoo, style, dtype):
    encoder = load_encoder(zoo(style) / "model.onnx")
    exposed, fetch = expose_outputs(encoder.model, encoder.layers.hidden)
    added = [o for o in exposed.graph.output if o.name in set(fetch.values()) - set(encoder.outputs)]
    assert added and all(not o.type.HasField("tensor_type") for o in added)
    sess = ort.InferenceSession(exposed.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [fetch[h] for h in encoder.layers.hidden]
    types = {o.name: o.type for o in sess.get_outputs()}
    expected = "tensor(float16)" if dtype is np.float16 else "tensor(float)"
    assert {types[n] for n in names} == {expected}
    ids, mask = batch()
    states = sess.run(names, feeds(encoder, ids, mask))
    assert all(s.dtype == dtype and s.shape[:2] == ids.shape for s in states)


def test_the_exposed_bytes_are_the_file_with_the_addition_appended(zoo):
    from padlens.inspector.model.graph import exposed_model

    encoder = load_encoder(zoo("torchscript") / "model.onnx")
    assert encoder.raw == (zoo("torchscript") / "model.onnx").read_bytes()
    data, fetch = exposed_model(encoder, encoder.layers.hidden)
    proto, same = expose_outputs(encoder.model, encoder.layers.hidden)
    assert isinstance(data, bytes) and fetch == same
    assert onnx.load_model_from_string(data) == proto


@pytest.mark.parametrize("style", ["torchscript", "ort-fused", "int8-dynamic", "st-pooled"])
def test_exposing_layers_does_not_change_the_models_outputs(zoo, style):
    encoder = load_encoder(zoo(style) / "model.onnx")
    feed = feeds(encoder, *batch())
    before = run(encoder.model, feed)
    _, _, after = run_layers(encoder, *batch())
    for name in encoder.outputs:
        assert np.abs(after[name] - before[name]).max() == 0, name
    assert list(after)[:len(encoder.outputs)] == encoder.outputs


def test_expose_outputs_leaves_its_input_model_unchanged(zoo):
    encoder = load_encoder(zoo("torchscript") / "model.onnx")
    before = encoder.model.SerializeToString()
    expose_outputs(encoder.model, encoder.layers.hidden + ["input_ids", "last_hidden_state"])
    assert encoder.model.SerializeToString() == before


def test_inputs_and_existing_outputs_are_exposed_through_identity(zoo):
    encoder = load_encoder(zoo("torchscript") / "model.onnx")
    exposed, fetch = expose_outputs(encoder.model, ["input_ids", "last_hidden_state"])
    assert fetch["input_ids"] != "input_ids"
    assert fetch["last_hidden_state"] != "last_hidden_state"
    identities = {n.output[0]: n.input[0] for n in exposed.graph.node if n.op_type == "Identity"}
    assert identities[fetch["input_ids"]] == "input_ids"
    out = run(exposed, feeds(encoder, *batch()))
    np.testing.assert_array_equal(out[fetch["input_ids"]], batch()[0])
    np.testing.assert_array_equal(out[fetch["last_hidden_state"]], out["last_hidden_state"])


def test_duplicate_requests_become_one_output(zoo):
    encoder = load_encoder(zoo("torchscript") / "model.onnx")
    name = encoder.layers.hidden[1]
    exposed, fetch = expose_outputs(encoder.model, [name, name])
    assert [o.name for o in exposed.graph.output] == ["last_hidden_state", name]
    assert fetch == {name: name}


def test_constants_are_skipped(zoo):
    model = load_encoder(zoo("torchscript") / "model.onnx").model
    constant = next(n.output[0] for n in model.graph.node if n.op_type == "Constant")
    initializer = model.graph.initializer[0].name
    exposed, fetch = expose_outputs(model, [constant, initializer])
    assert fetch == {}
    assert len(exposed.graph.output) == len(model.graph.output)


def test_unknown_tensor_names_are_named_in_the_error(zoo):
    model = load_encoder(zoo("torchscript") / "model.onnx").model
    with pytest.raises(BadInput, match="no_such_tensor"):
        expose_outputs(model, ["no_such_tensor"])


def test_user_named_layers_are_used_as_given(zoo):
    path = zoo("torchscript") / "model.onnx"
    located = load_encoder(path).layers.hidden
    encoder = load_encoder(path, layers=located[::-1])
    assert encoder.layers.hidden == located[::-1] and encoder.layers.style == "user"
    with pytest.raises(LayersNotFound, match="nope"):
        load_encoder(path, layers=[located[0], "nope"])


def test_locate_layers_works_on_a_bare_proto(zoo):
    model = onnx.load(str(zoo("opset14") / "model.onnx"))
    assert len(locate_layers(model).hidden) == LAYERS + 1
