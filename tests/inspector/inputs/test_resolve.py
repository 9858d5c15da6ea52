"""MODEL arguments: export dirs expand to their precisions; bare .onnx files need a tokenizer."""
from __future__ import annotations

import json

import pytest
from onnx import TensorProto, helper

from padlens.errors import BadInput, ModelLoadError
from padlens.inspector.inputs.resolve import guess_precision, precision_from_name, resolve_models

FILES = {"fp32": "model.onnx", "fp16": "model.fp16.onnx",
         "int8-dynamic": "model.int8-dynamic.onnx", "int8-static": "model.int8-static.onnx"}


def export_dir(root, name="minilm", precisions=FILES):
    folder = root / name
    folder.mkdir()
    for file in precisions.values():
        (folder / file).write_bytes(b"onnx")
    (folder / "tokenizer.json").write_text("{}")
    manifest = {"format": 1, "precisions": {p: {"file": f, "bytes": 4} for p, f in precisions.items()}}
    (folder / "padlens.json").write_text(json.dumps(manifest))
    return folder


def test_an_export_dir_expands_to_every_precision_in_its_manifest(tmp_path):
    folder = export_dir(tmp_path)
    refs = resolve_models([str(folder)])
    assert [r.precision for r in refs] == list(FILES)
    assert [r.label for r in refs] == [f"minilm/{p}" for p in FILES]
    assert [r.path for r in refs] == [folder / f for f in FILES.values()]
    assert all(r.tokenizer_path == folder and r.manifest["format"] == 1 for r in refs)


def test_an_export_dir_keeps_its_own_tokenizer_when_one_is_given_for_bare_files(tmp_path):
    folder = export_dir(tmp_path, precisions={"fp32": "model.onnx"})
    other = tmp_path / "other-tok"
    other.mkdir()
    (ref,) = resolve_models([folder], tokenizer=other)
    assert ref.tokenizer_path == folder


def test_only_the_precisions_listed_are_run(tmp_path):
    folder = export_dir(tmp_path, precisions={"fp16": "model.fp16.onnx"})
    (folder / "model.onnx").write_bytes(b"onnx")
    assert [r.precision for r in resolve_models([folder])] == ["fp16"]


def test_a_bare_onnx_uses_the_tokenizer_beside_it(tmp_path):
    (tmp_path / "encoder.onnx").write_bytes(b"onnx")
    (tmp_path / "tokenizer.json").write_text("{}")
    (ref,) = resolve_models([tmp_path / "encoder.onnx"])
    assert (ref.label, ref.precision, ref.tokenizer_path, ref.manifest) == ("encoder", "unknown", tmp_path, None)


def test_a_bare_onnx_without_a_tokenizer_asks_for_one(tmp_path):
    (tmp_path / "encoder.onnx").write_bytes(b"onnx")
    with pytest.raises(BadInput, match="has no tokenizer next to it: pass tokenizer=PATH"):
        resolve_models([tmp_path / "encoder.onnx"])


def test_tokenizer_option_serves_a_bare_onnx(tmp_path):
    (tmp_path / "encoder.fp16.onnx").write_bytes(b"onnx")
    tok = tmp_path / "tok" / "tokenizer.json"
    tok.parent.mkdir()
    tok.write_text("{}")
    (ref,) = resolve_models([tmp_path / "encoder.fp16.onnx"], tokenizer=str(tok))
    assert ref.tokenizer_path == tok and ref.precision == "fp16" and ref.label == "encoder.fp16"


def test_a_tokenizer_option_that_does_not_exist_is_bad_input(tmp_path):
    (tmp_path / "encoder.onnx").write_bytes(b"onnx")
    with pytest.raises(BadInput, match="tokenizer .*nope does not exist"):
        resolve_models([tmp_path / "encoder.onnx"], tokenizer=tmp_path / "nope")


def test_a_folder_without_manifest_but_with_model_onnx_is_that_file(tmp_path):
    folder = tmp_path / "thirdparty"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"onnx")
    (folder / "tokenizer.json").write_text("{}")
    (ref,) = resolve_models([folder])
    assert ref.path == folder / "model.onnx" and ref.label == "thirdparty/model"
    assert ref.tokenizer_path == folder and ref.manifest is None


def test_a_folder_with_no_onnx_file_is_bad_input(tmp_path):
    with pytest.raises(BadInput, match="no padlens.json and no .onnx file"):
        resolve_models([tmp_path])


@pytest.mark.parametrize("text, match", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "malformed"),
    ('{"precisions": {}}', "malformed"),
    ('{"precisions": {"fp32": "model.onnx"}}', "malformed: precision 'fp32'"),
    ('{"precisions": {"fp32": {"file": "../x.onnx"}}}', "outside the folder"),
])
def test_a_malformed_manifest_is_bad_input_naming_it(tmp_path, text, match):
    folder = export_dir(tmp_path)
    (folder / "padlens.json").write_text(text)
    with pytest.raises(BadInput, match=match) as err:
        resolve_models([folder])
    assert str(folder / "padlens.json") in str(err.value)


def test_a_manifest_listing_a_missing_file_is_a_model_load_error(tmp_path):
    folder = export_dir(tmp_path)
    (folder / "model.fp16.onnx").unlink()
    with pytest.raises(ModelLoadError, match="fp16 as model.fp16.onnx, which is missing"):
        resolve_models([folder])


def test_a_missing_model_path_is_a_model_load_error(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        resolve_models([tmp_path / "nope.onnx"])
    with pytest.raises(BadInput, match="no model"):
        resolve_models([])


def test_the_same_model_given_twice_gets_distinct_labels(tmp_path):
    folder = export_dir(tmp_path, precisions={"fp32": "model.onnx"})
    assert [r.label for r in resolve_models([folder, folder])] == ["minilm/fp32", "minilm/fp32 #2"]


@pytest.mark.parametrize("name, precision", [
    ("model.onnx", "unknown"), ("model.fp16.onnx", "fp16"), ("model_fp32.onnx", "fp32"),
    ("model.int8-dynamic.onnx", "int8-dynamic"), ("model.int8-static.onnx", "int8-static"),
])
def test_precision_from_file_name(name, precision):
    assert precision_from_name(name) == precision


def graph_with(ops: list[str], weight_type=TensorProto.FLOAT):
    weight = helper.make_tensor("w", weight_type, [1], [1])
    nodes = [helper.make_node(op, ["x"], [f"y{i}"]) for i, op in enumerate(ops)]
    return helper.make_model(helper.make_graph(nodes, "g", [], [], [weight]))


@pytest.mark.parametrize("ops, weight_type, precision", [
    (["MatMul"], TensorProto.FLOAT, "fp32"),
    (["MatMul"], TensorProto.FLOAT16, "fp16"),
    (["DynamicQuantizeLinear", "MatMulInteger"], TensorProto.INT8, "int8-dynamic"),
    (["QuantizeLinear", "DequantizeLinear"], TensorProto.INT8, "int8-static"),
    (["DequantizeLinear", "MatMul"], TensorProto.INT8, "int8-weight"),
])
def test_precision_guessed_from_the_graph(ops, weight_type, precision):
    assert guess_precision(graph_with(ops, weight_type)) == precision
