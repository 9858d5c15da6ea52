"""Tiny hand-built ONNX encoders, each made to pass or to fail one audit check (onnx.helper, no torch).

Every toy is a two-layer "encoder": ``hidden_states.0`` = word embeddings (plus position
embeddings for ``positional``), ``hidden_states.1`` = one mixing step; ``last_hidden_state``
repeats layer 1. Each writes DIR/model.onnx beside a copy of the zoo's tokenizer.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

H = 8
MAX_POS = 64
PAD_ID = 0
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


class _G:
    """A small graph under construction."""

    def __init__(self, vocab: int, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.vocab, self.n = [], [], vocab, 0

    def const(self, value, name=None) -> str:
        name = name or f"c{len(self.inits)}"
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, *inputs, out: str | None = None, **attrs) -> str:
        self.n += 1
        out = out or f"{op_type.lower()}_{self.n}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=f"{op_type}_{self.n}", **attrs))
        return out

    def model(self, outputs: dict[str, str]) -> onnx.ModelProto:
        for name, src in outputs.items():
            self.op("Identity", src, out=name)
        ins = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["B", "T"]),
               helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["B", "T"])]
        outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["B", "T", H]) for n in outputs]
        graph = helper.make_graph(self.nodes, "toy", ins, outs, self.inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        m.ir_version = 8
        onnx.checker.check_model(m)
        return m


def _embed(g: _G, positional: bool, pad_scale: float = 1.0) -> str:
    table = g.rng.normal(size=(g.vocab, H)).astype(np.float32)
    table[PAD_ID] *= pad_scale
    h0 = g.op("Gather", g.const(table, "word_embeddings"), "input_ids")
    if positional:
        t = g.op("Gather", g.op("Shape", "input_ids"), g.const(np.int64(1)), axis=0)
        pos = g.op("Range", g.const(np.int64(0)), t, g.const(np.int64(1)))
        table_p = g.rng.normal(size=(MAX_POS, H)).astype(np.float32)
        h0 = g.op("Add", h0, g.op("Gather", g.const(table_p, "position_embeddings"), pos))
    return h0


def _mask_bias(g: _G, quantize: bool = False) -> str:
    """(1 - mask) * -1e4 as [B, 1, T]: the additive attention mask."""
    m = g.op("Cast", "attention_mask", to=TensorProto.FLOAT)
    bias = g.op("Mul", g.op("Sub", g.const(np.float32(1)), m), g.const(np.float32(-1e4)))
    bias = g.op("Unsqueeze", bias, g.const(np.array([1], np.int64)))
    if quantize:
        scale, zp = g.const(np.float32(1e4 / 127)), g.const(np.int8(0))
        bias = g.op("DequantizeLinear", g.op("QuantizeLinear", bias, scale, zp), scale, zp)
    return bias


def _attention(g: _G, h0: str, bias: str | None, where_mask: bool = False) -> str:
    """softmax(h0 h0^T / sqrt(H) + bias) h0: one head, no weights."""
    kt = g.op("Transpose", h0, perm=[0, 2, 1])
    scores = g.op("Div", g.op("MatMul", h0, kt), g.const(np.float32(np.sqrt(H))))
    if where_mask:
        keep = g.op("Unsqueeze", g.op("Cast", "attention_mask", to=TensorProto.BOOL),
                    g.const(np.array([1], np.int64)))
        scores = g.op("Where", keep, scores, g.const(np.float32(-np.inf)))
    elif bias is not None:
        scores = g.op("Add", scores, bias)
    return g.op("MatMul", g.op("Softmax", scores, axis=-1), h0)


def _block(g: _G, h0: str, mixed: str, matmul: bool = False, qdq_input: bool = False) -> str:
    x = g.op("Add", h0, mixed)
    if qdq_input:  # a static QDQ pair on an activation (not on the mask path)
        scale, zp = g.const(np.float32(0.05)), g.const(np.int8(0))
        x = g.op("DequantizeLinear", g.op("QuantizeLinear", x, scale, zp), scale, zp)
    if matmul:
        w = (g.rng.normal(size=(H, H)) / np.sqrt(H)).astype(np.float32)
        x = g.op("MatMul", x, g.const(w, "dense_weight"))
    return g.op("Tanh", x)


def build(kind: str, vocab: int) -> onnx.ModelProto:
    """The toy called ``kind`` (see KINDS)."""
    g = _G(vocab)
    h0 = _embed(g, positional=kind == "positional", pad_scale=50.0 if kind == "dynamic" else 1.0)
    if kind == "ignores-mask":
        h1 = g.op("Tanh", h0)
    elif kind == "nan":
        h1 = _block(g, h0, _attention(g, h0, None, where_mask=True))
    else:
        h1 = _block(g, h0, _attention(g, h0, _mask_bias(g, quantize=kind == "qdq-mask")),
                    matmul=kind in ("dynamic", "honest-matmul"), qdq_input=kind == "qdq-activation")
    if kind == "leaky":  # a mean over the whole sequence, pads included, added to every position
        h1 = g.op("Add", h1, g.op("ReduceMean", h0, axes=[1], keepdims=1))
    if kind == "batch-mix":  # a scale taken over the whole batch's real tokens
        m = g.op("Unsqueeze", g.op("Cast", "attention_mask", to=TensorProto.FLOAT),
                 g.const(np.array([2], np.int64)))
        peak = g.op("ReduceMax", g.op("Abs", g.op("Mul", h0, m)), keepdims=0)
        h1 = g.op("Mul", h1, g.op("Add", g.const(np.float32(1)), g.op("Mul", peak, g.const(np.float32(0.1)))))
    if kind == "reshape-mix":  # an export's bug: Reshape [B, T, H] -> [T, B, H] where a Transpose belonged
        shape = g.op("Shape", h1)
        dims = [g.op("Gather", shape, g.const(np.array([k], np.int64)), axis=0) for k in (1, 0, 2)]
        mixed = g.op("Reshape", h1, g.op("Concat", *dims, axis=0))
        h1 = g.op("Tanh", g.op("Transpose", mixed, perm=[1, 0, 2]))
    return g.model({"last_hidden_state": h1, "hidden_states.0": h0, "hidden_states.1": h1})


KINDS = ("honest", "honest-matmul", "positional", "leaky", "ignores-mask", "nan", "batch-mix",
         "dynamic", "qdq-mask", "qdq-activation", "reshape-mix")


def vocab_size(tokenizer_dir: Path) -> int:
    vocab = json.loads((tokenizer_dir / "tokenizer.json").read_text())["model"]["vocab"]
    return max(vocab.values()) + 1


def make(kind: str, out: Path, tokenizer_dir: Path) -> Path:
    """Write toy ``kind`` to out/model.onnx with the tokenizer; returns ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        shutil.copy(tokenizer_dir / name, out / name)
    if kind == "dynamic":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        # pad embeddings 50x larger: pads dominate DynamicQuantizeLinear's whole-tensor scale
        onnx.save(build("dynamic", vocab_size(tokenizer_dir)), out / "fp32.onnx")
        quantize_dynamic(str(out / "fp32.onnx"), str(out / "model.onnx"), weight_type=QuantType.QInt8)
        (out / "fp32.onnx").unlink()
    else:
        onnx.save(build(kind, vocab_size(tokenizer_dir)), out / "model.onnx")
    return out


def export_dir(out: Path, tokenizer_dir: Path, variants: dict[str, onnx.ModelProto]) -> Path:
    """An export-like folder: padlens.json listing ``variants`` (precision -> model)."""
    out.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        shutil.copy(tokenizer_dir / name, out / name)
    precisions = {}
    for precision, model in variants.items():
        file = "model.onnx" if precision == "fp32" else f"model.{precision}.onnx"
        onnx.save(model, out / file)
        precisions[precision] = {"file": file}
    manifest = {"format": 1, "pooling": "mean", "normalize": True, "pad_token_id": PAD_ID,
                "precisions": precisions}
    (out / "padlens.json").write_text(json.dumps(manifest))
    return out


def perturbed(model: onnx.ModelProto, scale: float, seed: int = 1) -> onnx.ModelProto:
    """A copy whose word embeddings carry relative noise ``scale`` (a stand-in for a worse precision)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    rng = np.random.default_rng(seed)
    for init in m.graph.initializer:
        if init.name == "word_embeddings":
            arr = numpy_helper.to_array(init)
            noisy = (arr + scale * rng.normal(size=arr.shape) * np.abs(arr).mean()).astype(np.float32)
            init.CopyFrom(numpy_helper.from_array(noisy, init.name))
    return m
