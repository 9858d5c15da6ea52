"""Each precision is the graph it claims to be: fp16 compute, dynamic int8, QDQ on MatMul inputs only."""
from __future__ import annotations

from collections import Counter, defaultdict

import onnx
import pytest

from .conftest import ARCHITECTURES


def graph(tiny, arch, precision):
    return onnx.load(str(tiny.model(arch, precision))).graph


def consumers(g):
    out = defaultdict(list)
    for node in g.node:
        for name in node.input:
            out[name].append(node)
    return out


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_fp16_stores_float16_weights_but_keeps_float32_inputs_and_outputs(tiny, arch):
    g = graph(tiny, arch, "fp16")
    kinds = Counter(t.data_type for t in g.initializer if t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16))
    assert kinds[onnx.TensorProto.FLOAT16] > 0 and kinds[onnx.TensorProto.FLOAT] == 0
    assert all(o.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for o in g.output)
    assert all(i.type.tensor_type.elem_type == onnx.TensorProto.INT64 for i in g.input)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_int8_dynamic_quantizes_activations_at_run_time(tiny, arch):
    ops = Counter(n.op_type for n in graph(tiny, arch, "int8-dynamic").node)
    assert ops["DynamicQuantizeLinear"] > 0 and ops["MatMulInteger"] > 0


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_int8_static_quantizes_only_tensors_going_into_a_matmul(tiny, arch):
    g = graph(tiny, arch, "int8-static")
    ops = Counter(n.op_type for n in g.node)
    assert ops["QuantizeLinear"] > 0 and ops["DequantizeLinear"] > 0
    assert ops["DynamicQuantizeLinear"] == 0
    uses = consumers(g)
    for node in g.node:
        if node.op_type == "QuantizeLinear":
            assert {c.op_type for c in uses[node.output[0]]} == {"DequantizeLinear"}, node.name
        if node.op_type == "DequantizeLinear":  # a pair exists only in front of a MatMul
            assert {c.op_type for c in uses[node.output[0]]} == {"MatMul"}, node.name


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_int8_static_leaves_the_attention_mask_path_in_float(tiny, arch):
    g = graph(tiny, arch, "int8-static")
    producers = {out: node for node in g.node for out in node.output}
    uses = consumers(g)
    frontier, seen = ["attention_mask"], set()
    while frontier:  # walk forward from the mask until it meets a MatMul or the Softmax
        name = frontier.pop()
        for node in uses[name]:
            assert node.op_type not in ("QuantizeLinear", "DequantizeLinear"), node.name
            if node.name in seen or node.op_type in ("MatMul", "Softmax"):
                continue
            seen.add(node.name)
            frontier.extend(node.output)
    assert seen, "the attention mask feeds nothing"
    assert all(producers.get(i) is None or producers[i].op_type != "DequantizeLinear"
               for n in g.node if n.op_type in ("Where", "Softmax") for i in n.input)


def test_inspecting_an_fp16_export_measures_from_the_fetched_states_and_says_why(tiny, caplog):
    from padlens.inspector.inputs.resolve import resolve_models
    from padlens.inspector.runtime.encoder import Encoder

    ref = resolve_models([str(tiny.model("bert", "fp16"))])[0]
    with caplog.at_level("WARNING"):
        enc = Encoder.open(ref, stats=True)
    assert enc.stats is None  # float32 outputs over float16 blocks: no statistics graph is tried
    assert enc.describe().stats == "numpy: a float16 graph (measured from the states as fetched)"
    assert not [r for r in caplog.records if "statistics" in r.getMessage()]
