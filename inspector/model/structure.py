"""What a graph's structure says about how to feed it: causal attention, positions counted from
input ids (and the table rows they cost), a batch or a length fixed inside the graph.

Each read takes the loaded model once (``read_structure``) and returns plain values with the
evidence in words, so a run can say why it pads on the left or runs one text at a time.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper
from onnx.external_data_helper import uses_external_data

from padlens.inspector.model.loader import InputSpec, iter_nodes, read_config, small_external_value
from padlens.inspector.model.locate import Graph

log = logging.getLogger(__name__)

#: transformers ``model_type`` values of decoder (causal) models used as embedders
DECODER_TYPES = frozenset({
    "qwen2", "qwen3", "qwen2_moe", "qwen3_moe", "llama", "mistral", "mixtral", "gemma", "gemma2",
    "gemma3", "gemma3_text", "phi", "phi3", "gpt2", "gpt_neox", "gptj", "falcon", "olmo", "olmo2",
    "stablelm", "starcoder2", "internlm2", "granite", "cohere", "exaone", "deepseek_v2", "deepseek_v3",
})
COMPARISONS = frozenset({"Less", "LessOrEqual", "Greater", "GreaterOrEqual"})
#: fused attention ops that are causal by an attribute, or always
CAUSAL_ATTRS = {"Attention": ("unidirectional", "is_causal"), "MultiHeadAttention": ("unidirectional",),
                "PackedAttention": ("unidirectional",)}
ALWAYS_CAUSAL = frozenset({"GroupQueryAttention"})


@dataclass(frozen=True)
class Structure:
    """What the graph (and the config beside it) says about feeding it.

    Attributes:
        causal: real tokens attend only to earlier positions (a decoder).
        causal_evidence: why ``causal`` was decided, in words ("" when not causal).
        positions_from_ids: the graph counts positions from ``input_ids != padding_idx``
            (RoBERTa, XLM-R): evidence in words, or "".
        padding_idx: the id that comparison uses (None when positions are not counted from ids).
        fixed_batch: the batch size the graph fixes (None: dynamic).
        fixed_batch_evidence: where it is fixed, in words.
        fixed_length: the sequence length the graph's inputs fix (None: dynamic).
    """

    causal: bool = False
    causal_evidence: str = ""
    positions_from_ids: str = ""
    padding_idx: int | None = None
    fixed_batch: int | None = None
    fixed_batch_evidence: str = ""
    fixed_length: int | None = None

    @property
    def position_offset(self) -> int:
        """Table rows that real tokens never use: ``padding_idx + 1`` when positions are
        counted from ids (real tokens take padding_idx+1 ... padding_idx+n), else 0."""
        return int(self.padding_idx) + 1 if self.padding_idx is not None else 0


def read_structure(model: onnx.ModelProto, g: Graph, inputs: list[InputSpec], path: Path) -> Structure:
    """Every structural fact about ``model`` (loaded from ``path``) at once."""
    ids = [s.name for s in inputs if s.role == "input_ids"]
    causal = causal_in_graph(g) or causal_in_config(path)
    counted, padding_idx = positions_from_ids(g, ids)
    batch, where = fixed_batch(model, g, ids)
    length = fixed_length(model, ids)
    found = Structure(bool(causal), causal or "", counted, padding_idx, batch, where, length)
    log.debug("%s: %s", path, found)
    return found


# --------------------------------------------------------------------------- constants


def const_value(g: Graph, name: str) -> np.ndarray | None:
    """The value of an initializer or Constant (through Identity/Cast), else None (an external
    tensor is read only when small: ``loader.small_external_value``)."""
    if name in g.inits:
        tensor = g.inits[name]
        if uses_external_data(tensor):
            return small_external_value(tensor, g.folder)
        return numpy_helper.to_array(tensor)
    node = g.producer.get(name)
    if node is None:
        return None
    if node.op_type == "Constant":
        attr = next((a for a in node.attribute if a.name == "value"), None)
        return numpy_helper.to_array(attr.t) if attr is not None else None
    if node.op_type in ("Identity", "Cast") and node.input:
        return const_value(g, node.input[0])
    return None


def _label(node: onnx.NodeProto) -> str:
    return f"{node.op_type} {node.name or node.output[0]!r}"


# --------------------------------------------------------------------------- causal attention


def causal_in_graph(g: Graph) -> str | None:
    """Why the graph is causal, or None: a Trilu, a comparison of two position ranges feeding
    the attention scores, or a fused attention op marked (or always) causal."""
    for node in g.nodes:
        attrs = {a.name: a.i for a in node.attribute}
        if node.op_type in ALWAYS_CAUSAL:
            return f"{_label(node)} (always causal)"
        if any(attrs.get(a) for a in CAUSAL_ATTRS.get(node.op_type, ())):
            return f"{_label(node)} with a causal attribute"
    softmax_inputs = [n.input[0] for n in g.nodes if n.op_type == "Softmax" and n.input]
    for node in g.nodes:
        if node.op_type == "Trilu" and _feeds(g, node.output[0], softmax_inputs):
            return f"{_label(node)}: a triangular mask"
        if (node.op_type in COMPARISONS and all(_position_range(g, i) for i in node.input)
                and _feeds(g, node.output[0], softmax_inputs)):
            return f"{_label(node)} compares query and key positions (a triangular mask)"
    return None


def _position_range(g: Graph, name: str) -> bool:
    """A run-time tensor computed from a Range without an Abs (|i - j| is a window, not causal)."""
    if not name or g.is_const(name):
        return False
    ops = {g.producer[a].op_type for a in g.ancestors(name) if a in g.producer}
    return "Range" in ops and "Abs" not in ops


def _feeds(g: Graph, name: str, targets: list[str]) -> bool:
    return any(name in g.ancestors(t) for t in targets[:1]) if targets else True


def _read_json(file: Path) -> dict:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def model_config(path: Path) -> dict:
    """config.json beside the model, or above an ``onnx/`` folder (an export's padlens.json
    architecture standing in for its model_type); {} when there is none."""
    folder = Path(path).parent
    for candidate in (folder, folder.parent):
        config = read_config(candidate / "config.json") if (candidate / "config.json").is_file() else {}
        manifest = _read_json(candidate / "padlens.json") if (candidate / "padlens.json").is_file() else {}
        if manifest.get("architecture") and not config.get("model_type"):
            config["model_type"] = manifest["architecture"]
        if config:
            return config
    return {}


def causal_in_config(path: Path) -> str | None:
    """Why the config beside the model says it is a decoder, or None."""
    config = model_config(path)
    if config.get("is_decoder") is True:
        return "config.json: is_decoder"
    arch = [a for a in config.get("architectures") or [] if isinstance(a, str) and a.endswith("ForCausalLM")]
    if arch:
        return f"config.json: architecture {arch[0]}"
    if config.get("model_type") in DECODER_TYPES:
        return f"config: model_type {config['model_type']} is a decoder"
    return None


# --------------------------------------------------------------------------- positions


def positions_from_ids(g: Graph, ids: list[str]) -> tuple[str, int | None]:
    """(evidence, padding_idx) when positions are a CumSum over ``input_ids != padding_idx``."""
    for node in g.nodes:
        if node.op_type != "CumSum":
            continue
        ancestors = g.ancestors(node.input[0])
        if not any(i in ancestors for i in ids):
            continue
        for name in ancestors:
            eq = g.producer.get(name)
            if eq is None or eq.op_type != "Equal" or not set(eq.input) & set(ids):
                continue
            other = next((i for i in eq.input if i not in ids), "")
            value = const_value(g, other)
            if value is not None and value.size == 1:
                idx = int(value.reshape(-1)[0])
                return (f"{_label(node)} counts positions from input_ids != {idx}", idx)
    return "", None


# --------------------------------------------------------------------------- fixed shapes


def _input_dims(model: onnx.ModelProto, name: str) -> list[int | None]:
    graph_input = next((i for i in model.graph.input if i.name == name), None)
    if graph_input is None:
        return []
    return [d.dim_value if d.HasField("dim_value") else None for d in graph_input.type.tensor_type.shape.dim]


def fixed_length(model: onnx.ModelProto, ids: list[str]) -> int | None:
    """The sequence length the token input fixes, else None."""
    dims = _input_dims(model, ids[0]) if ids else []
    return int(dims[1]) if len(dims) > 1 and dims[1] else None


def fixed_batch(model: onnx.ModelProto, g: Graph, ids: list[str]) -> tuple[int | None, str]:
    """(batch size, where) when the token input's first dim, or a constant Reshape shape of
    rank 3 or more on the activations, fixes the batch; (None, "") when it is dynamic."""
    dims = _input_dims(model, ids[0]) if ids else []
    if dims and dims[0]:
        return int(dims[0]), f"input {ids[0]!r} has a fixed batch dimension of {dims[0]}"
    derived = set(ids)
    for node in iter_nodes(model.graph):
        if not derived.intersection(node.input):
            continue
        derived.update(o for o in node.output if o)
        if node.op_type != "Reshape" or node.input[0] not in derived or len(node.input) < 2:
            continue
        shape = const_value(g, node.input[1])
        if shape is not None and shape.ndim == 1 and len(shape) >= 3 and int(shape[0]) > 0:
            return int(shape[0]), f"{_label(node)} reshapes to a constant shape {shape.tolist()}"
    return None, ""
