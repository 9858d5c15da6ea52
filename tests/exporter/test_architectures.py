"""Every supported architecture exports, in every precision, with every layer exposed.

The pre-norm and decoder families (ModernBERT, Qwen2, Qwen3) are built and exported by a
fixture of their own, beside the conftest's ``tiny`` exports of the post-norm encoders.
"""
from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from padlens.inspector.model.graph import expose_outputs
from padlens.inspector.model.locate import locate_layers

from .conftest import ARCHITECTURES as POST_NORM
from .conftest import FILES, LAYERS, PRECISIONS, TinyExports, run_builder

pytestmark = pytest.mark.slow  # every architecture exported in every precision (one session fixture, ~45 s)

MODERN = ("modernbert", "qwen2", "qwen3")
DECODERS = ("qwen2", "qwen3")
ARCHITECTURES = (*POST_NORM, *MODERN)
EXPECTED_OUTPUTS = ["last_hidden_state"] + [f"hidden_states.{i}" for i in range(LAYERS + 1)]
CASES = [(a, p) for a in ARCHITECTURES for p in PRECISIONS]
MODERN_CASES = [(a, p) for a in MODERN for p in PRECISIONS]
NORM_EPS = 1e-5  # the tiny ModernBERT's final LayerNorm (weight 1, no bias)


class ModernExports(TinyExports):
    """The tiny ModernBERT, Qwen2 (right padding) and Qwen3 (left padding) exports."""

    def __init__(self, base):
        self.sources = base / "sources"
        self.exports = base / "exports"
        run_builder(str(self.sources), *MODERN, "--export", str(self.exports))


class Exports:
    """One view over both fixtures, by architecture."""

    def __init__(self, tiny: TinyExports, modern: ModernExports):
        self.tiny, self.modern = tiny, modern

    def _of(self, arch: str) -> TinyExports:
        return self.modern if arch in MODERN else self.tiny

    def export_dir(self, arch: str):
        return self._of(arch).export_dir(arch)

    def model(self, arch: str, precision: str):
        return self._of(arch).model(arch, precision)


@pytest.fixture(scope="session")
def modern(tmp_path_factory) -> ModernExports:
    return ModernExports(tmp_path_factory.mktemp("modern"))


@pytest.fixture()
def exports(tiny, modern) -> Exports:
    return Exports(tiny, modern)


def manifest(exports, arch):
    return json.loads((exports.export_dir(arch) / "padlens.json").read_text())


def make_feed(batch=3, length=11, pad_from=6, side="right"):
    """Random ids, rows 1.. padded; position_ids from the mask as padlens feeds them."""
    ids = np.random.default_rng(0).integers(5, 60, size=(batch, length)).astype(np.int64)
    mask = np.ones_like(ids)
    if side == "right":
        mask[1:, pad_from:] = 0
    else:
        mask[1:, :length - pad_from] = 0
    positions = np.maximum(np.cumsum(mask, axis=1) - 1, 0)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids),
            "position_ids": positions}


def run_model(model, feed):
    """Every output of ``model`` (a path or a ModelProto) on ``feed``, by name."""
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, {i.name: feed[i.name] for i in sess.get_inputs()})))


def run(path, batch=3, length=11, pad_from=6):
    return run_model(path, make_feed(batch, length, pad_from))


def layer_norm(x):
    x = x.astype(np.float64)
    centred = x - x.mean(-1, keepdims=True)
    return centred / np.sqrt((centred ** 2).mean(-1, keepdims=True) + NORM_EPS)


@pytest.mark.parametrize("arch,precision", CASES)
def test_every_variant_outputs_last_hidden_state_and_every_layer(exports, arch, precision):
    graph = onnx.load(str(exports.model(arch, precision)), load_external_data=False).graph
    assert [o.name for o in graph.output] == EXPECTED_OUTPUTS


@pytest.mark.parametrize("arch,precision", CASES)
def test_every_output_has_dynamic_batch_and_sequence_axes(exports, arch, precision):
    graph = onnx.load(str(exports.model(arch, precision)), load_external_data=False).graph
    for out in graph.output:
        dims = out.type.tensor_type.shape.dim
        assert not dims[0].HasField("dim_value") and not dims[1].HasField("dim_value"), out.name
        assert out.type.tensor_type.elem_type == onnx.TensorProto.FLOAT, out.name


@pytest.mark.parametrize("arch,precision", CASES)
def test_variants_run_on_shapes_unlike_the_export_dummy_and_last_layer_equals_last_hidden_state(exports, arch, precision):
    outputs = run(exports.model(arch, precision), batch=3, length=11)
    for name in EXPECTED_OUTPUTS:
        assert outputs[name].shape == (3, 11, 32), name
        assert np.all(np.isfinite(outputs[name])), name
    if arch == "modernbert":  # as in Hugging Face: hidden_states.L is before the final norm
        np.testing.assert_allclose(layer_norm(outputs[f"hidden_states.{LAYERS}"]),
                                   outputs["last_hidden_state"], atol=5e-3 if precision == "fp16" else 1e-4)
    else:
        np.testing.assert_array_equal(outputs[f"hidden_states.{LAYERS}"], outputs["last_hidden_state"])


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_fp32_matches_pytorch_on_every_layer_within_1e_4_on_real_tokens(exports, arch):
    fp32 = manifest(exports, arch)["validation"]["fp32"]
    assert [layer["index"] for layer in fp32["layers"]] == list(range(LAYERS + 1))
    assert all(layer["max_abs_real"] <= 1e-4 for layer in fp32["layers"])
    assert all(layer["max_abs_pad"] <= 1e-4 for layer in fp32["layers"])
    assert fp32["last_hidden_state_max_abs_real"] <= 1e-4
    assert fp32["passed"] and fp32["last_equals_final_layer"] == (arch != "modernbert")


@pytest.mark.parametrize("arch,precision", CASES)
def test_each_precision_records_real_and_pad_deltas_per_layer(exports, arch, precision):
    check = manifest(exports, arch)["validation"][precision]
    assert len(check["layers"]) == LAYERS + 1
    for layer in check["layers"]:
        assert layer["tensor"] == f"hidden_states.{layer['index']}"
        assert np.isfinite(layer["max_abs_real"]) and np.isfinite(layer["max_abs_pad"])
    assert check["finite"] and 0.9 <= check["pooled_cosine"] <= 1.0 + 1e-9


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_validation_batch_is_padded_so_pad_deltas_are_measured(exports, arch):
    validation = manifest(exports, arch)["validation"]
    assert len(validation["texts"]) >= 4 and validation["sequence_length"] > 8
    if arch == "qwen3":  # zero pad embedding, no bias anywhere: its pads stay exactly 0 in fp16 too
        assert all(layer["max_abs_pad"] == 0 for layer in validation["fp16"]["layers"])
    else:
        assert any(layer["max_abs_pad"] > 0 for layer in validation["fp16"]["layers"])


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_int8_static_records_pooled_cosine_on_held_out_texts(exports, arch):
    doc = manifest(exports, arch)
    static = doc["validation"]["int8-static"]
    assert static["heldout_texts"] > 0
    assert 0.9 <= static["pooled_cosine_heldout"] <= 1.0 + 1e-9
    assert doc["calibration"]["texts"] > 0 and doc["calibration"]["source"] == "sample corpus"


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_graph_inputs_are_what_the_architecture_takes(exports, arch):
    doc = manifest(exports, arch)
    expected = ["input_ids", "attention_mask"]
    if arch in ("bert", "electra"):
        expected.append("token_type_ids")
    if arch in DECODERS:
        expected.append("position_ids")
    assert doc["input_names"] == expected
    for precision in PRECISIONS:
        sess = ort.InferenceSession(str(exports.model(arch, precision)), providers=["CPUExecutionProvider"])
        assert [i.name for i in sess.get_inputs()] == expected


def test_distinct_architectures_keep_their_pad_token_id(exports):
    pads = {arch: manifest(exports, arch)["pad_token_id"] for arch in ARCHITECTURES}
    assert pads == {"bert": 0, "distilbert": 0, "electra": 0, "mpnet": 1, "roberta": 1, "xlm-roberta": 1,
                    "modernbert": 1, "qwen2": 1, "qwen3": 1}


def test_export_leaves_no_temporary_folder_beside_the_output(tiny, modern):
    assert sorted(p.name for p in tiny.exports.iterdir()) == sorted(POST_NORM)
    assert sorted(p.name for p in modern.exports.iterdir()) == sorted(MODERN)
    assert sorted(FILES.values()) == sorted(p.name for p in tiny.export_dir("bert").glob("*.onnx"))


# ---------------------------------------------------------------- pre-norm and decoder families


def test_decoders_default_to_last_token_pooling_and_keep_the_tokenizers_padding_side(exports):
    assert {a: manifest(exports, a)["pooling"] for a in MODERN} == {
        "modernbert": "cls", "qwen2": "lasttoken", "qwen3": "lasttoken"}
    assert manifest(exports, "qwen3")["padding_side"] == "left"
    assert manifest(exports, "qwen2")["padding_side"] == "right"


@pytest.mark.parametrize("arch", DECODERS)
def test_decoder_validation_fed_position_ids_from_the_mask(exports, arch):
    # with arange positions a left-padded row would move: fp32 could not match PyTorch
    fp32 = manifest(exports, arch)["validation"]["fp32"]
    assert fp32["passed"] and max(layer["max_abs_real"] for layer in fp32["layers"]) <= 1e-4


@pytest.mark.parametrize("arch", DECODERS)
def test_left_padded_rows_equal_the_same_text_alone_when_positions_follow_the_mask(exports, arch):
    feed = make_feed(batch=2, length=9, pad_from=6, side="left")
    feed["input_ids"][1] = feed["input_ids"][0]
    alone = {k: v[:1, 3:] for k, v in feed.items()}
    alone["position_ids"] = np.arange(6)[None]
    padded = run_model(exports.model(arch, "fp32"), feed)["last_hidden_state"]
    single = run_model(exports.model(arch, "fp32"), alone)["last_hidden_state"]
    np.testing.assert_allclose(padded[1, 3:], single[0], atol=1e-5)


def last_state_only(path) -> onnx.ModelProto:
    """The export with its hidden_states outputs removed, as a third party might ship it."""
    model = onnx.load(str(path))
    keep = [o for o in model.graph.output if o.name == "last_hidden_state"]
    del model.graph.output[:]
    model.graph.output.extend(keep)
    return model


@pytest.mark.parametrize("arch,precision", MODERN_CASES)
def test_the_inspector_locates_every_exported_layer_without_the_named_outputs(exports, arch, precision):
    path = exports.model(arch, precision)
    stripped = last_state_only(path)
    layers = locate_layers(stripped)
    assert layers.style != "named" and layers.final_norm is not None
    assert len(layers.hidden) == LAYERS + 1
    exposed, fetch = expose_outputs(stripped, layers.hidden)
    side = "left" if arch == "qwen3" else "right"
    feed = make_feed(side=side)
    got, want = run_model(exposed, feed), run_model(path, feed)
    real = feed["attention_mask"].astype(bool)
    # fp16: ORT fuses the smaller graph otherwise. int8-static: where a layer also feeds a
    # MatMul (ModernBERT's embedding output), the export's named output is the quantizer's
    # DequantizeLinear copy; padlens locates the float tensor the residual sum adds.
    tolerance = 2e-2 if precision in ("fp16", "int8-static") else 1e-5
    for i, name in enumerate(layers.hidden):
        diff = np.abs(got[fetch[name]].astype(np.float32) - want[f"hidden_states.{i}"])[real].max()
        assert diff < tolerance, f"layer {i} ({name}): {diff}"


def test_an_export_with_external_data_is_moved_with_its_weights(tmp_path):
    from onnx import helper, numpy_helper

    from padlens.exporter.backends.optimum import move_export

    weight = numpy_helper.from_array(np.arange(4096, dtype=np.float32).reshape(64, 64), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 64])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 64])], [weight])
    (tmp_path / "scratch").mkdir()
    (tmp_path / "out").mkdir()
    produced = tmp_path / "scratch" / "model.onnx"
    onnx.save(helper.make_model(graph), str(produced), save_as_external_data=True,
              location="model.onnx_data", size_threshold=0)
    move_export(produced, tmp_path / "out" / "model.onnx")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["model.onnx", "model.onnx_data"]
    x = np.ones((1, 64), np.float32)
    y = run_model(tmp_path / "out" / "model.onnx", {"x": x})["y"]
    np.testing.assert_array_equal(y, x @ numpy_helper.to_array(weight))
