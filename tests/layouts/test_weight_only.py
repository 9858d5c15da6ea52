"""Weight-only precisions read from the graph by their bits and scheme, on a transformers.js-style
folder made by the publishers' own tools (ORT's MatMulNBitsQuantizer, MatMulBnb4Quantizer,
quantize_dynamic, convert_float_to_float16(keep_io_types=True)) from a tiny BERT."""
from __future__ import annotations

import json

import pytest
from onnx import TensorProto, helper

from padlens.errors import BadInput
from padlens.inspector.audit import tolerances as tl
from padlens.inspector.inputs.resolve import guess_precision

from . import tjs

#: what each transformers.js file is, read from its graph
EXPECTED = {
    "model": "fp32", "model_fp16": "fp16", "model_quantized": "int8-dynamic", "model_q4": "int4-weight",
    "model_q4f16": "int4-weight+fp16", "model_bnb4": "nf4-weight", "model_q8nbits": "int8-weight",
}


@pytest.fixture(scope="module")
def tjs_folder(zoo, tmp_path_factory):
    return tjs.build(zoo("torchscript"), tmp_path_factory.mktemp("tjs") / "tiny-tjs")


def test_inspect_names_each_transformers_js_file_by_what_its_graph_holds(tjs_folder, cli_run, tmp_path):
    code, _, err = cli_run("inspect", tjs_folder, "--max-length", "24", "--json", tmp_path / "r.json")
    assert code == 0, err
    runs = json.loads((tmp_path / "r.json").read_text())["runs"]
    got = {r["model"].rsplit("/", 1)[-1][: -len(".onnx")]: r["precision"] for r in runs}
    assert got == EXPECTED
    assert all(r["layers"] and r["layers"][-1]["real_norm"] > 0 for r in runs)  # every file a run


def test_audit_holds_four_bit_weights_to_their_own_drift_floor_and_they_stay_padding_invariant(
        tjs_folder, cli_run, tmp_path):
    code, _, err = cli_run("audit", tjs_folder / "onnx" / "model.onnx", tjs_folder / "onnx" / "model_q4.onnx",
                           tjs_folder / "onnx" / "model_bnb4.onnx", tjs_folder / "onnx" / "model_q4f16.onnx",
                           "--max-length", "24", "--json", tmp_path / "a.json")
    assert code == 0, err
    checks = json.loads((tmp_path / "a.json").read_text())["checks"]
    drift = {c["model"]: c["threshold"] for c in checks if c["name"] == "reference_drift"}
    assert sorted(drift.values()) == [tl.DRIFT_COS["int4"]] * 3
    inv = [c for c in checks if c["name"] == "padding_invariance" and "model_" in c["model"]]
    assert len(inv) == 3 and all(c["passed"] and c["threshold"] == tl.INVARIANCE_COS["int4"] for c in inv)


def _node(op: str, inputs=("x", "w"), **attrs):
    return helper.make_node(op, list(inputs), ["y"], domain="com.microsoft" if op != "DequantizeLinear" else "",
                            **attrs)


def _graph(nodes, *weights):
    inits = [helper.make_tensor(name, dtype, [2], [1, 1]) for name, dtype in weights]
    return helper.make_model(helper.make_graph(nodes, "g", [], [], inits))


@pytest.mark.parametrize("node, weights, precision", [
    (_node("MatMulNBits", bits=4), [("w", TensorProto.UINT8)], "int4-weight"),
    (_node("MatMulNBits", bits=8), [("w", TensorProto.UINT8)], "int8-weight"),
    (_node("MatMulNBits"), [("w", TensorProto.UINT8)], "int4-weight"),  # bits defaults to 4
    (_node("MatMulNBits", bits=4), [("w", TensorProto.UINT8), ("s", TensorProto.FLOAT16)], "int4-weight+fp16"),
    (_node("MatMulBnb4", quant_type=1), [("w", TensorProto.UINT8)], "nf4-weight"),
    (_node("MatMulBnb4", quant_type=0), [("w", TensorProto.UINT8)], "fp4-weight"),
    (_node("GatherBlockQuantized", bits=4), [("w", TensorProto.UINT8)], "int4-weight"),
    (_node("GatherBlockQuantized", bits=8), [("w", TensorProto.UINT8)], "int8-weight"),
    (_node("DequantizeLinear", ("w", "s")), [("w", TensorProto.INT8), ("s", TensorProto.FLOAT)], "int8-weight"),
    (_node("DequantizeLinear", ("w", "s")), [("w", TensorProto.INT4), ("s", TensorProto.FLOAT)], "int4-weight"),
    (_node("DequantizeLinear", ("w", "s")), [("w", TensorProto.INT8), ("s", TensorProto.FLOAT16)],
     "int8-weight+fp16"),
])
def test_weight_only_precision_is_named_by_bits_scheme_and_compute_type(node, weights, precision):
    assert guess_precision(_graph([node], *weights)) == precision


@pytest.mark.parametrize("precision, klass", [
    ("int4-weight", "int4"), ("int4-weight+fp16", "int4"), ("nf4-weight", "int4"), ("fp4-weight", "int4"),
    ("int8-weight", "int8"), ("int8-weight+fp16", "int8"), ("int8-dynamic", "int8"), ("fp16", "fp16"),
])
def test_four_bit_weights_have_their_own_tolerance_class(precision, klass):
    assert tl.precision_class(precision) == klass


def test_tolerance_for_one_class_overrides_that_class_only():
    overrides = tl.parse_tolerances(["reference_drift.int4=0.95"])
    assert tl.tolerance_for("reference_drift", "int4-weight+fp16", overrides).cos == 0.95
    assert tl.tolerance_for("reference_drift", "int8-weight", overrides).cos == tl.DRIFT_COS["int8"]
    with pytest.raises(BadInput, match="unknown tolerance"):
        tl.parse_tolerances(["reference_drift.int3=0.9"])
