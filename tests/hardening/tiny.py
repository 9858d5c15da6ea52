"""Tiny hand-built ONNX graphs for the hardening tests (onnx.helper only, no torch)."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

log = logging.getLogger(__name__)

H = 8
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def copy_tokenizer(src: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        shutil.copy(src / name, out / name)


def _save(nodes, inputs, outputs, inits, path: Path, opset: int = 17, extra_opsets=()) -> Path:
    graph = helper.make_graph(nodes, "tiny", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset), *extra_opsets])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def _ids(name="input_ids", elem=TensorProto.INT64):
    return helper.make_tensor_value_info(name, elem, ["B", "T"])


def _states(name, rank=3):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["B", "T", H][:rank])


def gather_only(path: Path, *, float_input: bool = False, pooled: bool = False) -> Path:
    """ids -> Gather(table): no blocks to locate; variants with a float input or a pooled output."""
    table = numpy_helper.from_array(np.ones((10, H), np.float32), "table")
    nodes = [helper.make_node("Gather", ["table", "input_ids"], ["emb"])]
    inputs = [_ids()]
    if float_input:
        nodes.insert(0, helper.make_node("Cast", ["x"], ["input_ids"], to=TensorProto.INT64))
        inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", "T"])]
    out = "emb"
    if pooled:
        nodes.append(helper.make_node("ReduceMean", ["emb"], ["pooled"], axes=[1], keepdims=0))
        out = "pooled"
    return _save(nodes, inputs, [_states(out, 2 if pooled else 3)], [table], path, opset=13)


def custom_op(path: Path, domain: str = "com.example.evil") -> Path:
    """An encoder-shaped graph whose one block is an op from a custom domain."""
    table = numpy_helper.from_array(np.ones((10, H), np.float32), "table")
    nodes = [helper.make_node("Gather", ["table", "input_ids"], ["emb"]),
             helper.make_node("Pwn", ["emb"], ["last_hidden_state"], domain=domain)]
    return _save(nodes, [_ids()], [_states("last_hidden_state")], [table], path,
                 extra_opsets=[helper.make_opsetid(domain, 1)])


def nan_rows(path: Path, vocab: int, poison_id: int) -> Path:
    """hidden_states.0 = table[ids]; hidden_states.1 = Log(h0): NaN wherever the table row is negative.

    Every row of the table is positive except ``poison_id``'s, so only texts holding that
    token get NaN states at layer 1 (and the model's own last_hidden_state).
    """
    rng = np.random.default_rng(0)
    table = rng.uniform(0.5, 2.0, size=(vocab, H)).astype(np.float32)
    table[poison_id] = -1.0
    inits = [numpy_helper.from_array(table, "word_embeddings")]
    nodes = [helper.make_node("Gather", ["word_embeddings", "input_ids"], ["h0"]),
             helper.make_node("Log", ["h0"], ["h1"]),
             helper.make_node("Identity", ["h0"], ["hidden_states.0"]),
             helper.make_node("Identity", ["h1"], ["hidden_states.1"]),
             helper.make_node("Identity", ["h1"], ["last_hidden_state"])]
    ins = [_ids(), _ids("attention_mask")]
    outs = [_states(n) for n in ("last_hidden_state", "hidden_states.0", "hidden_states.1")]
    return _save(nodes, ins, outs, inits, path)
