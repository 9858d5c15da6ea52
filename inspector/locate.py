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


def locate_layers(model: onnx.ModelProto) -> LayerMap:
    """The embedding output and each block's output, found from the graph's structure.

    Outputs named ``hidden_states.0..L`` (padlens exports) are used as they are.
    Otherwise the residual stream is traced back from the token-state output through
    its normalisation nodes, one block per attention op. Raises LayersNotFound.
    """
    g = Graph(model)
    named = named_layers(model)
    if named:
        attn = [n for n in find_attention(g) if n.output[0] in g.ancestors(named[-1])]
        probs = attention_probs(attn, len(named) - 1)
        return LayerMap(named, probs, "named", hidden_size(g, model, named[0]))
    out = token_output(model)
    if out is None:
        raise LayersNotFound("no [batch, sequence, hidden] float output to trace the layers "
                             f"back from; searched for {SEARCHED}. Name the tensors with "
                             "--layers NAME,...")
    return trace_layers(g, model, out)


def named_layers(model: onnx.ModelProto) -> list[str]:
    """Outputs hidden_states.0 … hidden_states.L when all are there, else []."""
    found = {}
    for out in model.graph.output:
        match = NAMED.match(out.name)
        if match:
            found[int(match.group(1))] = out.name
    if len(found) < 2 or sorted(found) != list(range(len(found))):
        return []
    return [found[i] for i in range(len(found))]


def token_output(model: onnx.ModelProto) -> str | None:
    """The first float output of rank 3 (or of unknown rank): the token states."""
    floats = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16}
    for out in model.graph.output:
        ttype = out.type.tensor_type
        rank = len(ttype.shape.dim) if ttype.HasField("shape") else None
        if ttype.elem_type in floats and rank in (3, None):
            return out.name
    return None


def trace_layers(g: Graph, model: onnx.ModelProto, out: str) -> LayerMap:
    """Walk back from ``out``: per attention op, the deepest norm before it; then the last."""
    above = g.ancestors(out)
    norms = {n: kind for n, kind in find_norms(g).items() if n in above}
    attn = [n for n in find_attention(g) if n.output[0] in above]
    if not norms or not attn:
        what = "normalisation nodes" if not norms else "attention ops"
        raise LayersNotFound(f"found no {what} behind output {out!r}; searched for {SEARCHED}. "
                             "Name the tensors with --layers NAME,...")
    hidden = [deepest(g, [n for n in norms if n in g.ancestors(a.output[0])]) for a in attn]
    hidden.append(deepest(g, list(norms)))
    verify_chain(g, hidden, attn, out)
    kinds = {norms[h] for h in hidden}
    style = ("ort-fused" if "ort-fused" in kinds else
             "decomposed-layernorm" if "decomposed" in kinds else "layernorm")
    log.info("located %d layers (%s) behind %s", len(hidden), style, out)
    return LayerMap(hidden, attention_probs(attn, len(attn)), style,
                    hidden_size(g, model, hidden[0]))


def verify_chain(g: Graph, hidden: list[str | None], attn: list, out: str) -> None:
    """Each state feeds the next, one attention op between them, and a residual sum."""
    def fail(why: str):
        raise LayersNotFound(f"the normalisation nodes behind {out!r} do not form one residual "
                             f"chain with {len(attn)} attention ops ({why}); searched for "
                             f"{SEARCHED}. Name the tensors with --layers NAME,...")

    if None in hidden or len(set(hidden)) != len(hidden):
        fail("no single latest norm before some attention op")
    for i, node in enumerate(attn):
        before, after = g.ancestors(hidden[i]), g.ancestors(hidden[i + 1])
        if hidden[i] not in after or node.output[0] not in after or node.output[0] in before:
            fail(f"block {i + 1} is not delimited by its attention op")
        if not feeds_residual(g, hidden[i]):
            fail(f"{hidden[i]!r} feeds no residual sum: a pre-LN encoder?")


def feeds_residual(g: Graph, name: str) -> bool:
    """``name`` (through casts/Q-DQ) is summed into a residual: Add or SkipLayerNorm."""
    stack, seen = [name], set()
    while stack:
        for user in g.consumers.get(stack.pop(), []):
            if user.op_type in ("Add", "Sum") or user.op_type.startswith("Skip"):
                return True
            if user.op_type in PASS_THROUGH and user.output[0] not in seen:
                seen.add(user.output[0])
                stack.append(user.output[0])
    return False


def attention_probs(attn: list[onnx.NodeProto], blocks: int) -> list[str]:
    """Softmax outputs, one per block, when every attention op is an explicit Softmax."""
    if len(attn) != blocks or any(n.op_type != "Softmax" for n in attn):
        return []
    return [n.output[0] for n in attn]


def hidden_size(g: Graph, model: onnx.ModelProto, name: str) -> int | None:
    """Width of the states: declared shape, else the norm's 1-D scale, else None."""
    for info in [*model.graph.output, *model.graph.value_info]:
        dims = info.type.tensor_type.shape.dim
        if info.name == name and dims and dims[-1].HasField("dim_value"):
            return dims[-1].dim_value
    node = g.producer.get(name)
    while node is not None:
        for inp in node.input[1:]:
            dims = g.const_dims(inp) if inp else None
            if dims is not None and len(dims) == 1 and dims[0] > 1:
                return dims[0]
        node = g.producer.get(node.input[0]) if node.op_type in PASS_THROUGH else None
    return None
