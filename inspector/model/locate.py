"""Find an encoder's residual-stream block outputs structurally, whatever the node names."""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import onnx

from padlens.errors import LayersNotFound, Param, words

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
SEARCHED = ("post-norm blocks (LayerNormalization, plain or ORT Skip/Embed fused, or decomposed "
            "ReduceMean-Sub-Pow-ReduceMean-Sqrt-Div, one per residual step) or a pre-norm residual "
            "chain (Add or Skip[Simplified]LayerNormalization sums, a LayerNorm or RMSNorm before "
            "the output), delimited by attention (Softmax over keys, or a fused Attention op)")


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
        final_norm: pre-norm graphs (ModernBERT, Qwen, Llama): the output of the norm after
            the last block. As in Hugging Face's ``output_hidden_states``, it is also
            ``hidden[-1]``; None in post-norm graphs, whose blocks end in their own norm.
        before_final_norm: pre-norm graphs: the residual stream entering the final norm (the
            last block's raw output), None where there is no final norm or the graph does not
            hold it as one tensor (a fused SkipSimplifiedLayerNormalization).
    """

    hidden: list[str]
    attention: list[str] = field(default_factory=list)
    style: str = "layernorm"
    hidden_size: int | None = None
    final_norm: str | None = None
    before_final_norm: str | None = None


class Graph:
    """Producer/consumer maps over a graph's main body, with cached ancestry."""

    def __init__(self, model: onnx.ModelProto, folder: Path | None = None):
        self.graph = model.graph
        self.folder = folder  # where external data lies (``structure.const_value`` reads small tensors)
        self.nodes = list(model.graph.node)
        self.producer = {o: n for n in self.nodes for o in n.output if o}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in self.nodes:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.inits = {t.name: t for t in model.graph.initializer}
        self._anc: dict[str, frozenset[str]] = {}
        self.order = topological_order(self.nodes, self.producer)

    def depends(self, name: str, on: str) -> bool:
        """Whether ``on`` is an ancestor of ``name`` (or ``name`` itself), searching only the
        tensors computed after ``on``: cheap when both are close in the graph."""
        if name == on:
            return True
        if name in self._anc:
            return on in self._anc[name]
        limit, seen, stack = self.order.get(on, -1), {name}, [name]
        while stack:
            node = self.producer.get(stack.pop())
            for inp in node.input if node is not None else ():
                if inp == on:
                    return True
                if inp and inp not in seen and self.order.get(inp, -1) > limit:
                    seen.add(inp)
                    stack.append(inp)
        return False

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


def topological_order(nodes: list[onnx.NodeProto], producer: dict) -> dict[str, int]:
    """Tensor -> rank of its producer in a topological order (Kahn); inputs and weights -1."""
    waiting = {id(n): sum(1 for i in set(n.input) if i in producer) for n in nodes}
    users: dict[str, list[onnx.NodeProto]] = {}
    for node in nodes:
        for name in set(node.input):
            if name in producer:
                users.setdefault(name, []).append(node)
    ready = [n for n in nodes if waiting[id(n)] == 0]
    order: dict[str, int] = {}
    while ready:
        node = ready.pop()
        rank = len(order)
        for out in node.output:
            order[out] = rank
            for user in users.get(out, ()):
                waiting[id(user)] -= 1
                if waiting[id(user)] == 0:
                    ready.append(user)
    return order


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
    """Softmax nodes and fused attention ops, in topological order."""
    found = [n for n in g.nodes
             if (n.op_type in ("Softmax", "Attention") and n.domain in ("", "ai.onnx"))
             or (n.op_type in FUSED_ATTENTION and n.domain == MS)]
    return sorted(found, key=lambda n: g.order.get(n.output[0], -1))


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
        final, before = final_norm_of(g, model)
        return LayerMap(named, probs, "named", hidden_size(g, model, named[0]), final, before)
    out = token_output(model)
    if out is None:
        raise LayersNotFound("no [batch, sequence, hidden] float output to trace the layers "
                             f"back from; searched for {SEARCHED}. ", *LAYERS_HINT)
    try:
        return trace_layers(g, model, out)
    except LayersNotFound as post_norm:
        try:
            return trace_residual(g, model, out)
        except LayersNotFound as pre_norm:
            raise LayersNotFound(*_both_readings(str(post_norm), str(pre_norm))) from None


LAYERS_HINT = ("Name the tensors with ", Param("layers", meta="[NAME, ...]", cli_meta="NAME,..."))


def _both_readings(post_norm: str, pre_norm: str) -> tuple:
    """One message for a graph that is neither post-norm nor pre-norm, the layers hint last."""
    def bare(text: str) -> str:
        return text.replace(words(LAYERS_HINT), "").strip().rstrip(".")
    return (f"{bare(post_norm)}; read as a pre-norm graph: {bare(pre_norm)}. ", *LAYERS_HINT)


def final_norm_of(g: Graph, model: onnx.ModelProto) -> tuple[str | None, str | None]:
    """(final_norm, before_final_norm) of a pre-norm graph read by its names; Nones otherwise."""
    out = token_output(model)
    try:
        traced = trace_residual(g, model, out) if out is not None else None
    except LayersNotFound:
        return None, None
    return (traced.final_norm, traced.before_final_norm) if traced else (None, None)


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
    """The first float output of rank 3 (or of unknown rank): the token states; for a causal-LM
    graph whose output is ``logits``, the states its language-model head reads (``lm_head_input``)."""
    floats = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16}
    for out in model.graph.output:
        ttype = out.type.tensor_type
        rank = len(ttype.shape.dim) if ttype.HasField("shape") else None
        if ttype.elem_type in floats and rank in (3, None):
            return lm_head_input(model, out.name) or out.name
    return None


def lm_head_input(model: onnx.ModelProto, name: str) -> str | None:
    """The tensor a ``logits`` output's head (MatMul or Gemm by a weight) projects, else None."""
    if name != "logits":
        return None
    consts = {t.name for t in model.graph.initializer}
    consts |= {o for n in model.graph.node if n.op_type in ("Constant", "Transpose", "DequantizeLinear")
               and all(i in consts or not i for i in n.input) for o in n.output}
    node = next((n for n in model.graph.node if name in n.output), None)
    if node is None or node.op_type not in ("MatMul", "Gemm") or len(node.input) < 2 or node.input[1] not in consts:
        return None
    return node.input[0]


def trace_layers(g: Graph, model: onnx.ModelProto, out: str) -> LayerMap:
    """Walk back from ``out``: per attention op, the deepest norm before it; then the last."""
    above = g.ancestors(out)
    norms = {n: kind for n, kind in find_norms(g).items() if n in above}
    attn = [n for n in find_attention(g) if n.output[0] in above]
    if not norms or not attn:
        what = "normalisation nodes" if not norms else "attention ops"
        raise LayersNotFound(f"found no {what} behind output {out!r}; searched for {SEARCHED}. ", *LAYERS_HINT)
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
                             f"{SEARCHED}. ", *LAYERS_HINT)

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


# ---------------------------------------------------------------- pre-norm graphs
# ModernBERT, Qwen2/3, Llama: each block adds attn(norm(x)) then mlp(norm(x)) to the residual
# stream x, and one norm follows the last block. The stream is the chain of residual sums.

SKIP_SUM = 3  # output of Skip[Simplified]LayerNormalization holding input + skip (+ bias)
RMS_OPS = {"SimplifiedLayerNormalization", "RMSNormalization", "SkipSimplifiedLayerNormalization"}


@dataclass(frozen=True)
class Step:
    """One residual sum of the stream: ``out = stream + branch``.

    Attributes:
        stream: the stream tensor entering the sum.
        branch: what the block adds (attention or MLP output).
        fused: the sum is inside an ORT Skip*LayerNormalization node.
    """

    stream: str
    branch: str
    fused: bool = False


def trace_residual(g: Graph, model: onnx.ModelProto, out: str) -> LayerMap:
    """Walk the residual sums back from ``out``: one block per sum whose branch holds attention.

    Numbering follows Hugging Face's ``output_hidden_states`` (transformers 4.57): [0] is the
    stream entering the first block (the embedding output), [i] the stream entering block i+1.
    The last entry differs by family, as in Hugging Face: RMSNorm decoders (Qwen2/3, Llama)
    report the final norm's output (their ``hidden_states[-1]`` is ``last_hidden_state``);
    LayerNorm pre-norm encoders (ModernBERT) report the last block's raw output, before the
    final norm, except where ONNX Runtime fused the last sum into that norm (no such tensor:
    the final norm's output then, with a warning). Both are kept in ``final_norm`` and
    ``before_final_norm``.
    """
    end = through(g, out)
    final, kind, stream, steps = final_norm_steps(g, end)
    attn = [n for n in find_attention(g) if g.depends(out, n.output[0])]
    if not steps or not attn:
        what = "residual sums" if not steps else "attention ops"
        raise LayersNotFound(f"found no {what} behind output {out!r}")
    hidden = block_inputs(g, steps, attn, out)
    before = stream if final is not None else None
    rms = "rmsnorm" in kind
    if not rms and final is not None and before is None:
        log.warning("%s: the last residual sum is fused into the final norm, so the last layer "
                    "is the final norm's output (Hugging Face takes it before that norm)", out)
    hidden.append(before if before is not None and not rms else end)
    style = "ort-fused" if any(st.fused for st in steps) or kind.startswith("ort-fused") else kind
    log.info("located %d pre-norm layers (%s) behind %s", len(hidden), style, out)
    return LayerMap(hidden, attention_probs(attn, len(attn)), style,
                    hidden_size(g, model, hidden[0]) or hidden_size(g, model, hidden[-1]),
                    final_norm=final, before_final_norm=before)


def final_norm_steps(g: Graph, end: str) -> tuple[str | None, str, str | None, list[Step]]:
    """(final norm output or None, norm kind, stream entering the final norm or None when it is
    not one tensor, residual steps in graph order) for the token states ``end``."""
    source = norm_source(g, end)
    if source is None:
        return None, "pre-norm", None, residual_chain(g, end)
    kind, node, stream = source
    if node is not None:  # fused Skip*Norm: the last sum lives inside the final norm
        pair = split_sum(g, node.input[0], node.input[1])
        if pair is None:
            return end, kind, None, []
        last = Step(pair[0], pair[1], fused=True)
        return end, kind, None, [*residual_chain(g, pair[0]), last]
    return end, kind, through(g, stream), residual_chain(g, stream)


def through(g: Graph, name: str, qdq: bool = False) -> str:
    """``name`` with Identity and Cast producers walked back (and Q/DQ pairs with ``qdq``)."""
    ops = PASS_THROUGH if qdq else {"Identity", "Cast"}
    node = g.producer.get(name)
    while node is not None and node.op_type in ops and node.input:
        name = node.input[0]
        node = g.producer.get(name)
    return name


def residual_chain(g: Graph, end: str) -> list[Step]:
    """The residual sums ending at ``end``, first to last; [] when ``end`` is no sum."""
    steps, name = [], through(g, end, qdq=True)
    while True:
        step = residual_step(g, name)
        if step is None:
            return steps[::-1]
        steps.append(step)
        name = through(g, step.stream, qdq=True)


def residual_step(g: Graph, name: str) -> Step | None:
    """The sum producing ``name`` when one addend is an ancestor of the other (x + f(x))."""
    node = g.producer.get(name)
    if node is None:
        return None
    fused = node.domain == MS and node.op_type.startswith("Skip")
    if fused and len(node.output) > SKIP_SUM and node.output[SKIP_SUM] == name:
        pair = split_sum(g, node.input[0], node.input[1])
        return Step(pair[0], pair[1], fused=True) if pair else None
    if node.op_type not in ("Add", "Sum") or len(node.input) != 2:
        return None
    pair = split_sum(g, node.input[0], node.input[1])
    return Step(*pair) if pair else None


def split_sum(g: Graph, a: str, b: str) -> tuple[str, str] | None:
    """(stream, branch) of ``a + b``: the stream is the addend the other is computed from."""
    if g.is_const(a) or g.is_const(b):
        return None
    if _computes(g, a, b):
        return a, b
    if _computes(g, b, a):
        return b, a
    return None


def _computes(g: Graph, a: str, b: str) -> bool:
    """``b`` is computed from ``a``; for a fused Skip*Norm's sum, from its normalised twin."""
    if g.depends(b, a):
        return True
    node = g.producer.get(a)
    fused = node is not None and node.domain == MS and node.op_type.startswith("Skip")
    return fused and any(g.depends(b, o) for o in node.output if o)


def block_inputs(g: Graph, steps: list[Step], attn: list[onnx.NodeProto], out: str) -> list[str]:
    """The stream entering each block: the sum whose branch holds the block's attention op."""
    hidden, owned = [], set()
    for i, step in enumerate(steps):
        after = g.order.get(step.stream, -1)  # ops computed before the stream cannot be new
        new = [a for a in attn if id(a) not in owned and g.order.get(a.output[0], -1) > after
               and g.depends(step.branch, a.output[0]) and not g.depends(step.stream, a.output[0])]
        if len(new) > 1:
            raise LayersNotFound(f"one residual branch of {out!r} holds {len(new)} attention ops")
        if new:
            owned.add(id(new[0]))
            hidden.append(through(g, step.stream))
        elif i == 0:
            raise LayersNotFound(f"the first residual sum behind {out!r} adds no attention output")
    if len(owned) != len(attn):
        raise LayersNotFound(f"{len(attn)} attention ops behind {out!r} but {len(owned)} "
                             "residual sums adding them")
    return hidden


def norm_source(g: Graph, name: str):
    """(kind, fused Skip node or None, input) when ``name`` is a norm's output, else None.

    Walks back the affine tail (Mul by / Add of a constant, casts) to a LayerNormalization,
    SimplifiedLayerNormalization, RMSNormalization, Skip*LayerNormalization, or a decomposed
    LayerNorm (Div(x - mean, Sqrt(var + eps))) or RMSNorm (x * 1/Sqrt(mean(x^2) + eps),
    x / Sqrt(...), Pow(x, 2) or Mul(x, x)).
    """
    node = g.producer.get(name)
    for _ in range(6):
        if node is None:
            return None
        if node.op_type in NORM_OPS and node.output[0] == name:
            return _op_norm(node)
        core = _decomposed_core(g, node)
        if core is not None:
            return core
        name = _affine_input(g, node)
        if name is None:
            return None
        node = g.producer.get(name)
    return None


def _op_norm(node: onnx.NodeProto):
    kind = "rmsnorm" if node.op_type in RMS_OPS else "pre-layernorm"
    if node.domain == MS and node.op_type != "LayerNormalization":
        kind = f"ort-fused-{kind}"
    if node.op_type.startswith("Skip"):
        return kind, node, None
    return kind, None, node.input[0]


def _affine_input(g: Graph, node: onnx.NodeProto) -> str | None:
    """The non-constant input of a cast or of a Mul/Add with a constant, else None."""
    if node.op_type in PASS_THROUGH:
        return node.input[0]
    if node.op_type in ("Mul", "Add") and len(node.input) == 2:
        others = [i for i in node.input if not g.is_const(i)]
        return others[0] if len(others) == 1 else None
    return None


def _decomposed_core(g: Graph, node: onnx.NodeProto):
    """(kind, None, input) when ``node`` is x/Sqrt(..) or x*Reciprocal(Sqrt(..)) of a norm."""
    x, root = None, None
    if node.op_type == "Div":
        x, root = node.input[0], g.producer.get(node.input[1])
    elif node.op_type == "Mul":
        for i, j in ((0, 1), (1, 0)):
            inv = g.producer.get(node.input[j])
            if inv is not None and _is_inverse(g, inv):
                x, root = node.input[i], g.producer.get(inv.input[-1])
                break
    if root is None or root.op_type != "Sqrt" or not _mean_square_of(g, root.input[0], x):
        return None
    sub = g.producer.get(x)
    if sub is not None and sub.op_type == "Sub" and _is_mean_of(g, sub.input[1], sub.input[0]):
        return "decomposed-pre-layernorm", None, sub.input[0]
    return "decomposed-rmsnorm", None, through(g, x)


def _is_inverse(g: Graph, node: onnx.NodeProto) -> bool:
    """Reciprocal(s), or Div(1, s)."""
    if node.op_type == "Reciprocal":
        return True
    return node.op_type == "Div" and g.is_const(node.input[0])


def _mean_square_of(g: Graph, name: str, x: str) -> bool:
    """``name`` is ReduceMean(x^2) (+ eps): x^2 as Pow(x, 2) or Mul(x, x)."""
    node = g.producer.get(name)
    if node is not None and node.op_type == "Add":
        name = next((i for i in node.input if not g.is_const(i)), "")
        node = g.producer.get(name)
    if node is None or node.op_type != "ReduceMean":
        return False
    sq = g.producer.get(node.input[0])
    if sq is None:
        return False
    if sq.op_type == "Pow":
        return through(g, sq.input[0]) == through(g, x)
    return sq.op_type == "Mul" and len({through(g, i) for i in sq.input} | {through(g, x)}) == 1


def _is_mean_of(g: Graph, name: str, x: str) -> bool:
    node = g.producer.get(name)
    return node is not None and node.op_type == "ReduceMean" and node.input[0] == x
