"""Where the leak enters: the first node of the first failing layer at which real tokens move.

Run only when an invariance check fails. Every tensor computed inside the first failing layer
(and every tensor its nodes read) is exposed as a graph output (``model.expose``); the failing
variant and its reference run on that graph; the real tokens' part of each tensor is compared
in node order. The first node whose output moves beyond a hundredth of the check's |Δ| tolerance
is the one named, with two errors:

- accumulated: how far its output's real tokens moved (what reached it, and what it added);
- local: the node run alone on the variant's inputs with their real tokens taken from the
  reference run: what the node itself adds (a DynamicQuantizeLinear's scale spans the pads
  and the batch neighbours, so it moves real tokens even when they arrive unchanged).

Errors are max |Δ| over the real tokens relative to the reference's largest |value|.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper

from padlens.inspector.inputs.tokenize import Batch

log = logging.getLogger(__name__)

#: a tensor "moves" when its real tokens change by more than this share of the check's |Δ| tolerance
MOVED_SHARE = 0.01
#: element types compared (floats and 8-bit quantized values; shape and index tensors are not)
COMPARED = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE,
            onnx.TensorProto.BFLOAT16, onnx.TensorProto.UINT8, onnx.TensorProto.INT8}


@dataclass(frozen=True)
class LeakNode:
    """The first node at which real tokens move.

    Attributes:
        layer: the layer it belongs to (the first layer beyond the tolerance).
        name: the node's name.
        op_type: its op type (``DynamicQuantizeLinear``, ``Reshape``, ...).
        inputs: its input tensors.
        tensor: the output whose real tokens moved.
        local_error: max |Δ| of that output's real tokens when the node runs on the reference's
            real-token inputs (relative to the reference's largest |value|); None when it cannot run alone.
        accumulated_error: max |Δ| of that output's real tokens in the failing run (same scale).
    """

    layer: int
    name: str
    op_type: str
    inputs: tuple[str, ...]
    tensor: str
    local_error: float | None
    accumulated_error: float

    def words(self) -> str:
        """``DynamicQuantizeLinear node 'X' (inputs a, b) in layer 1: local error 0.01, accumulated 0.01``."""
        local = "n/a" if self.local_error is None else f"{self.local_error:.3g}"
        return (f"the leak enters at {self.op_type} node {self.name!r} (inputs {', '.join(self.inputs)}) in layer "
                f"{self.layer}: local error {local}, accumulated {self.accumulated_error:.3g} (max |Δ| of real "
                "tokens / max |value|)")


@dataclass(frozen=True)
class Side:
    """One run to compare: a batch, the row of the text in it and where its real tokens are.

    Attributes:
        batch: the batch run.
        row: the text's row.
        n: the text's real tokens.
    """

    batch: Batch
    row: int
    n: int

    def real(self) -> slice:
        width = self.batch.shape[1]
        return slice(0, self.n) if self.batch.side == "right" else slice(width - self.n, width)


# --------------------------------------------------------------------------- the layer's nodes


def layer_nodes(model: onnx.ModelProto, hidden: Sequence[str], layer: int) -> list[onnx.NodeProto]:
    """The nodes computing ``hidden[layer]`` from ``hidden[layer - 1]`` (for layer 0, from the
    inputs), in graph order."""
    producer = {o: i for i, n in enumerate(model.graph.node) for o in n.output}

    def ancestors(name: str) -> set[int]:
        seen, todo = set(), [name]
        while todo:
            i = producer.get(todo.pop())
            if i is None or i in seen:
                continue
            seen.add(i)
            todo.extend(model.graph.node[i].input)
        return seen

    inside = ancestors(hidden[layer]) - (ancestors(hidden[layer - 1]) if layer > 0 else set())
    return [model.graph.node[i] for i in sorted(inside) if model.graph.node[i].op_type != "Constant"]


def _constants(model: onnx.ModelProto) -> tuple[dict[str, onnx.TensorProto], dict[str, onnx.NodeProto]]:
    inits = {t.name: t for t in model.graph.initializer}
    consts = {o: n for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    return inits, consts


def _elem_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every tensor shape inference can type (graph inputs, outputs, values)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # noqa: BLE001 - inference fails on some contrib ops; untyped tensors stay compared
        inferred = model
    infos = [*inferred.graph.input, *inferred.graph.output, *inferred.graph.value_info]
    return {v.name: v.type.tensor_type.elem_type for v in infos if v.type.HasField("tensor_type")}


# --------------------------------------------------------------------------- comparing real tokens


def _batch_axis(shape: tuple[int, ...], rows: int, width: int) -> int | None:
    """The axis holding the batch's rows: the first of size ``rows`` that is not the token axis
    (a ``[T, B, H]`` reshape keeps its rows on axis 1)."""
    sizes = [k for k, size in enumerate(shape) if size == rows]
    plain = [k for k in sizes if shape[k] != width]
    return (plain or sizes or [None])[0]


def _pair_index(ref_shape: tuple[int, ...], var_shape: tuple[int, ...], ref: Side, var: Side
                ) -> tuple[tuple, tuple] | None:
    """Indexes of the text's real tokens in a tensor of the reference's run and of the variant's,
    or None when the tensor has no batch axis (a scale, a shape, a reshaped [B·T, H]). An axis holds
    tokens when it is as long as each run's batch is wide (in both runs); a row without a token axis
    (a mean over the sequence, [B, 1, H]) is compared whole."""
    if len(ref_shape) != len(var_shape) or len(ref_shape) < 2:
        return None
    (ref_rows, ref_width), (var_rows, var_width) = ref.batch.shape, var.batch.shape
    ref_axis, var_axis = _batch_axis(ref_shape, ref_rows, ref_width), _batch_axis(var_shape, var_rows, var_width)
    if ref_axis is None or ref_axis != var_axis:
        return None
    ref_index, var_index = [], []
    for k, (r, v) in enumerate(zip(ref_shape, var_shape)):
        if k == ref_axis:
            ref_index.append(ref.row)
            var_index.append(var.row)
        elif r == ref_width and v == var_width:
            ref_index.append(ref.real())
            var_index.append(var.real())
        elif r == v:
            ref_index += [slice(None)]
            var_index += [slice(None)]
        else:
            return None
    return tuple(ref_index), tuple(var_index)


def real_parts(ref_value: np.ndarray, var_value: np.ndarray, ref: Side, var: Side
               ) -> tuple[np.ndarray, np.ndarray] | None:
    """The text's real tokens' part of one tensor in the reference's run and in the variant's: its
    row (on the axis holding the batch), its real positions on every token axis; None when the
    tensor has no batch and token axes."""
    found = _pair_index(np.shape(ref_value), np.shape(var_value), ref, var)
    if found is None:
        return None
    return np.asarray(ref_value)[found[0]], np.asarray(var_value)[found[1]]


def error(ref: np.ndarray, got: np.ndarray) -> float | None:
    """max |got − ref| relative to max |ref| (inf on NaN); None when the shapes differ (not comparable)."""
    if ref.shape != got.shape:
        return None
    r, g = ref.astype(np.float64), got.astype(np.float64)
    if not np.isfinite(g).all():
        return float("inf")
    scale = float(np.abs(r).max()) if r.size else 0.0
    return float(np.abs(g - r).max()) / (scale if scale > 0 else 1.0) if r.size else 0.0


# --------------------------------------------------------------------------- running


def _session(encoder, model: onnx.ModelProto | None = None, added: onnx.ModelProto | None = None):
    """A session run as ``encoder``'s is: over ``model`` built in memory, or over the encoder's own
    graph (weights read in place) with ``added`` to it."""
    from padlens.inspector.runtime.session import create_session

    return create_session(encoder.graph if model is None else model, encoder.session.options, added=added)


def _run_exposed(encoder, names: list[str], sides: Sequence[Side]) -> list[dict[str, np.ndarray]]:
    """``names`` fetched from the graph with them exposed, on each side's batch."""
    from padlens.inspector.model.expose import output_delta

    delta, fetch = output_delta(encoder.graph.model, names)
    session = _session(encoder, added=delta)
    out = []
    for side in sides:
        got = session.run([fetch[n] for n in names], encoder.feeds(side.batch), f"{encoder.label} traced")
        out.append(dict(zip(names, got)))
    return out


def _node_alone(model: onnx.ModelProto, node: onnx.NodeProto, feeds: dict[str, np.ndarray], encoder
                ) -> list[np.ndarray] | None:
    """``node`` run alone on ``feeds`` (its initializers and Constant inputs copied); None when
    ONNX Runtime cannot build or run it."""
    inits, consts = _constants(model)
    used = [i for i in node.input if i]
    graph = helper.make_graph(
        [consts[i] for i in used if i in consts and i not in inits] + [node], "padlens-node",
        [helper.make_tensor_value_info(i, helper.np_dtype_to_tensor_dtype(feeds[i].dtype), feeds[i].shape)
         for i in used if i in feeds],
        [onnx.ValueInfoProto(name=o) for o in node.output if o],
        [inits[i] for i in used if i in inits])
    small = helper.make_model(graph, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    try:
        session = _session(encoder, small)
        return session.run([o for o in node.output if o], {i: feeds[i] for i in used if i in feeds}, "one node")
    except Exception as exc:  # noqa: BLE001 - a node that cannot run alone has no local error
        log.info("%s: node %s not run alone: %s", encoder.label, node.name, exc)
        return None


def _with_real(value: np.ndarray, ref_value: np.ndarray, var: Side, ref: Side) -> np.ndarray:
    """``value`` (the variant's) with its real tokens replaced by the reference's."""
    found = _pair_index(np.shape(ref_value), np.shape(value), ref, var)
    if found is None:
        return value
    out = np.array(value, copy=True)
    out[found[1]] = np.asarray(ref_value)[found[0]]
    return out


def trace(encoder, layer: int, ref: Side, var: Side, delta_tol: float) -> LeakNode | None:
    """The first node of ``layer`` whose output's real tokens move between ``ref`` and ``var``
    (the same encoder on two batches), or None when none moves (or the graph was not kept)."""
    model = encoder.graph.model
    if model is None:
        return None
    nodes = layer_nodes(model, list(encoder.graph.layers.hidden), layer)
    inits, consts = _constants(model)
    types = _elem_types(model)
    names = list(dict.fromkeys(t for n in nodes for t in (*n.input, *n.output)
                               if t and t not in inits and t not in consts))
    got_ref, got_var = _run_exposed(encoder, names, [ref, var])
    moved = delta_tol * MOVED_SHARE
    for node in nodes:
        for out in node.output:
            if not out or types.get(out, onnx.TensorProto.FLOAT) not in COMPARED:
                continue
            parts = real_parts(got_ref[out], got_var[out], ref, var)
            accumulated = None if parts is None else error(*parts)
            if accumulated is None or accumulated <= moved:
                continue
            return LeakNode(layer, node.name, node.op_type, tuple(node.input), out,
                            _local_error(model, node, out, got_ref, got_var, ref, var, encoder), accumulated)
    return None


def _local_error(model, node, out: str, got_ref: dict, got_var: dict, ref: Side, var: Side, encoder) -> float | None:
    feeds = {i: _with_real(got_var[i], got_ref[i], var, ref) for i in node.input if i in got_var}
    alone = _node_alone(model, node, feeds, encoder)
    if alone is None:
        return None
    value = dict(zip([o for o in node.output if o], alone))[out]
    parts = real_parts(got_ref[out], value, ref, var)
    return None if parts is None else error(*parts)
