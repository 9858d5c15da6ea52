"""Which MatMuls int8-static may quantize, read from the graph padlens already reads, never from node names."""
from __future__ import annotations

import logging
from dataclasses import dataclass

import onnx

from padlens.inspector.model.locate import Graph

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    """The MatMuls of one graph, split into those int8-static quantizes and those kept float.

    Attributes:
        quantized: MatMul nodes whose every input is a weight or computed from the token ids.
        kept_float: MatMul node -> why it stays float: an input computed from the attention
            mask, the positions or the shapes alone (the additive mask, a causal mask, rotary
            angles), whose values (near float32 min, or large positions) no int8 scale holds.
        residual: the located residual-stream tensors (embeddings, every block's output); only
            MatMuls read them quantized, every other consumer reads them float.
    """

    quantized: tuple[str, ...]
    kept_float: dict[str, str]
    residual: tuple[str, ...]


def token_derived(g: Graph, token_inputs: list[str]) -> set[str]:
    """Every tensor computed from the token ids (the inputs named), in one topological pass."""
    derived = set(token_inputs)
    for node in sorted(g.nodes, key=lambda n: min((g.order.get(o, -1) for o in n.output if o), default=-1)):
        if any(i in derived for i in node.input if i):
            derived.update(o for o in node.output if o)
    return derived


def why_float(g: Graph, node: onnx.NodeProto, derived: set[str], inputs: dict[str, str]) -> str | None:
    """Why a MatMul stays float (an input not a weight and not from the token ids), or None."""
    for name in node.input:
        if not name or g.is_const(name) or name in derived:
            continue
        roots = sorted(inputs[a] for a in g.ancestors(name) if a in inputs) or ["shapes and constants"]
        return f"input {name!r} is computed from {', '.join(roots)} alone"
    return None


def plan_matmuls(model: onnx.ModelProto, inputs: list, residual: list[str]) -> Plan:
    """Split ``model``'s MatMuls (``inputs``: the recognised graph inputs with their roles)."""
    g = Graph(model)
    roles = {spec.name: spec.role for spec in inputs}
    derived = token_derived(g, [name for name, role in roles.items() if role == "input_ids"])
    quantized, kept = [], {}
    for node in g.nodes:
        if node.op_type != "MatMul":
            continue
        reason = why_float(g, node, derived, roles)
        if reason is None:
            quantized.append(node.name)
        else:
            kept[node.name] = reason
    log.info("int8-static plan: %d MatMuls quantized, %d kept float", len(quantized), len(kept))
    return Plan(tuple(quantized), kept, tuple(residual))


def float_matmuls(path) -> Plan:
    """The plan for the encoder at ``path``: its inputs recognised and its layers located."""
    from padlens.inspector.model.graph import load_encoder

    graph = load_encoder(path)
    return plan_matmuls(graph.model, graph.inputs, list(graph.layers.hidden))
