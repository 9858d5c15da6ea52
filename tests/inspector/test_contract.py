"""The shared contract: one set of names that exporter, inspector and audit agree on."""
from __future__ import annotations

import pytest

from padlens.inspector import contract
from padlens.inspector.inputs.resolve import guess_precision, precision_from_name


def test_every_precision_but_fp32_has_a_file_name_that_states_it():
    assert contract.PRECISION_FILES["fp32"] == "model.onnx"
    for precision, name in list(contract.PRECISION_FILES.items())[1:]:
        assert precision_from_name(name) == precision


def test_the_manifest_the_exporter_builds_uses_exactly_the_contract_keys():
    from padlens.exporter import manifest

    facts = manifest.ModelFacts("src", None, "bert", 2, 8, 16, 30, 0, "right", "mean", True)
    doc = manifest.build(facts, tokenizer_files=[], input_names=[], output_names=contract.output_names(2),
                         precisions={}, validation={}, versions={}, calibration={}, backend="torch")
    assert tuple(doc) == contract.MANIFEST_KEYS
    assert doc["output_names"] == ["last_hidden_state", "hidden_states.0", "hidden_states.1", "hidden_states.2"]


def test_quantization_op_sets_do_not_overlap():
    assert not contract.DYNAMIC_QUANT_OPS & contract.STATIC_QUANT_OPS
    assert not contract.INTEGER_OPS & contract.STATIC_QUANT_OPS


def test_a_graph_with_only_integer_matmuls_reads_as_dynamic_int8():
    from onnx import helper

    node = helper.make_node("MatMulInteger", ["a", "b"], ["c"])
    graph = helper.make_graph([node], "g", [], [])
    assert guess_precision(helper.make_model(graph)) == "int8-dynamic"


def test_resolve_reads_the_manifest_the_exporter_names(tmp_path):
    import json

    from padlens.errors import BadInput
    from padlens.exporter import manifest
    from padlens.inspector.inputs.resolve import resolve_models

    (tmp_path / manifest.MANIFEST).write_text(json.dumps({"precisions": {"fp32": {"file": "gone.onnx"}}}))
    with pytest.raises(BadInput, match="gone.onnx"):  # read from the exporter's file name, not guessed
        resolve_models([str(tmp_path)])
