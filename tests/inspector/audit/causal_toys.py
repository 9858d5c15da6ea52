"""Toy encoders for the causal and production-file checks (onnx.helper, no torch).

- ``causal``: a decoder: a Trilu-built triangular mask plus the padding mask, absolute
  positions from a ``position_ids`` input (position_ids_follow_mask, last_token_pooling).
- ``ids-positions``: RoBERTa-style, positions counted from ``input_ids != 0`` (CumSum),
  a table with ``padding_idx + 1`` extra rows.
- ``batch-1``: the honest toy with its activations reshaped to a constant ``[1, -1, H]``,
  as production files freeze the batch.
- ``bad-gather``: a table indexed past its rows at run time (ONNX Runtime fails inside the run).
Each writes DIR/model.onnx beside a copy of the zoo's tokenizer (``toys.make``'s layout).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from tests.inspector.audit import toys
from tests.inspector.audit.toys import _G, MAX_POS, PAD_ID, TOKENIZER_FILES, H, _attention, _block, _mask_bias

KINDS = ("causal", "ids-positions", "batch-1", "bad-gather")


def _model(g: _G, outputs: dict[str, str], positions: bool = False, batch: int | str = "B") -> onnx.ModelProto:
    for name, src in outputs.items():
        g.op("Identity", src, out=name)
    names = ["input_ids", "attention_mask"] + (["position_ids"] if positions else [])
    ins = [helper.make_tensor_value_info(n, TensorProto.INT64, [batch, "T"]) for n in names]
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [batch, "T", H]) for n in outputs]
    m = helper.make_model(helper.make_graph(g.nodes, "toy", ins, outs, g.inits),
                          opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def _causal_bias(g: _G) -> str:
    """-1e4 above the diagonal: Trilu(ones[T, T], upper=1, k=1) * -1e4."""
    t = g.op("Gather", g.op("Shape", "input_ids"), g.const(np.int64(1)), axis=0)
    tt = g.op("Concat", g.op("Unsqueeze", t, g.const(np.array([0], np.int64))),
              g.op("Unsqueeze", t, g.const(np.array([0], np.int64))), axis=0)
    ones = g.op("ConstantOfShape", tt, value=helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0]))
    upper = g.op("Trilu", ones, g.const(np.int64(1)), upper=1)
    return g.op("Mul", upper, g.const(np.float32(-1e4)))


def causal(vocab: int) -> onnx.ModelProto:
    g = _G(vocab)
    words = g.op("Gather", g.const(g.rng.normal(size=(vocab, H)).astype(np.float32), "word_embeddings"), "input_ids")
    table = g.rng.normal(size=(MAX_POS, H)).astype(np.float32)
    h0 = g.op("Add", words, g.op("Gather", g.const(table, "position_embeddings"), "position_ids"))
    bias = g.op("Add", _mask_bias(g), _causal_bias(g))  # [B, 1, T] + [T, T] -> [B, T, T]
    h1 = _block(g, h0, _attention(g, h0, bias))
    return _model(g, {"last_hidden_state": h1, "hidden_states.0": h0, "hidden_states.1": h1}, positions=True)


def ids_positions(vocab: int) -> onnx.ModelProto:
    """positions = cumsum(ids != PAD) * (ids != PAD) + PAD, gathered from MAX_POS + PAD + 1 rows."""
    g = _G(vocab)
    words = g.op("Gather", g.const(g.rng.normal(size=(vocab, H)).astype(np.float32), "word_embeddings"), "input_ids")
    real = g.op("Cast", g.op("Not", g.op("Equal", "input_ids", g.const(np.int64(PAD_ID)))), to=TensorProto.INT64)
    count = g.op("Mul", g.op("CumSum", real, g.const(np.int64(1))), real)
    pos = g.op("Add", count, g.const(np.int64(PAD_ID)))
    table = g.rng.normal(size=(MAX_POS + PAD_ID + 1, H)).astype(np.float32)
    h0 = g.op("Add", words, g.op("Gather", g.const(table, "position_embeddings"), pos))
    h1 = _block(g, h0, _attention(g, h0, _mask_bias(g)))
    return _model(g, {"last_hidden_state": h1, "hidden_states.0": h0, "hidden_states.1": h1})


def batch_1(vocab: int) -> onnx.ModelProto:
    """The honest toy whose states pass through Reshape(x, [1, -1, H]): batch 1 only."""
    g = _G(vocab)
    words = g.op("Gather", g.const(g.rng.normal(size=(vocab, H)).astype(np.float32), "word_embeddings"), "input_ids")
    h0 = g.op("Reshape", words, g.const(np.array([1, -1, H], np.int64), "frozen_shape"))
    h1 = _block(g, h0, _attention(g, h0, _mask_bias(g)))
    return _model(g, {"last_hidden_state": h1, "hidden_states.0": h0, "hidden_states.1": h1})


def bad_gather(vocab: int) -> onnx.ModelProto:
    """Word embeddings plus an 8-row table indexed by input_ids + 1000: fails in every run."""
    g = _G(vocab)
    words = g.op("Gather", g.const(g.rng.normal(size=(vocab, H)).astype(np.float32), "word_embeddings"), "input_ids")
    far = g.op("Add", "input_ids", g.const(np.int64(1000)))
    h0 = g.op("Add", words, g.op("Gather", g.const(np.ones((8, H), np.float32), "extra_table"), far))
    h1 = _block(g, h0, _attention(g, h0, _mask_bias(g)))
    return _model(g, {"last_hidden_state": h1, "hidden_states.0": h0, "hidden_states.1": h1})


BUILDERS = {"causal": causal, "ids-positions": ids_positions, "batch-1": batch_1, "bad-gather": bad_gather}


def make(kind: str, out: Path, tokenizer_dir: Path, padding_side: str | None = None) -> Path:
    """Write toy ``kind`` to out/model.onnx with the zoo's tokenizer; ``padding_side`` None
    removes the tokenizer config's own side (so ``auto`` decides from the model)."""
    import json

    out.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        shutil.copy(tokenizer_dir / name, out / name)
    config = json.loads((out / "tokenizer_config.json").read_text())
    config.pop("padding_side", None)
    if padding_side is not None:
        config["padding_side"] = padding_side
    (out / "tokenizer_config.json").write_text(json.dumps(config))
    onnx.save(BUILDERS[kind](toys.vocab_size(tokenizer_dir)), out / "model.onnx")
    return out
