"""A failed invariance check names the node where the leak enters, with its local and accumulated error."""
from __future__ import annotations

import json

import pytest

from padlens.inspector.audit import audit

TEXTS = ["this is a sample sentence", "the cat sat on the mat", "a dog", "padding text is short"]


def _check(path, name, **kw):
    result = audit([str(path)], texts=TEXTS, max_length=32, **kw)
    [found] = [c for c in result.checks if c.name == name]
    return found


def test_a_reshape_that_mixes_batch_rows_is_named_as_the_node_where_the_leak_enters(toy):
    c = _check(toy("reshape-mix"), "batch_neighbour_invariance")
    assert not c.passed and c.node is not None
    assert c.node.op_type == "Reshape" and c.node.layer == 1
    assert c.node.accumulated_error > 0.01 and c.node.local_error == pytest.approx(c.node.accumulated_error)
    assert "Reshape node" in c.detail and "first beyond the tolerance at layer 1" in c.detail
    node = c.to_dict()["node"]
    assert node["op_type"] == "Reshape" and node["name"] == c.node.name and node["inputs"] == list(c.node.inputs)
    json.dumps(c.to_dict(), allow_nan=False)


def test_dynamic_quantization_is_traced_to_its_dynamicquantizelinear(toy):
    for name in ("padding_invariance", "batch_neighbour_invariance"):
        c = _check(toy("dynamic"), name)
        assert not c.passed and c.node is not None, name
        assert c.node.op_type in ("DynamicQuantizeLinear", "MatMulInteger") and c.node.layer == 1
        assert c.node.local_error > 0  # the node itself moves real tokens: its scale spans the pads


def test_a_sequence_mean_over_pads_is_traced_to_the_reduction(toy):
    c = _check(toy("leaky"), "padding_invariance")
    assert not c.passed and c.node.op_type == "ReduceMean"


def test_passing_checks_are_not_traced_and_cost_no_run(toy, monkeypatch):
    from padlens.inspector.audit import trace

    calls = []
    monkeypatch.setattr(trace, "trace", lambda *a, **k: calls.append(a))
    result = audit([str(toy("honest"))], texts=TEXTS, max_length=32)
    assert result.passed and not calls and all(c.node is None for c in result.checks)
    assert all(c.to_dict()["node"] is None for c in result.checks)


def test_a_check_that_is_not_traced_still_names_its_first_failing_layer_beside_the_worst(toy):
    c = _check(toy("positional"), "left_padding")  # absolute positions: the embeddings already move
    assert not c.passed and c.node is None and c.to_dict()["node"] is None
    assert c.evidence.first_layer == 0 and "first beyond the tolerance at layer 0" in c.detail
    assert len(c.evidence.one_minus_cos) == len(c.evidence.delta) == 2 and c.evidence.one_minus_cos[0] > 0
