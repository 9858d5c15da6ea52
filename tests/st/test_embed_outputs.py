"""embed pools only the graph's own output: it runs whether or not layers can be located, and
uses a ``sentence_embedding`` output as it is when the graph pools by itself."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from padlens.errors import BadInput, LayersNotFound
from padlens.inspector.embed import embed
from padlens.inspector.model.graph import load_encoder
from padlens.inspector.stats.pooling import resolve_pooling

H = 6
TEXTS = ["the cat sat on the mat", "a dog", "this is a sample sentence with some words in it", "it"]
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def _table(tokenizer: Path) -> np.ndarray:
    vocab = json.loads((tokenizer / "tokenizer.json").read_text())["model"]["vocab"]
    return np.random.default_rng(0).normal(size=(max(vocab.values()) + 1, H)).astype(np.float32)


def _graph(table: np.ndarray, pooled_in_graph: bool) -> onnx.ModelProto:
    """Word embeddings times tanh: no norm, no attention, nothing padlens can call a layer.
    ``pooled_in_graph``: outputs token_embeddings and sentence_embedding = 2 x masked mean."""
    mask3 = ["mask_f", "mask3"]
    nodes = [helper.make_node("Gather", ["table", "input_ids"], ["emb"]),
             helper.make_node("Tanh", ["emb"], ["tokens"]),
             helper.make_node("Cast", ["attention_mask"], [mask3[0]], to=TensorProto.FLOAT),
             helper.make_node("Unsqueeze", [mask3[0], "axis2"], [mask3[1]])]
    token_name = "token_embeddings" if pooled_in_graph else "last_hidden_state"
    nodes.append(helper.make_node("Identity", ["tokens"], [token_name]))
    outputs = [helper.make_tensor_value_info(token_name, TensorProto.FLOAT, ["B", "T", H])]
    if pooled_in_graph:
        nodes += [helper.make_node("Mul", ["tokens", mask3[1]], ["masked"]),
                  helper.make_node("ReduceSum", ["masked", "axis1"], ["total"], keepdims=0),
                  helper.make_node("ReduceSum", [mask3[1], "axis1"], ["count"], keepdims=0),
                  helper.make_node("Div", ["total", "count"], ["mean"]),
                  helper.make_node("Mul", ["mean", "two"], ["sentence_embedding"])]
        outputs.append(helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["B", H]))
    inits = [numpy_helper.from_array(table, "table"), numpy_helper.from_array(np.array([2], np.int64), "axis2"),
             numpy_helper.from_array(np.array([1], np.int64), "axis1"),
             numpy_helper.from_array(np.array(2.0, np.float32), "two")]
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ["B", "T"]) for n in ("input_ids", "attention_mask")]
    model = helper.make_model(helper.make_graph(nodes, "no-layers", inputs, outputs, inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


@pytest.fixture(scope="module")
def toys(st_models, tmp_path_factory):
    """{"plain" | "pooled": folder with model.onnx and the encoder folder's tokenizer}, and the table."""
    source, base = st_models["encoder"], tmp_path_factory.mktemp("no-layers")
    table, made = _table(source), {}
    for name, pooled in (("plain", False), ("pooled", True)):
        folder = base / name
        folder.mkdir()
        for file in TOKENIZER_FILES:
            shutil.copy(source / file, folder / file)
        onnx.save(_graph(table, pooled), folder / "model.onnx")
        made[name] = folder
    return made, table


def _texts(tmp_path: Path) -> Path:
    file = tmp_path / "texts.txt"
    file.write_text("\n".join(TEXTS) + "\n")
    return file


def _expected(folder: Path, table: np.ndarray, scale: float = 1.0) -> np.ndarray:
    from padlens.inspector.inputs.tokenize import load_tokenizer

    tok = load_tokenizer(folder)
    rows = [np.tanh(table[tok.encode([t], padding="longest").input_ids[0]]).mean(0) for t in TEXTS]
    return scale * np.array(rows)


def test_the_toy_really_has_no_layers_to_locate(toys):
    made, _ = toys
    with pytest.raises(LayersNotFound):
        load_encoder(made["plain"] / "model.onnx")


def test_embed_runs_without_located_layers(toys, tmp_path):
    made, table = toys
    result = embed(made["plain"], _texts(tmp_path), tmp_path / "e.npy", pooling="mean", normalize=False)
    assert (result.rows, result.dim, result.pooling) == (len(TEXTS), H, "mean")
    np.testing.assert_allclose(np.load(tmp_path / "e.npy"), _expected(made["plain"], table), rtol=1e-5, atol=1e-6)


def test_a_graph_that_pools_by_itself_is_used_as_it_is_and_says_so(toys, tmp_path):
    made, table = toys
    result = embed(made["pooled"], _texts(tmp_path), tmp_path / "e.npy", normalize=False)
    assert (result.pooling, result.pooling_source) == ("graph", "graph output sentence_embedding")
    np.testing.assert_allclose(np.load(tmp_path / "e.npy"), _expected(made["pooled"], table, 2.0),
                               rtol=1e-5, atol=1e-6)


def test_an_explicit_pooling_pools_the_token_output_instead(toys, tmp_path):
    made, table = toys
    result = embed(made["pooled"], _texts(tmp_path), tmp_path / "e.npy", pooling="mean", normalize=False)
    assert result.pooling == "mean"
    np.testing.assert_allclose(np.load(tmp_path / "e.npy"), _expected(made["pooled"], table), rtol=1e-5, atol=1e-6)


def test_normalize_applies_over_the_graphs_pooling(toys, tmp_path):
    made, _ = toys
    result = embed(made["pooled"], _texts(tmp_path), tmp_path / "e.npy", normalize=True)
    assert result.pooling == "graph" and result.normalize
    np.testing.assert_allclose(np.linalg.norm(np.load(tmp_path / "e.npy"), axis=1), 1.0, rtol=1e-6)


def test_a_batch_fixed_in_the_graph_is_embedded_one_text_at_a_time(zoo, tmp_path, caplog):
    from tests.inspector.runtime.test_production import freeze_batch

    source = zoo("torchscript")
    frozen = freeze_batch(source, tmp_path / "frozen")
    texts = _texts(tmp_path)
    with caplog.at_level("WARNING"):
        embed(frozen, texts, tmp_path / "frozen.npy", pooling="mean", batch_size=4)
    embed(source, texts, tmp_path / "source.npy", pooling="mean", batch_size=4)
    assert "fixes the batch at 1" in caplog.text
    np.testing.assert_allclose(np.load(tmp_path / "frozen.npy"), np.load(tmp_path / "source.npy"), rtol=1e-5, atol=1e-6)


def test_a_graph_pooling_by_itself_is_used_even_beside_modules_padlens_cannot_apply(toys, tmp_path):
    """An export of the whole sentence-transformers pipeline (Dense included) in a folder whose
    modules.json lists a Dense module: the graph's own output holds it, so auto uses that."""
    made, table = toys
    folder = tmp_path / "st"
    shutil.copytree(made["pooled"], folder)
    kinds = ["transformer.Transformer", "pooling.Pooling", "dense.Dense", "normalize.Normalize"]
    modules = [{"idx": i, "name": str(i), "path": f"{i}_{k.split('.')[1]}" if i else "",
                "type": f"sentence_transformers.sentence_transformer.modules.{k}"} for i, k in enumerate(kinds)]
    (folder / "modules.json").write_text(json.dumps(modules))
    result = embed(folder, _texts(tmp_path), tmp_path / "e.npy")
    assert (result.pooling, result.normalize) == ("graph", True)  # Normalize read from modules.json
    want = _expected(folder, table, 2.0)
    np.testing.assert_allclose(np.load(tmp_path / "e.npy"), want / np.linalg.norm(want, axis=1, keepdims=True),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(BadInput, match="Dense module"):  # pooling its token output would skip the Dense
        resolve_pooling(folder / "model.onnx", None, "auto", None)
