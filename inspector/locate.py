"""Find an encoder's residual-stream block outputs structurally, whatever the node names."""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

import onnx

from padlens.errors import LayersNotFound

log = logging.getLogger(__name__)

MS = "com.microsoft"
FUSED_ATTENTION = {"Attention", "MultiHeadAttention", "PackedAttention",
                   "PackedMultiHeadAttention", "GroupQueryAttention"}
NORM_OPS = {  # op -> index of the normalised output
    "LayerNormalization": 0, "SimplifiedLayerNormalization": 0, "RMSNormalization": 0,
    "SkipLayerNormalization": 0, "SkipSimplifiedLayerNormalization": 0,
    "EmbedLayerNormalization": 0,
}
PASS_THROUGH = {"Identity", "Cast", "QuantizeLinear", "DequantizeLinear"}
NAMED = re.compile(r"^hidden_states[._](\d+)$")
SEARCHED = ("LayerNormalization (plain or ORT Skip/Embed fused) or a decomposed LayerNorm "
            "(ReduceMean-Sub-Pow-ReduceMean-Sqrt-Div), one per residual step, delimited by "
            "attention (Softmax over keys, or a fused Attention op)")


@dataclass
class LayerMap:
    """Where an encoder's layer outputs are.

    Attributes:
        hidden: tensor names: [0] the embedding output, [1..L] the blocks' outputs
            (the residual stream).
        attention: per-block attention probabilities (Softmax over keys, shape
            [batch, heads, T, T]); empty where there are none (fused Attention).
        style: how they were found: "named", "layernorm", "decomposed-layernorm",
            "ort-fused" or "user".
        hidden_size: width of the hidden states, None if unknown.
    """

    hidden: list[str]
    attention: list[str] = field(default_factory=list)
    style: str = "layernorm"
    hidden_size: int | None = None


class Graph:
    """Producer/consumer maps over a graph's main body, with cached ancestry."""

    def __init__(self, model: onnx.ModelProto):
        self.graph = model.graph
        self.nodes = list(model.graph.node)
        self.producer = {o: n for n in self.nodes for o in n.output if o}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in self.nodes:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.inits = {t.name: t for t in model.graph.initializer}
        self._anc: dict[str, frozenset[str]] = {}

    def ancestors(self, name: str) -> frozenset[str]:
        """Every tensor ``name`` depends on, itself included."""
        if name in self._anc:
            return self._anc[name]
        seen, stack = {name}, [name]
        while stack:
            node = self.producer.get(stack.pop())
            for inp in node.input if node is not None else ():
                if inp and inp not in seen:
                    seen.add(inp)
                    stack.append(inp)
        self._anc[name] = frozenset(seen)
        return self._anc[name]

    def is_const(self, name: str) -> bool:
        """An initializer or Constant, possibly cast or dequantised."""
        if name in self.inits:
            return True
        node = self.producer.get(name)
        if node is None:
            return False
        if node.op_type == "Constant":
            return True
        return node.op_type in PASS_THROUGH and all(self.is_const(i) for i in node.input if i)

    def const_dims(self, name: str) -> list[int] | None:
        """Static dims of a constant tensor (through Identity/Cast/DequantizeLinear)."""
        if name in self.inits:
            return list(self.inits[name].dims)
        node = self.producer.get(name)
        if node is None:
            return None
        if node.op_type == "Constant":
            attr = next((a for a in node.attribute if a.name == "value"), None)
            return list(attr.t.dims) if attr is not None else None
        return self.const_dims(node.input[0]) if node.op_type in PASS_THROUGH else None


def find_norms(g: Graph) -> dict[str, str]:
    """Normalised tensors: {tensor name: kind}, kind "layernorm", "ort-fused" or "decomposed"."""
    norms = {}
    for node in g.nodes:
        if node.op_type in NORM_OPS and len(node.output) > NORM_OPS[node.op_type]:
            fused = node.domain == MS and node.op_type != "LayerNormalization"
            norms[node.output[NORM_OPS[node.op_type]]] = "ort-fused" if fused else "layernorm"
        elif node.op_type == "Div" and _is_decomposed_ln(g, node):
            norms[_affine_tail(g, node.output[0])] = "decomposed"
    return norms


def _is_decomposed_ln(g: Graph, div: onnx.NodeProto) -> bool:
    """Div(x - mean(x), Sqrt(...)): the core of a LayerNorm exported before opset 17."""
    sub, sqrt = (g.producer.get(i) for i in div.input[:2])
    if sub is None or sqrt is None or sub.op_type != "Sub" or sqrt.op_type != "Sqrt":
        return False
    mean = g.producer.get(sub.input[1])
    return mean is not None and mean.op_type == "ReduceMean" and mean.input[0] == sub.input[0]


def _affine_tail(g: Graph, name: str) -> str:
    """Follow the LayerNorm's scale (Mul by a constant) and shift (Add of a constant)."""
    for op in ("Mul", "Add"):
        users = g.consumers.get(name, [])
        if len(users) == 1 and users[0].op_type == op:
            other = [i for i in users[0].input if i != name]
            if other and g.is_const(other[0]):
                name = users[0].output[0]
    return name


def find_attention(g: Graph) -> list[onnx.NodeProto]:
    """Softmax nodes and fused attention ops, in graph order."""
    return [n for n in g.nodes
            if (n.op_type == "Softmax" and n.domain in ("", "ai.onnx"))
            or (n.op_type in FUSED_ATTENTION and n.domain == MS)]


def deepest(g: Graph, candidates: list[str]) -> str | None:
    """The candidate that depends on all the others (the latest step of a chain)."""
    if not candidates:
        return None
    best = max(candidates, key=lambda c: len(g.ancestors(c) & set(candidates)))
    return best if set(candidates) <= g.ancestors(best) else None
