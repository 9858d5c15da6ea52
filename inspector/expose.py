"""Expose inner tensors as graph outputs (a pure function) and save models for a session."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import onnx
from onnx import TensorProto, helper

from padlens.errors import BadInput

log = logging.getLogger(__name__)

EXTERNAL_OVER = 1_800_000_000  # bytes: protobuf cannot serialise a model past 2 GB
_INT64_OPS = {"Shape", "Size", "NonZero", "ArgMax", "ArgMin", "NonMaxSuppression"}
_BOOL_OPS = {"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "Not", "And", "Or",
             "Xor", "IsNaN", "IsInf"}
_FLOATS = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE}


def proto_size(model: onnx.ModelProto) -> int:
    """Bytes the model would take serialised (estimated from tensors when over 2 GB)."""
    try:
        return model.ByteSize()
    except Exception:  # noqa: BLE001 - some protobuf builds refuse sizes past 2 GB
        return sum(len(t.raw_data) for t in model.graph.initializer) + (1 << 31)


def infer_value_info(model: onnx.ModelProto) -> dict[str, onnx.ValueInfoProto]:
    """ONNX shape inference where it works (not past 2 GB), keyed by tensor name."""
    graph = model.graph
    infos = {v.name: v for v in [*graph.input, *graph.output, *graph.value_info]}
    if proto_size(model) > EXTERNAL_OVER:
        return infos
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception as exc:  # noqa: BLE001 - custom-domain ops, odd graphs
        log.debug("shape inference failed: %s", exc)
        return infos
    for v in inferred.graph.value_info:
        if v.type.tensor_type.elem_type:
            infos.setdefault(v.name, v)
    return infos


def tensor_types(model: onnx.ModelProto,
                 infos: dict[str, onnx.ValueInfoProto] | None = None) -> dict[str, int]:
    """Element type of every tensor: shape inference first, then rules per producer op."""
    infos = infer_value_info(model) if infos is None else infos
    types = {n: v.type.tensor_type.elem_type for n, v in infos.items()
             if v.type.tensor_type.elem_type}
    types.update({t.name: t.data_type for t in model.graph.initializer})
    for node in model.graph.node:
        guessed = _node_output_types(node, types)
        for name, elem in zip(node.output, guessed):
            if name and elem and not types.get(name):
                types[name] = elem
    return types


def _node_output_types(node: onnx.NodeProto, types: dict[str, int]) -> list[int]:
    ins = [types.get(i, 0) for i in node.input]
    attrs = {a.name: a for a in node.attribute}
    op, n = node.op_type, len(node.output)
    if op == "Cast":  # a Cast without "to" is malformed; ORT refuses it when the session is made
        return [attrs["to"].i if "to" in attrs else 0]
    if op in ("Constant",):
        return [attrs["value"].t.data_type] if "value" in attrs else [0]
    if op == "ConstantOfShape":
        return [attrs["value"].t.data_type if "value" in attrs else TensorProto.FLOAT]
    if op in _INT64_OPS:
        return [TensorProto.INT64] * n
    if op in _BOOL_OPS:
        return [TensorProto.BOOL] * n
    if op == "DynamicQuantizeLinear":
        return [TensorProto.UINT8, TensorProto.FLOAT, TensorProto.UINT8]
    if op == "QuantizeLinear":
        return [ins[2] if len(ins) > 2 and ins[2] else TensorProto.UINT8]
    if op == "DequantizeLinear":
        return [ins[1] if len(ins) > 1 else TensorProto.FLOAT]
    if op in ("MatMulInteger", "ConvInteger"):
        return [TensorProto.INT32]
    if op == "Where":
        return [ins[1] if len(ins) > 1 else 0]
    if op == "EmbedLayerNormalization":
        return [ins[2] if len(ins) > 2 else 0, TensorProto.INT32, ins[2] if len(ins) > 2 else 0]
    floats = [t for t in ins if t in _FLOATS]
    return [(floats or [t for t in ins if t] or [0])[0]] * n


def expose_outputs(model: onnx.ModelProto,
                   names: list[str]) -> tuple[onnx.ModelProto, dict[str, str]]:
    """A new model with the original outputs, then ``names`` as extra outputs.

    Returns the model and, per requested tensor, the output name to fetch it by.
    Constants are skipped, duplicates dropped, and an Identity is inserted where a
    graph input or an existing output would otherwise be listed twice.
    """
    graph = model.graph
    consts = {t.name for t in graph.initializer}
    consts.update(o for n in graph.node if n.op_type == "Constant" for o in n.output)
    known = {i.name for i in graph.input} | {o for n in graph.node for o in n.output} | consts
    unknown = [n for n in dict.fromkeys(names) if n not in known]
    if unknown:
        raise BadInput(f"cannot expose {', '.join(map(repr, unknown))}: no such tensor "
                       "in the graph")
    wanted = [n for n in dict.fromkeys(names) if n not in consts]
    if len(wanted) < len(dict.fromkeys(names)):
        log.info("skipping constant tensors: %s", sorted(set(names) & consts))
    new = onnx.ModelProto()
    new.CopyFrom(model)
    infos = infer_value_info(model)
    types = tensor_types(model, infos)
    return new, _add_outputs(new.graph, wanted, infos, types)


def _add_outputs(graph: onnx.GraphProto, wanted: list[str],
                 infos: dict[str, onnx.ValueInfoProto], types: dict[str, int]) -> dict[str, str]:
    taken = {i.name for i in graph.input} | {o.name for o in graph.output}
    taken |= {o for n in graph.node for o in n.output} | {t.name for t in graph.initializer}
    needs_copy = {i.name for i in graph.input} | {o.name for o in graph.output}
    fetch = {}
    for name in wanted:
        out = name
        if name in needs_copy:
            out = _fresh(f"padlens.{name}", taken)
            graph.node.append(helper.make_node("Identity", [name], [out],
                                               name=_fresh(f"padlens.Identity.{name}", taken)))
        graph.output.append(_output_info(name, out, infos, types))
        fetch[name] = out
    return fetch


def _fresh(base: str, taken: set[str]) -> str:
    name, i = base, 1
    while name in taken:
        name, i = f"{base}.{i}", i + 1
    taken.add(name)
    return name


def _output_info(name: str, out: str, infos: dict[str, onnx.ValueInfoProto],
                 types: dict[str, int]) -> onnx.ValueInfoProto:
    info = onnx.ValueInfoProto()
    if name in infos and infos[name].type.tensor_type.elem_type:
        info.CopyFrom(infos[name])
    else:
        info.type.tensor_type.elem_type = types.get(name) or TensorProto.FLOAT
        log.debug("no inferred type for %s; using %s", name, info.type.tensor_type.elem_type)
    info.name = out
    return info


def save_model(model: onnx.ModelProto, path: str | os.PathLike, *,
               external_over: int = EXTERNAL_OVER) -> Path:
    """Write ``model`` for an InferenceSession; tensors go to ``<name>.data`` past ~1.8 GB.

    The proto is left as it was given: a large one is copied before its tensors are
    moved out (peak memory is twice the model for that moment).
    """
    path = Path(path)
    if proto_size(model) <= external_over:
        onnx.save_model(model, str(path))
        return path
    location = path.name + ".data"
    (path.parent / location).unlink(missing_ok=True)
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    onnx.save_model(copy, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=location, size_threshold=1024)
    return path
