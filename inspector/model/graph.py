"""Load any ONNX token encoder and say where its layers are: the inspector's graph API."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import onnx
from onnx import TensorProto

from padlens.errors import LayersNotFound, ModelLoadError, Param
from padlens.inspector.model import inplace
from padlens.inspector.model.expose import EXTERNAL_OVER, expose_outputs, output_delta, save_model
from padlens.inspector.model.loader import InputSpec, is_cache_output, read_model, recognise_inputs, weight_bytes
from padlens.inspector.model.locate import Graph, LayerMap, hidden_size, locate_layers, token_output
from padlens.inspector.model.structure import Structure, read_structure

__all__ = ["EncoderGraph", "Exposure", "InputSpec", "LayerMap", "expose_outputs", "exposed_model", "load_encoder",
           "locate_layers", "output_delta", "save_model"]


FLOAT_NAMES = {TensorProto.FLOAT: "float32", TensorProto.FLOAT16: "float16",
               TensorProto.BFLOAT16: "bfloat16", TensorProto.DOUBLE: "float64"}


@dataclass
class EncoderGraph:
    """A loaded encoder and what padlens knows about it.

    Attributes:
        path: the .onnx file.
        model: the model as parsed from its file: tensors kept in external data still refer to
            their files beside it (never loaded: sessions read them in place).
        inputs: the graph inputs padlens feeds, with their roles and dtypes.
        outputs: the model's own output names, in order.
        layers: where the embedding output, block outputs and attention probabilities are.
        vocab_size: rows of the word-embedding table (Gather on input_ids), None if unknown.
        max_positions: the most tokens a text may have: rows of the position-embedding table
            less the rows real tokens never use (RoBERTa/XLM-R: ``padding_idx + 1``), and no
            more than a length fixed in the graph; None if unbounded (relative or rotary positions).
        float_dtype: dtype of the hidden states, "float32" or "float16".
        raw: the file's bytes when they hold every tensor (no external data), else None;
            kept until the session exists (``exposed_model`` reuses them).
        structure: causal attention, positions counted from ids, a fixed batch or length
            (``padlens.inspector.model.structure.Structure``), read once at load.
        position_rows: rows of the position-embedding table as stored (None if unknown).
        external_data: whether weights live in external-data files beside the model.
        weights: bytes of every initializer, inline or external.
    """

    path: Path
    model: onnx.ModelProto
    inputs: list[InputSpec]
    outputs: list[str]
    layers: LayerMap
    vocab_size: int | None
    max_positions: int | None
    float_dtype: str
    raw: bytes | None = field(default=None, repr=False)
    structure: Structure = field(default_factory=Structure)
    position_rows: int | None = None
    external_data: bool = False
    weights: int = 0

    @property
    def causal(self) -> bool:
        return self.structure.causal

    @property
    def limit_reason(self) -> str:
        """Why ``max_positions`` is below the table's rows, in words ("" when it is not)."""
        s, rows, parts = self.structure, self.position_rows, []
        if rows and s.position_offset:
            parts.append(f"a {rows}-row position table less padding_idx + 1 = {s.position_offset} "
                         "rows that real tokens never use")
        if s.fixed_length and (not rows or s.fixed_length <= rows - s.position_offset):
            parts.append(f"the graph fixes the sequence length at {s.fixed_length}")
        return "; ".join(parts)


def usable_positions(rows: int | None, structure: Structure) -> int | None:
    """Tokens a text may have: the table's rows less its offset, at most a fixed length."""
    limits = [int(rows) - structure.position_offset] if rows else []
    limits += [structure.fixed_length] if structure.fixed_length else []
    return min(limits) if limits else None


def load_encoder(path: str | os.PathLike, layers: list[str] | None = None) -> EncoderGraph:
    """Load ``path`` safely, recognise its inputs and locate (or check ``layers``).

    Raises ModelLoadError for a file that is missing, not ONNX or not a token encoder,
    and LayersNotFound when no layers can be located or a named tensor does not exist.
    """
    path, model, raw = read_model(path)
    inputs = recognise_inputs(path, model.graph)
    try:
        if layers:
            layer_map = user_layers(model, layers)
        else:
            if token_output(model) is None:
                raise ModelLoadError(f"{path} is not a token encoder: no [batch, sequence, hidden] "
                                     f"float output (outputs: {_output_names(model)})")
            layer_map = locate_layers(model)
    except LayersNotFound as exc:  # with several models, say which one
        raise LayersNotFound(f"{path}: ", *exc.parts) from exc
    g = Graph(model, folder=path.parent)
    vocab, rows = embedding_rows(g, inputs, layer_map.hidden[0])
    structure = read_structure(model, g, inputs, path)
    outputs = [o.name for o in model.graph.output if not is_cache_output(o.name)]  # present.*: never fetched
    return EncoderGraph(path, model, inputs, outputs, layer_map,
                        vocab, usable_positions(rows, structure), _float_dtype(g, model, layer_map.hidden[0]),
                        raw, structure, rows, external_data=raw is None, weights=weight_bytes(model))


#: ``output_delta``'s (delta, output to fetch per tensor): made once per open, passed along
Exposure = tuple[onnx.ModelProto, dict[str, str]]


def exposed_model(graph: EncoderGraph, tensors: list[str], extra: onnx.ModelProto | None = None,
                  exposure: Exposure | None = None) -> tuple[bytes | onnx.ModelProto, dict[str, str]]:
    """The model with ``tensors`` as extra outputs, for ``create_session``, and the output
    name to fetch each by. A self-contained file under 2 GB becomes its own bytes with the
    small addition appended (protobuf merges them): no copy of the weights, no reserialising.
    ``extra``: another delta merged in as well (the in-graph statistics), in the same one copy.
    ``exposure``: ``output_delta(graph.model, tensors)`` when the caller made it already."""
    delta, fetch = _delta(graph, tensors, extra, exposure)
    if graph.raw is not None and len(graph.raw) <= EXTERNAL_OVER:
        return graph.raw + delta.SerializeToString(), fetch
    model = onnx.ModelProto()
    model.CopyFrom(graph.model)
    model.MergeFrom(delta)
    return model, fetch


def in_place_model(graph: EncoderGraph, tensors: list[str], extra: onnx.ModelProto | None = None,
                   exposure: Exposure | None = None) -> bytes | None:
    """``exposed_model``'s bytes with the weights left in the user's files, for ``create_session(...,
    weights_folder=graph.path.parent)``. A file with external data: its graph as parsed (every
    external tensor still refers, relative to its folder, to the user's weight files) with the
    delta appended, whatever the size. A self-contained file: each large initializer refers to its
    bytes inside ``graph.path`` (``padlens.inspector.model.inplace``). None when the file's bytes
    are not at hand or do not read as expected."""
    if graph.external_data:
        if graph.model is None:
            return None
        return graph.model.SerializeToString() + _delta(graph, tensors, extra, exposure)[0].SerializeToString()
    if graph.raw is None or len(graph.raw) > EXTERNAL_OVER:
        return None
    small = inplace.referencing_bytes(graph.raw, graph.path.name)
    if small is None:
        return None
    return small + _delta(graph, tensors, extra, exposure)[0].SerializeToString()


def _delta(graph: EncoderGraph, tensors: list[str], extra: onnx.ModelProto | None,
           exposure: Exposure | None) -> Exposure:
    """The exposure's delta (made here when not given) with ``extra`` merged into a copy: a
    given exposure is left as it was, for the next session made from it."""
    delta, fetch = exposure if exposure is not None else output_delta(graph.model, tensors)
    if extra is not None:
        merged = onnx.ModelProto()
        merged.CopyFrom(delta)
        merged.MergeFrom(extra)
        delta = merged
    return delta, fetch


def _output_names(model: onnx.ModelProto) -> str:
    return ", ".join(o.name for o in model.graph.output) or "none"


def user_layers(model: onnx.ModelProto, names: list[str]) -> LayerMap:
    """A LayerMap from tensors the user named (``--layers``), after checking they exist."""
    g = Graph(model)
    known = set(g.producer) | {i.name for i in model.graph.input}
    missing = [n for n in names if n not in known]
    if missing:
        raise LayersNotFound(Param("layers", meta=""), " names tensor(s) not in the graph: "
                             f"{', '.join(map(repr, missing))}")
    return LayerMap(list(names), [], "user", hidden_size(g, model, names[0]))


def embedding_rows(g: Graph, inputs: list[InputSpec],
                   hidden0: str) -> tuple[int | None, int | None]:
    """Rows of the word and position embedding tables behind the embedding output."""
    roles = {s.name: s.role for s in inputs}
    vocab, positions = None, []
    for name in g.ancestors(hidden0):
        node = g.producer.get(name)
        if node is None or name != node.output[0]:
            continue
        if node.op_type == "EmbedLayerNormalization":
            return _rows(g, node.input[2]), _rows(g, _at(node, 3))
        if node.op_type != "Gather" or len(g.const_dims(node.input[0]) or []) != 2:
            continue
        role = roles.get(_source_input(g, node.input[1]))
        if role == "input_ids":
            vocab = _rows(g, node.input[0])
        elif role == "position_ids" or role is None:
            positions.append(_rows(g, node.input[0]) or 0)
    return vocab, (max(positions) if positions and max(positions) > 2 else None)


def _at(node: onnx.NodeProto, i: int) -> str:
    return node.input[i] if len(node.input) > i else ""


def _rows(g: Graph, table: str) -> int | None:
    dims = g.const_dims(table) if table else None
    return dims[0] if dims else None


def _source_input(g: Graph, name: str) -> str | None:
    """The graph input ``name`` is a plain copy of (through Cast/Identity), if any."""
    while True:
        node = g.producer.get(name)
        if node is None:
            return name
        if node.op_type not in ("Cast", "Identity"):
            return None
        name = node.input[0]


def _float_dtype(g: Graph, model: onnx.ModelProto, name: str) -> str:
    elem = _elem_type(g, model, name) or TensorProto.FLOAT
    if elem not in FLOAT_NAMES:
        raise ModelLoadError(f"layer tensor {name!r} is not a float tensor "
                             f"({TensorProto.DataType.Name(elem)})")
    return FLOAT_NAMES[elem]


def _elem_type(g: Graph, model: onnx.ModelProto, name: str) -> int:
    """Element type of ``name``: as declared (inputs, outputs, value_info, weights), else a
    Cast's target, else that of the producer's first float input, walking back (0: unknown)."""
    graph = model.graph
    declared = {v.name: v.type.tensor_type.elem_type for v in [*graph.input, *graph.output, *graph.value_info]}
    declared.update({t.name: t.data_type for t in graph.initializer})
    seen: set[str] = set()
    while name and name not in seen:
        seen.add(name)
        if declared.get(name):
            return declared[name]
        node = g.producer.get(name)
        if node is None:
            return 0
        if node.op_type == "Cast":
            return next((a.i for a in node.attribute if a.name == "to"), 0)
        floats = [i for i in node.input if declared.get(i) in FLOAT_NAMES]
        name = floats[0] if floats else (node.input[0] if node.input else "")
    return 0
