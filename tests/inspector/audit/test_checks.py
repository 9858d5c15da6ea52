"""Graph reads, state comparisons, pooling maths and tolerance parsing: known answers."""
from __future__ import annotations

import math

import numpy as np
import onnx
import pytest

from padlens.errors import BadInput
from padlens.inspector.audit import compare as ck
from padlens.inspector.audit import graph_checks as G
from padlens.inspector.audit import tolerances as tl
from padlens.inspector.stats.pooling import l2_normalize, pool


def test_dynamic_quantization_is_found_and_its_nodes_named(toy):
    found = G.find_dynamic_quantization(onnx.load(toy("dynamic") / "model.onnx"))
    assert any("DynamicQuantizeLinear" in f for f in found)
    assert any("MatMulInteger" in f for f in found)


def test_a_float_graph_has_no_dynamic_quantization(toy):
    assert G.find_dynamic_quantization(onnx.load(toy("honest") / "model.onnx")) == []


def test_a_quantize_linear_on_the_additive_mask_is_found_with_its_tensor(toy):
    found = G.find_quantized_mask_path(onnx.load(toy("qdq-mask") / "model.onnx"), ["attention_mask"])
    assert len(found) == 1 and "QuantizeLinear" in found[0] and "unsqueeze" in found[0]


def test_a_quantize_linear_on_an_activation_is_not_on_the_mask_path(toy):
    model = onnx.load(toy("qdq-activation") / "model.onnx")
    assert any(n.op_type == "QuantizeLinear" for n in model.graph.node)
    assert G.find_quantized_mask_path(model) == []


def test_static_matmul_only_qdq_keeps_the_mask_path_in_float(zoo):
    model = onnx.load(zoo("int8-qdq") / "model.onnx")
    assert G.find_quantized_mask_path(model) == []


def test_masking_a_signal_with_the_mask_stops_the_mask_path(toy):
    # honest: states * mask would be a pooling; attention scores + bias stay mask-derived
    model = onnx.load(toy("honest") / "model.onnx")
    derived = G.mask_derived_tensors(model)
    softmax_in = next(n.input[0] for n in model.graph.node if n.op_type == "Softmax")
    softmax_out = next(n.output[0] for n in model.graph.node if n.op_type == "Softmax")
    assert softmax_in in derived and softmax_out not in derived


@pytest.mark.parametrize("got, cos, delta", [
    (lambda r: r.copy(), 1.0, 0.0),
    (lambda r: 2 * r, 1.0, None),        # same direction, twice the norm: cos 1, |Δ| = ‖r‖
    (lambda r: -r, -1.0, None),
])
def test_compare_states_known_answers(got, cos, delta):
    ref = [np.array([[3.0, 4.0], [0.0, 5.0]], np.float32)]
    d = ck.compare_states(ref, [got(ref[0])])
    assert d.min_cos == pytest.approx(cos, abs=1e-12)
    assert d.pooled_cos == pytest.approx(cos, abs=1e-12)
    if delta is not None:
        assert d.max_delta == delta
    assert d.nonfinite_layer is None


def test_compare_states_names_the_first_layer_with_nan():
    ref = [np.ones((2, 3), np.float32)] * 3
    got = [ref[0], np.full((2, 3), np.nan, np.float32), np.full((2, 3), np.inf, np.float32)]
    d = ck.compare_states(ref, got)
    assert d.nonfinite_layer == 1 and d.worst_cos == -1.0


def _per_layer(ref, got) -> tuple:
    """compare_states' definition, one layer at a time in plain numpy (the reference)."""
    cos_min, cos_layer, delta_max, delta_layer = 1.0, 0, 0.0, 0
    for layer, (r, g) in enumerate(zip(ref, got)):
        r, g = np.asarray(r, np.float64), np.asarray(g, np.float64)
        cos = (np.sum(r * g, 1) / np.linalg.norm(r, axis=1) / np.linalg.norm(g, axis=1)).min()
        delta = np.linalg.norm(g - r, axis=1).max() / np.linalg.norm(r, axis=1).mean()
        if cos < cos_min:
            cos_min, cos_layer = cos, layer
        if delta > delta_max:
            delta_max, delta_layer = delta, layer
    return cos_min, cos_layer, delta_max, delta_layer


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("same_shapes", [True, False])
def test_compare_states_of_stacked_layers_equals_the_layer_by_layer_definition(seed, same_shapes):
    rng = np.random.default_rng(seed)
    ref = [rng.normal(size=(5, 8)).astype(np.float32) for _ in range(7)]
    if not same_shapes:  # one odd layer: compared one by one
        ref[3] = rng.normal(size=(5, 6)).astype(np.float32)
    got = [r + rng.normal(scale=0.1 * (i + 1), size=r.shape).astype(np.float32) for i, r in enumerate(ref)]
    got[2] = ref[2].copy()
    d = ck.compare_states(ref, got)
    cos, cos_layer, delta, delta_layer = _per_layer(ref, got)
    assert (d.cos_layer, d.delta_layer) == (cos_layer, delta_layer)
    assert d.min_cos == pytest.approx(cos, abs=1e-12) and d.max_delta == pytest.approx(delta, rel=1e-12)
    assert d.nonfinite_layer is None


def test_compare_states_reports_the_worst_layer():
    ref = [np.eye(2, dtype=np.float32)] * 2
    got = [ref[0], np.array([[1, 1], [0, 1]], np.float32)]
    d = ck.compare_states(ref, got)
    assert d.cos_layer == 1 and d.min_cos == pytest.approx(math.sqrt(0.5))


@pytest.mark.parametrize("mode, side, expected", [
    ("mean", "right", [2.0, 3.0]),
    ("cls", "right", [1.0, 2.0]),
    ("max", "right", [3.0, 4.0]),
    ("cls", "left", [1.0, 2.0]),
])
def test_pooling_known_answers(mode, side, expected):
    h = np.array([[[1, 2], [3, 4], [100, 100]]], np.float32)
    mask = np.array([[1, 1, 0]])
    if side == "left":
        h, mask = h[:, [2, 0, 1]], mask[:, [2, 0, 1]]
    assert pool(h, mask, mode)[0].tolist() == expected


def test_l2_normalize_leaves_zero_rows_zero():
    out = l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert out.tolist() == [[0.6, 0.8], [0.0, 0.0]]


@pytest.mark.parametrize("precision, klass", [
    ("fp32", "fp32"), ("unknown", "fp32"), (None, "fp32"), ("fp16", "fp16"),
    ("int8-dynamic", "int8"), ("int8-static", "int8"), ("int8-weight", "int8"),
])
def test_precision_classes(precision, klass):
    assert tl.precision_class(precision) == klass


def _cos(a, b) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_float32_tolerances_absorb_rounding_and_int8_dynamic_leaks_fail_them():
    rng = np.random.default_rng(0)
    states = rng.standard_normal((40, 384)).astype(np.float32)
    # float32 rounding: the same mean pooled in another order (what a different padding does on fp32)
    rounded = _cos(states.mean(axis=0, dtype=np.float64), states[::-1].sum(axis=0) / np.float32(40))
    # dynamic int8: one scale over the tensor, set by a large pad state beside the real ones
    scale = 60.0 / 127
    quantized = np.round(states / scale).clip(-127, 127) * scale
    leaked = _cos(states.mean(axis=0), quantized.mean(axis=0))
    assert rounded >= tl.tolerance_for("padding_invariance", "fp32").cos
    assert leaked < tl.tolerance_for("padding_invariance", "int8-dynamic").cos


def test_tolerance_overrides_apply_to_every_precision():
    over = tl.parse_tolerances(["padding_invariance=0.9", "padding_invariance.delta=0.5"])
    assert tl.tolerance_for("padding_invariance", "fp16", over) == tl.Tolerance(0.9, 0.5)


@pytest.mark.parametrize("item, message", [
    ("nonsense=0.9", "unknown tolerance"),
    ("padding_invariance", "NAME=VALUE"),
    ("padding_invariance=", "NAME=VALUE"),
    ("padding_invariance=abc", "not a number"),
    ("padding_invariance=nan", "finite"),
    ("padding_invariance=1.5", "between 0 and 1"),
    ("reference_drift=-1", ">= 0"),
])
def test_bad_tolerances_are_bad_input(item, message):
    with pytest.raises(BadInput, match=message):
        tl.parse_tolerances([item])
