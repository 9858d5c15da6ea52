"""Loading refuses bad files with a clear error and reads external data only from its folder."""
from __future__ import annotations

import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from padlens.errors import LayersNotFound, ModelLoadError
from padlens.inspector.model import loader
from padlens.inspector.model.graph import load_encoder, save_model


def tiny_graph(path, *, input_type=TensorProto.INT64, output_rank=3):
    """ids -> Gather(table) [-> ReduceMean]: an encoder with no layers to find."""
    table = numpy_helper.from_array(np.ones((10, 4), np.float32), "table")
    nodes = [helper.make_node("Gather", ["table", "input_ids"], ["emb"])]
    out = "emb"
    if output_rank == 2:
        nodes.append(helper.make_node("ReduceMean", ["emb"], ["pooled"], axes=[1], keepdims=0))
        out = "pooled"
    if input_type == TensorProto.FLOAT:
        nodes.insert(0, helper.make_node("Cast", ["x"], ["input_ids"], to=TensorProto.INT64))
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("x" if input_type == TensorProto.FLOAT else "input_ids",
                                       input_type, ["b", "t"])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["b", "t", 4][:output_rank])],
        [table])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def test_a_missing_path_is_refused(tmp_path):
    with pytest.raises(ModelLoadError, match="no such file"):
        load_encoder(tmp_path / "nope.onnx")


def test_a_folder_is_refused(tmp_path):
    with pytest.raises(ModelLoadError, match="is a folder"):
        load_encoder(tmp_path)


def test_a_text_file_is_not_an_onnx_model(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_text("this is not a model, just some words\n" * 20)
    with pytest.raises(ModelLoadError, match="is not an ONNX model"):
        load_encoder(path)


@pytest.mark.parametrize("fraction", [0.5, 0.9, 0.999])
def test_a_truncated_file_is_not_an_onnx_model(zoo, tmp_path, fraction):
    data = (zoo("torchscript") / "model.onnx").read_bytes()
    path = tmp_path / "model.onnx"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ModelLoadError, match="is not an ONNX model"):
        load_encoder(path)


def test_a_graph_without_integer_token_input_is_not_a_token_encoder(tmp_path):
    path = tiny_graph(tmp_path / "m.onnx", input_type=TensorProto.FLOAT)
    with pytest.raises(ModelLoadError, match="not a token encoder: no integer input_ids input"):
        load_encoder(path)


def test_a_graph_without_token_states_is_not_a_token_encoder(tmp_path):
    path = tiny_graph(tmp_path / "m.onnx", output_rank=2)
    with pytest.raises(ModelLoadError, match=r"not a token encoder: no \[batch, sequence"):
        load_encoder(path)


def test_a_graph_without_layers_says_what_was_searched_and_how_to_name_them(tmp_path):
    path = tiny_graph(tmp_path / "m.onnx")
    with pytest.raises(LayersNotFound, match=r"LayerNormalization.*layers=\[NAME"):
        load_encoder(path)


def external_copy(zoo, folder):
    """The torchscript model saved with every tensor in folder/model.onnx.data."""
    folder.mkdir(parents=True, exist_ok=True)
    model = onnx.load(str(zoo("torchscript") / "model.onnx"))
    return save_model(model, folder / "model.onnx", external_over=0)


def test_models_with_external_data_load_and_run(zoo, tmp_path):
    path = external_copy(zoo, tmp_path / "ext")
    assert (tmp_path / "ext" / "model.onnx.data").stat().st_size > path.stat().st_size
    encoder = load_encoder(path)
    plain = load_encoder(zoo("torchscript") / "model.onnx")
    assert encoder.layers.hidden == plain.layers.hidden
    feed = {"input_ids": np.array([[2, 9, 3]]), "attention_mask": np.ones((1, 3), np.int64),
            "token_type_ids": np.zeros((1, 3), np.int64)}
    # the loaded proto keeps referring to the weights in the user's file (never loaded into it)
    assert encoder.external_data and encoder.model.ByteSize() < path.stat().st_size + 4096
    options = ort.SessionOptions()
    options.add_session_config_entry("session.model_external_initializers_file_folder_path", str(path.parent))
    got = ort.InferenceSession(encoder.model.SerializeToString(), options).run(None, feed)[0]
    want = ort.InferenceSession(plain.model.SerializeToString()).run(None, feed)[0]
    np.testing.assert_array_equal(got, want)


def test_save_model_leaves_the_proto_as_it_was(zoo, tmp_path):
    model = onnx.load(str(zoo("torchscript") / "model.onnx"))
    before = model.SerializeToString()
    save_model(model, tmp_path / "m.onnx", external_over=0)
    assert model.SerializeToString() == before
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    assert session.get_outputs()[0].name == "last_hidden_state"


def relocate(path, location: str) -> None:
    """Point every external tensor of ``path`` at ``location``."""
    model = onnx.load(str(path), load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    onnx.save(model, str(path))


@pytest.fixture
def no_external_reads(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("external data was read before its location was checked")

    monkeypatch.setattr(loader, "load_external_data_for_tensor", refuse)


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink"])
def test_external_data_outside_the_models_folder_is_refused_unread(zoo, tmp_path, how,
                                                                   no_external_reads):
    path = external_copy(zoo, tmp_path / "inner")
    outside = tmp_path / "outside.data"
    shutil.move(tmp_path / "inner" / "model.onnx.data", outside)
    if how == "dotdot":
        relocate(path, "../outside.data")
    elif how == "absolute":
        relocate(path, str(outside))
    else:
        (tmp_path / "inner" / "model.onnx.data").symlink_to(outside)
    with pytest.raises(ModelLoadError, match="absolute path|outside the model's folder"):
        load_encoder(path)


def test_missing_external_data_is_a_load_error(zoo, tmp_path):
    path = external_copy(zoo, tmp_path / "ext")
    (tmp_path / "ext" / "model.onnx.data").unlink()
    with pytest.raises(ModelLoadError, match="missing"):
        load_encoder(path)
