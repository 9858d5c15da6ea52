"""``loader.all_tensors`` finds every tensor a model holds with onnx's public protos (no private onnx API)."""
from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from padlens.inspector.model.loader import all_tensors


def test_initializers_attribute_tensors_subgraphs_and_functions_are_all_found():
    const = helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(np.ones(2, np.float32), "attr"))
    branch = helper.make_graph([const], "branch", [], [helper.make_tensor_value_info("c", TensorProto.FLOAT, [2])],
                               initializer=[numpy_helper.from_array(np.zeros(1, np.float32), "sub_init")])
    node = helper.make_node("If", ["b"], ["o"], then_branch=branch, else_branch=branch)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("b", TensorProto.BOOL, [])],
                              [helper.make_tensor_value_info("o", TensorProto.FLOAT, [2])],
                              initializer=[numpy_helper.from_array(np.zeros(3, np.float32), "weight")])
    in_function = helper.make_node("Constant", [], ["k"], value=numpy_helper.from_array(np.ones(1, np.float32), "fn"))
    function = helper.make_function("local", "f", [], ["k"], [in_function], [helper.make_opsetid("", 17)])
    model = helper.make_model(graph, functions=[function])
    assert sorted(t.name for t in all_tensors(model)) == ["attr", "attr", "fn", "sub_init", "sub_init", "weight"]
