"""Expose inner tensors as graph outputs (a pure function) and save models for a session."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import onnx
from onnx import helper

from padlens.errors import BadInput

log = logging.getLogger(__name__)

EXTERNAL_OVER = 1_800_000_000  # bytes: protobuf cannot serialise a model past 2 GB


def proto_size(model: onnx.ModelProto) -> int:
    """Bytes the model would take serialised (estimated from tensors when over 2 GB)."""
    try:
        return model.ByteSize()
    except Exception:  # noqa: BLE001 - some protobuf builds refuse sizes past 2 GB
        return sum(len(t.raw_data) for t in model.graph.initializer) + (1 << 31)


def output_delta(model: onnx.ModelProto, names: list[str]) -> tuple[onnx.ModelProto, dict[str, str]]:
    """A small ModelProto holding only what exposing ``names`` adds to ``model``: the extra
    graph outputs (left untyped: ONNX Runtime infers their types) and the Identity nodes.

    Merged into ``model`` (``MergeFrom``, or its serialised bytes appended to the model's)
    it gives the exposed model. Returns the delta and, per tensor, the output to fetch.
    Constants are skipped, duplicates dropped, and an Identity is inserted where a graph
    input or an existing output would otherwise be listed twice.
    """
    graph = model.graph
    consts = {t.name for t in graph.initializer}
    consts.update(o for n in graph.node if n.op_type == "Constant" for o in n.output)
    produced = {o for n in graph.node for o in n.output}
    known = {i.name for i in graph.input} | produced | consts
    unknown = [n for n in dict.fromkeys(names) if n not in known]
    if unknown:
        raise BadInput(f"cannot expose {', '.join(map(repr, unknown))}: no such tensor "
                       "in the graph")
    wanted = [n for n in dict.fromkeys(names) if n not in consts]
    if len(wanted) < len(dict.fromkeys(names)):
        log.info("skipping constant tensors: %s", sorted(set(names) & consts))
    taken = {i.name for i in graph.input} | {o.name for o in graph.output} | produced | consts
    delta = onnx.ModelProto()
    return delta, _add_outputs(delta.graph, graph, wanted, taken)


def expose_outputs(model: onnx.ModelProto,
                   names: list[str]) -> tuple[onnx.ModelProto, dict[str, str]]:
    """A new model with the original outputs, then ``names`` as extra outputs (untyped).

    Returns the model and, per requested tensor, the output name to fetch it by (see
    ``output_delta``, which builds only the addition).
    """
    delta, fetch = output_delta(model, names)
    new = onnx.ModelProto()
    new.CopyFrom(model)
    new.MergeFrom(delta)
    return new, fetch


def _add_outputs(out: onnx.GraphProto, graph: onnx.GraphProto, wanted: list[str],
                 taken: set[str]) -> dict[str, str]:
    needs_copy = {i.name for i in graph.input} | {o.name for o in graph.output}
    fetch = {}
    for name in wanted:
        target = name
        if name in needs_copy:
            target = _fresh(f"padlens.{name}", taken)
            out.node.append(helper.make_node("Identity", [name], [target],
                                             name=_fresh(f"padlens.Identity.{name}", taken)))
        out.output.append(onnx.ValueInfoProto(name=target))
        fetch[name] = target
    return fetch


def _fresh(base: str, taken: set[str]) -> str:
    name, i = base, 1
    while name in taken:
        name, i = f"{base}.{i}", i + 1
    taken.add(name)
    return name


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
