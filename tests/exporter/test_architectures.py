"""Every supported architecture exports, in every precision, with every layer exposed."""
from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from .conftest import ARCHITECTURES, FILES, LAYERS, PRECISIONS

EXPECTED_OUTPUTS = ["last_hidden_state"] + [f"hidden_states.{i}" for i in range(LAYERS + 1)]
CASES = [(a, p) for a in ARCHITECTURES for p in PRECISIONS]


def manifest(tiny, arch):
    return json.loads((tiny.export_dir(arch) / "padlens.json").read_text())


def run(path, batch=3, length=11, pad_from=6):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ids = np.random.default_rng(0).integers(5, 60, size=(batch, length)).astype(np.int64)
    mask = np.ones_like(ids)
    mask[1:, pad_from:] = 0
    feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, {i.name: feed[i.name] for i in sess.get_inputs()})))


@pytest.mark.parametrize("arch,precision", CASES)
def test_every_variant_outputs_last_hidden_state_and_every_layer(tiny, arch, precision):
    graph = onnx.load(str(tiny.model(arch, precision)), load_external_data=False).graph
    assert [o.name for o in graph.output] == EXPECTED_OUTPUTS


@pytest.mark.parametrize("arch,precision", CASES)
def test_every_output_has_dynamic_batch_and_sequence_axes(tiny, arch, precision):
    graph = onnx.load(str(tiny.model(arch, precision)), load_external_data=False).graph
    for out in graph.output:
        dims = out.type.tensor_type.shape.dim
        assert not dims[0].HasField("dim_value") and not dims[1].HasField("dim_value"), out.name
        assert out.type.tensor_type.elem_type == onnx.TensorProto.FLOAT, out.name


@pytest.mark.parametrize("arch,precision", CASES)
def test_variants_run_on_shapes_unlike_the_export_dummy_and_last_layer_equals_last_hidden_state(tiny, arch, precision):
    outputs = run(tiny.model(arch, precision), batch=3, length=11)
    for name in EXPECTED_OUTPUTS:
        assert outputs[name].shape == (3, 11, 32), name
        assert np.all(np.isfinite(outputs[name])), name
    np.testing.assert_array_equal(outputs[f"hidden_states.{LAYERS}"], outputs["last_hidden_state"])


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_fp32_matches_pytorch_on_every_layer_within_1e_4_on_real_tokens(tiny, arch):
    fp32 = manifest(tiny, arch)["validation"]["fp32"]
    assert [layer["index"] for layer in fp32["layers"]] == list(range(LAYERS + 1))
    assert all(layer["max_abs_real"] <= 1e-4 for layer in fp32["layers"])
    assert all(layer["max_abs_pad"] <= 1e-4 for layer in fp32["layers"])
    assert fp32["passed"] and fp32["last_equals_final_layer"]


@pytest.mark.parametrize("arch,precision", CASES)
def test_each_precision_records_real_and_pad_deltas_per_layer(tiny, arch, precision):
    check = manifest(tiny, arch)["validation"][precision]
    assert len(check["layers"]) == LAYERS + 1
    for layer in check["layers"]:
        assert layer["tensor"] == f"hidden_states.{layer['index']}"
        assert np.isfinite(layer["max_abs_real"]) and np.isfinite(layer["max_abs_pad"])
    assert check["finite"] and 0.9 <= check["pooled_cosine"] <= 1.0 + 1e-9


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_validation_batch_is_padded_so_pad_deltas_are_measured(tiny, arch):
    validation = manifest(tiny, arch)["validation"]
    assert len(validation["texts"]) >= 4 and validation["sequence_length"] > 8
    assert any(layer["max_abs_pad"] > 0 for layer in validation["fp16"]["layers"])


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_int8_static_records_pooled_cosine_on_held_out_texts(tiny, arch):
    doc = manifest(tiny, arch)
    static = doc["validation"]["int8-static"]
    assert static["heldout_texts"] > 0
    assert 0.9 <= static["pooled_cosine_heldout"] <= 1.0 + 1e-9
    assert doc["calibration"]["texts"] > 0 and doc["calibration"]["source"] == "sample corpus"


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_graph_inputs_are_what_the_architecture_takes(tiny, arch):
    doc = manifest(tiny, arch)
    expected = ["input_ids", "attention_mask"]
    if arch in ("bert", "electra"):
        expected.append("token_type_ids")
    assert doc["input_names"] == expected
    for precision in PRECISIONS:
        sess = ort.InferenceSession(str(tiny.model(arch, precision)), providers=["CPUExecutionProvider"])
        assert [i.name for i in sess.get_inputs()] == expected


def test_distinct_architectures_keep_their_pad_token_id(tiny):
    pads = {arch: manifest(tiny, arch)["pad_token_id"] for arch in ARCHITECTURES}
    assert pads == {"bert": 0, "distilbert": 0, "electra": 0, "mpnet": 1, "roberta": 1, "xlm-roberta": 1}


def test_export_leaves_no_temporary_folder_beside_the_output(tiny):
    assert sorted(p.name for p in tiny.exports.iterdir()) == sorted(ARCHITECTURES)
    assert sorted(FILES.values()) == sorted(p.name for p in tiny.export_dir("bert").glob("*.onnx"))
