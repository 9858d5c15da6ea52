"""Where reference_drift enters: the first tensor of the first drifting layer at which a converted or
quantized copy leaves the fp32 reference, and the nodes of the copy that compute it.

Run only when reference_drift fails. Both graphs (the reference and the compared copy) expose every
tensor of that layer (``trace.layer_nodes``); the text the check found worst runs alone through both.
Tensors are matched between the graphs:

- by name: ONNX Runtime's ``quantize_dynamic``/``quantize_static`` and ``convert_float_to_float16``
  keep the original tensor names (a quantized MatMul's output keeps its name on the Mul that rescales
  it; their own tensors get suffixes: ``_quantized``, ``_QuantizeLinear``, ``_DequantizeLinear``);
- through a Cast: a float16 copy made with ``keep_io_types`` computes a graph output under a new name
  (``graph_output_cast_1``) and casts it to the output's name;
- by position: a node whose outputs keep no name is matched with the compared layer's node of the
  same op type at the same place among them (said in ``matched``).

Reference tensors are visited in graph order. A matched tensor *drifts* when its real tokens differ by
more than ``MOVED_SHARE`` of the check's tolerance (in 1 − cos, the lowest cosine of one token's
row); it is where the drift *enters* when the nodes of the copy that compute it from matched tensors
(``computed_by``: a DynamicQuantizeLinear, MatMulInteger, Cast and Mul where the reference has one
MatMul) also drift when run alone on the reference's values of their inputs (the local error). The
first that does is named; failing that, the first that drifts. Errors are reported as in
``trace.LeakNode``: max |Δ| of the real tokens relative to the reference's largest |value|.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper

from padlens.inspector.audit import trace as tr
from padlens.inspector.audit.compare import cosines
from padlens.inspector.audit.trace import Side, error, layer_nodes, real_parts

log = logging.getLogger(__name__)

#: a tensor drifts when its 1 − min token cos exceeds this share of the check's 1 − min cos
MOVED_SHARE = 0.01
#: ops that only carry a value on (never named as where drift enters when another op is there)
CARRIERS = {"Cast", "Identity", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten"}


@dataclass(frozen=True)
class DriftNode(tr.LeakNode):
    """Where a compared copy leaves the reference: the first drifting node of its first drifting layer.

    A ``trace.LeakNode`` (its seven attributes are what the report and the JSON ``node`` read), and more.

    Attributes:
        layer: the layer (the first where the worst text's real tokens drift beyond the tolerance).
        name: the compared graph's node named (the first of ``computed_by`` the reference has no
            counterpart of: a DynamicQuantizeLinear, a QuantizeLinear; else the tensor's producer).
        op_type: its op type.
        inputs: its input tensors.
        tensor: the matched tensor (its name in the compared graph).
        local_error: max |Δ| of that tensor's real tokens when ``computed_by`` runs alone on the
            reference's values of its inputs (relative to the reference's largest |value|); None when
            those nodes cannot run alone.
        accumulated_error: max |Δ| of that tensor's real tokens in the compared run (same scale).
        reference: the reference graph's node producing the tensor (``MatMul '/q/MatMul'``).
        reference_tensor: the tensor's name in the reference graph.
        matched: how the tensor was matched: ``name``, ``cast`` (through a Cast of the compared
            graph) or ``position`` (the same op type at the same place: names differ).
        computed_by: the op types of the compared graph's nodes computing the tensor from matched
            tensors, in graph order.
        drift: 1 − the lowest cosine of one real token's row of the tensor (the tolerance's unit).
    """

    reference: str = ""
    reference_tensor: str = ""
    matched: str = "name"
    computed_by: tuple[str, ...] = ()
    drift: float = 0.0

    def words(self) -> str:
        """``the drift enters at DynamicQuantizeLinear node 'X' (inputs a) in layer 1, computing 't'
        (…) matched by name to MatMul '…' of the reference: local error …, accumulated …``."""
        local = "n/a" if self.local_error is None else f"{self.local_error:.3g}"
        how = {"name": "by name", "cast": "through a Cast", "position": "by position (names differ)"}[self.matched]
        return (f"the drift enters at {self.op_type} node {self.name!r} (inputs {', '.join(self.inputs)}) in layer "
                f"{self.layer}, computing {self.tensor!r} ({' → '.join(self.computed_by)}) matched {how} to "
                f"{self.reference} of the reference: local error {local}, accumulated "
                f"{self.accumulated_error:.3g} (max |Δ| of real tokens / max |value|), 1 − min token cos "
                f"{self.drift:.3g}")


@dataclass(frozen=True)
class Match:
    """One reference tensor and its counterpart in the compared graph.

    Attributes:
        ref_node: the reference node producing it.
        ref: its name in the reference graph.
        var: its name in the compared graph.
        how: ``name``, ``cast`` or ``position``.
    """

    ref_node: onnx.NodeProto
    ref: str
    var: str
    how: str


# --------------------------------------------------------------------------- matching tensors


def _producers(nodes: Sequence[onnx.NodeProto]) -> dict[str, onnx.NodeProto]:
    return {o: n for n in nodes for o in n.output if o}


def _cast_aliases(model: onnx.ModelProto) -> dict[str, str]:
    """Per tensor of ``model`` produced or consumed by a Cast: the tensor on the Cast's other side."""
    out: dict[str, str] = {}
    for n in model.graph.node:
        if n.op_type == "Cast" and n.input and n.output:
            out.setdefault(n.input[0], n.output[0])
            out.setdefault(n.output[0], n.input[0])
    return out


def match_tensors(ref_nodes: Sequence[onnx.NodeProto], var_model: onnx.ModelProto,
                  var_nodes: Sequence[onnx.NodeProto], hidden: tuple[str, str], floats) -> list[Match]:
    """The reference layer's float outputs with their counterparts in the compared graph, in the
    reference's order: by name, through a Cast, else by position among nodes of one op type.
    ``hidden`` is the layer's output in (reference, compared): always matched."""
    var_produced = {o for n in var_model.graph.node for o in n.output if o}
    casts = _cast_aliases(var_model)
    by_op: dict[str, list[onnx.NodeProto]] = {}
    for n in var_nodes:
        by_op.setdefault(n.op_type, []).append(n)
    ref_count: dict[str, int] = {}
    for n in ref_nodes:
        ref_count[n.op_type] = ref_count.get(n.op_type, 0) + 1
    by_op = {op: ns for op, ns in by_op.items() if len(ns) == ref_count.get(op)}  # position needs one count
    seen_op: dict[str, int] = {}
    out = []
    for node in ref_nodes:
        place = seen_op.get(node.op_type, 0)
        seen_op[node.op_type] = place + 1
        for slot, name in enumerate(node.output):
            if not name or not floats(name):
                continue
            found = _counterpart(name, slot, node, place, hidden, var_produced, casts, by_op)
            if found is not None:
                out.append(Match(node, name, *found))
    return out


def _counterpart(name, slot, node, place, hidden, var_produced, casts, by_op) -> tuple[str, str] | None:
    if name == hidden[0]:
        return hidden[1], "name" if hidden[0] == hidden[1] else "position"
    if name in var_produced:
        return name, "name"
    if casts.get(name) in var_produced:
        return casts[name], "cast"
    same = by_op.get(node.op_type, [])
    if place < len(same) and slot < len(same[place].output) and same[place].output[slot]:
        return same[place].output[slot], "position"
    return None


def computed_by(var_nodes: Sequence[onnx.NodeProto], tensor: str, stops: set[str]) -> list[onnx.NodeProto]:
    """The compared layer's nodes computing ``tensor`` back to ``stops`` (matched tensors) and to
    what the layer does not compute (inputs, weights, earlier layers), in graph order."""
    producer = _producers(var_nodes)
    order = {id(n): k for k, n in enumerate(var_nodes)}
    seen: dict[int, onnx.NodeProto] = {}
    todo = [tensor]
    while todo:
        name = todo.pop()
        node = producer.get(name)
        if node is None or id(node) in seen or (name in stops and name != tensor):
            continue
        seen[id(node)] = node
        todo.extend(i for i in node.input if i)
    return sorted(seen.values(), key=lambda n: order[id(n)])


def _named(nodes: Sequence[onnx.NodeProto], ref_op: str) -> onnx.NodeProto:
    """The node to name among ``nodes``: the first whose op the reference's producer is not and that
    does more than carry a value; else the last (the tensor's producer)."""
    for n in nodes:
        if n.op_type != ref_op and n.op_type not in CARRIERS:
            return n
    return nodes[-1]


# --------------------------------------------------------------------------- measuring


def token_drift(ref: np.ndarray, got: np.ndarray) -> float:
    """1 − the lowest cosine of one row (the last axis) between ``ref`` and ``got`` (2 on NaN/Inf)."""
    r = np.asarray(ref, np.float64)
    g = np.asarray(got, np.float64)
    if r.shape != g.shape or not r.size:
        return 0.0
    if not np.isfinite(g).all():
        return 2.0
    width = r.shape[-1] if r.ndim else 1
    return float(1.0 - cosines(r.reshape(-1, width), g.reshape(-1, width)).min())


def _alone(model: onnx.ModelProto, nodes: Sequence[onnx.NodeProto], tensor: str, feeds: dict[str, np.ndarray],
           encoder) -> np.ndarray | None:
    """``tensor`` computed by ``nodes`` alone from ``feeds`` (their weights and Constants copied);
    None when ONNX Runtime cannot build or run them."""
    inits, consts = tr._constants(model)
    made = {o for n in nodes for o in n.output}
    used = list(dict.fromkeys(i for n in nodes for i in n.input if i and i not in made))
    missing = [i for i in used if i not in feeds and i not in inits and i not in consts]
    if missing:
        return None
    graph = helper.make_graph(
        [consts[i] for i in used if i in consts and i not in inits] + list(nodes), "padlens-drift",
        [helper.make_tensor_value_info(i, helper.np_dtype_to_tensor_dtype(feeds[i].dtype), feeds[i].shape)
         for i in used if i in feeds and i not in inits],
        [onnx.ValueInfoProto(name=tensor)], [inits[i] for i in used if i in inits])
    small = helper.make_model(graph, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    try:
        (value,) = tr._session(encoder, small).run([tensor], {i: feeds[i] for i in used if i in feeds and i not in inits},
                                                  "nodes alone")
        return value
    except Exception as exc:  # noqa: BLE001 - nodes that cannot run alone have no local error
        log.info("%s: %s not run alone: %s", encoder.label, tensor, exc)
        return None


def _reference_feeds(nodes, got_var: dict, got_ref: dict, aliases: dict[str, str], casts: dict[str, str]
                     ) -> dict[str, np.ndarray]:
    """The inputs of ``nodes`` from the reference run where the reference has them (by the match, by
    name or through a Cast), in the compared graph's dtype; else the compared run's own."""
    made = {o for n in nodes for o in n.output}
    feeds = {}
    for name in dict.fromkeys(i for n in nodes for i in n.input if i and i not in made):
        if name not in got_var:
            continue
        own = np.asarray(got_var[name])
        ref_name = aliases.get(name, name if name in got_ref else casts.get(name))
        ref = got_ref.get(ref_name) if ref_name is not None else None
        if ref is not None and np.shape(ref) == own.shape and own.dtype.kind == "f" and np.asarray(ref).dtype.kind == "f":
            feeds[name] = np.asarray(ref).astype(own.dtype)
        else:
            feeds[name] = own
    return feeds


def trace_drift(ref_encoder, var_encoder, layer: int, side: Side, tol_cos: float) -> DriftNode | None:
    """The first tensor of ``layer`` at which ``var_encoder`` (a converted or quantized copy) leaves
    ``ref_encoder`` (the fp32 reference) on ``side``'s batch, with the compared graph's nodes computing
    it; None when the graphs were not kept, or no matched tensor drifts."""
    ref_model, var_model = ref_encoder.graph.model, var_encoder.graph.model
    if ref_model is None or var_model is None:
        return None
    ref_hidden, var_hidden = list(ref_encoder.graph.layers.hidden), list(var_encoder.graph.layers.hidden)
    ref_nodes, var_nodes = layer_nodes(ref_model, ref_hidden, layer), layer_nodes(var_model, var_hidden, layer)
    types = tr._elem_types(ref_model)
    matches = match_tensors(ref_nodes, var_model, var_nodes, (ref_hidden[layer], var_hidden[layer]),
                            lambda t: types.get(t, onnx.TensorProto.FLOAT) in tr.COMPARED)
    if not matches:
        return None
    got_ref, got_var = _run_both(ref_encoder, var_encoder, ref_model, var_model, ref_nodes, var_nodes, matches, side)
    moved = MOVED_SHARE * max(1.0 - tol_cos, 1e-12)
    stops = {m.var for m in matches}
    aliases, casts = {m.var: m.ref for m in matches}, _cast_aliases(var_model)
    first = None
    for m in matches:
        parts = real_parts(got_ref[m.ref], got_var[m.var], side, side)
        if parts is None or token_drift(*parts) <= moved:
            continue
        nodes = computed_by(var_nodes, m.var, stops)
        if not nodes:
            continue
        alone = _alone(var_model, nodes, m.var, _reference_feeds(nodes, got_var, got_ref, aliases, casts), var_encoder)
        local = None if alone is None else real_parts(got_ref[m.ref], alone, side, side)
        found = _node(layer, m, nodes, parts, local)
        if local is None or token_drift(*local) > moved:
            return found
        first = first or found
    return first


def _node(layer: int, m: Match, nodes, parts, local) -> DriftNode:
    named = _named(nodes, m.ref_node.op_type)
    return DriftNode(layer, named.name, named.op_type, tuple(i for i in named.input if i), m.var,
                     None if local is None else error(*local), error(*parts) or 0.0,
                     f"{m.ref_node.op_type} {m.ref_node.name!r}", m.ref, m.how, tuple(n.op_type for n in nodes),
                     token_drift(*parts))


def _run_both(ref_encoder, var_encoder, ref_model, var_model, ref_nodes, var_nodes, matches, side: Side):
    """Every tensor the layer reads or computes, in both graphs, on ``side``'s batch."""
    def names(model, nodes, extra):
        inits, consts = tr._constants(model)
        made = {o for n in model.graph.node for o in n.output} | {i.name for i in model.graph.input}
        return list(dict.fromkeys(t for t in (*(x for n in nodes for x in (*n.input, *n.output)), *extra)
                                  if t and t in made and t not in inits and t not in consts))

    (got_ref,) = tr._run_exposed(ref_encoder, names(ref_model, ref_nodes, [m.ref for m in matches]), [side])
    (got_var,) = tr._run_exposed(var_encoder, names(var_model, var_nodes, [m.var for m in matches]), [side])
    return got_ref, got_var
