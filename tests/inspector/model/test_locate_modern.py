"""Pre-norm encoders and RMSNorm decoders: layers located structurally match PyTorch's hidden states.

Each style is a tiny random model (tests/fixtures/modern.py) exported as today's tools write
it, with ``last_hidden_state`` as its only output; reference.npz beside it holds the batch and
PyTorch's ``output_hidden_states`` on it.
"""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from padlens.errors import LayersNotFound
from padlens.inspector.model.graph import expose_outputs, load_encoder, locate_layers

LAYERS = 2
TOLERANCE = 1e-4
# style -> (LayerMap.style, attention tensors located)
STYLES = {
    "modernbert-optimum": ("pre-layernorm", 2),
    "modernbert-dynamo": ("pre-layernorm", 2),
    "modernbert-ort-fused": ("ort-fused", 2),
    "qwen3-optimum": ("decomposed-rmsnorm", 2),
    "qwen2-optimum": ("decomposed-rmsnorm", 2),
    "llama-optimum": ("decomposed-rmsnorm", 2),
    "qwen3-dynamo": ("decomposed-rmsnorm", 2),
    "qwen3-rmsnorm-op": ("rmsnorm", 0),  # opset 23: the ONNX Attention op, no Softmax
    "qwen3-ort-fused": ("ort-fused", 2),
    "qwen3-mul-square": ("decomposed-rmsnorm", 2),
}
DECODERS = sorted(s for s in STYLES if not s.startswith("modernbert"))


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3  # the ORT-fused fixture leaves unused initialisers behind
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def located(zoo, style: str):
    """The encoder, PyTorch's reference and the located tensors' values on its batch."""
    encoder = load_encoder(zoo(style) / "model.onnx")
    ref = np.load(zoo(style) / "reference.npz")
    names = [*encoder.layers.hidden, *filter(None, [encoder.layers.final_norm,
                                                    encoder.layers.before_final_norm])]
    exposed, fetch = expose_outputs(encoder.model, names)
    sess = session(exposed)
    feed = {i.name: ref[i.name] for i in sess.get_inputs()}
    out = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feed)))
    values = {n: out[fetch[n]].astype(np.float32) for n in names}
    return encoder, ref, values


def max_real_diff(got: np.ndarray, want: np.ndarray, mask: np.ndarray) -> float:
    return float(np.abs(got - want)[mask.astype(bool)].max())


@pytest.mark.parametrize("style", sorted(STYLES))
def test_each_style_locates_the_embedding_output_and_every_block(zoo, style):
    layers = load_encoder(zoo(style) / "model.onnx").layers
    kind, n_attention = STYLES[style]
    assert layers.style == kind
    assert len(layers.hidden) == LAYERS + 1 and len(set(layers.hidden)) == LAYERS + 1
    assert len(layers.attention) == n_attention
    assert layers.hidden_size == 32


@pytest.mark.parametrize("style", sorted(STYLES))
def test_located_states_equal_pytorch_hidden_states_layer_by_layer(zoo, style):
    encoder, ref, values = located(zoo, style)
    mask = ref["attention_mask"]
    for i, name in enumerate(encoder.layers.hidden):
        want = ref[f"hidden_{i}"]
        if name == encoder.layers.final_norm and style == "modernbert-ort-fused":
            want = ref["last_hidden_state"]  # the raw stream is fused away: see the next tests
        assert values[name].shape == want.shape, f"layer {i}"
        assert max_real_diff(values[name], want, mask) < TOLERANCE, f"layer {i} ({name})"


@pytest.mark.parametrize("style", sorted(STYLES))
def test_final_norm_output_is_reported_and_is_the_models_token_output(zoo, style):
    encoder, ref, values = located(zoo, style)
    final = encoder.layers.final_norm
    assert final is not None
    assert max_real_diff(values[final], ref["last_hidden_state"], ref["attention_mask"]) < TOLERANCE


@pytest.mark.parametrize("style", ["modernbert-optimum", "modernbert-dynamo"])
def test_modernbert_last_layer_is_before_the_final_norm_as_in_hugging_face(zoo, style):
    encoder, ref, values = located(zoo, style)
    layers = encoder.layers
    assert layers.hidden[-1] == layers.before_final_norm != layers.final_norm
    mask = ref["attention_mask"]
    assert max_real_diff(values[layers.hidden[-1]], ref[f"hidden_{LAYERS}"], mask) < TOLERANCE
    assert max_real_diff(values[layers.hidden[-1]], ref["last_hidden_state"], mask) > 1e-2


@pytest.mark.parametrize("style", DECODERS)
def test_decoder_last_layer_is_the_final_norm_output_as_in_hugging_face(zoo, style):
    layers = load_encoder(zoo(style) / "model.onnx").layers
    assert layers.hidden[-1] == layers.final_norm


@pytest.mark.parametrize("style", ["qwen3-optimum", "qwen3-dynamo", "qwen3-rmsnorm-op"])
def test_the_stream_entering_the_final_norm_is_the_last_blocks_raw_output(zoo, style):
    encoder, ref, values = located(zoo, style)
    before = values[encoder.layers.before_final_norm]
    rms = before / np.sqrt((before.astype(np.float64) ** 2).mean(-1, keepdims=True) + 1e-6)
    # the tiny model's RMSNorm weight is all ones: the final norm is a plain RMS division
    assert max_real_diff(rms.astype(np.float32), ref["last_hidden_state"], ref["attention_mask"]) < 1e-4


@pytest.mark.parametrize("style", ["qwen3-ort-fused", "modernbert-ort-fused"])
def test_the_fused_final_norm_holds_no_separate_raw_output(zoo, style):
    layers = load_encoder(zoo(style) / "model.onnx").layers
    assert layers.before_final_norm is None and layers.final_norm == layers.hidden[-1]


def test_a_fused_modernbert_says_its_last_layer_is_after_the_final_norm(zoo, caplog):
    with caplog.at_level("WARNING", logger="padlens.inspector.model.locate"):
        load_encoder(zoo("modernbert-ort-fused") / "model.onnx")
    assert "fused into the final norm" in caplog.text


@pytest.mark.parametrize("style", ["modernbert-optimum", "qwen3-optimum", "qwen3-dynamo"])
def test_attention_probabilities_of_real_queries_sum_to_one(zoo, style):
    encoder = load_encoder(zoo(style) / "model.onnx")
    ref = np.load(zoo(style) / "reference.npz")
    exposed, fetch = expose_outputs(encoder.model, encoder.layers.attention)
    sess = session(exposed)
    out = sess.run([fetch[a] for a in encoder.layers.attention],
                   {i.name: ref[i.name] for i in sess.get_inputs()})
    real = ref["attention_mask"].astype(bool)
    for probs in out:
        assert probs.shape[-2:] == real.shape[-1:] * 2
        np.testing.assert_allclose(probs.sum(-1)[0], 1, atol=1e-5)
        np.testing.assert_allclose(probs.sum(-1)[1][:, real[1]], 1, atol=1e-5)


@pytest.mark.parametrize("style", ["torchscript", "padlens", "ort-fused"])
def test_post_norm_encoders_report_no_final_norm(zoo, style):
    layers = load_encoder(zoo(style) / "model.onnx").layers
    assert layers.final_norm is None and layers.before_final_norm is None


def test_a_broken_residual_chain_names_both_readings_in_the_error(zoo):
    model = onnx.load(str(zoo("qwen3-optimum") / "model.onnx"))
    for node in model.graph.node:  # cut every residual sum: x + f(x) becomes f(x) + f(x)
        if node.op_type == "Add" and node.name.endswith(("/Add", "/Add_1")) and "/layers." in node.name \
                and "norm" not in node.name:
            node.input[0] = node.input[1]
    with pytest.raises(LayersNotFound, match="pre-norm"):
        locate_layers(model)


def test_a_runs_description_names_the_final_norm_and_the_stream_before_it(zoo):
    from padlens.inspector.inputs.resolve import resolve_models
    from padlens.inspector.runtime.encoder import Encoder
    from padlens.inspector.runtime.session import SessionOptions

    (ref,) = resolve_models([zoo("modernbert-optimum") / "model.onnx"])
    info = Encoder.open(ref, SessionOptions(threads=1)).describe()
    layers = load_encoder(zoo("modernbert-optimum") / "model.onnx").layers
    assert (info.final_norm, info.before_final_norm) == (layers.final_norm, layers.before_final_norm)
    assert info.tensors[-1] == info.before_final_norm and info.layer_style == "pre-layernorm"


def test_node_order_does_not_matter(zoo):
    model = onnx.load(str(zoo("qwen3-optimum") / "model.onnx"))
    want = locate_layers(model)
    nodes = list(model.graph.node)
    np.random.default_rng(0).shuffle(nodes)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    got = locate_layers(model)
    assert (got.hidden, got.attention, got.final_norm, got.before_final_norm) == (
        want.hidden, want.attention, want.final_norm, want.before_final_norm)
