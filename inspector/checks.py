"""The audit's building blocks: graph-read findings (onnx only) and state comparisons (numpy)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import onnx

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- graph reads

#: Ops that compute an activation's quantization scale at run time, over a whole tensor.
DYNAMIC_QUANT_OPS = {"DynamicQuantizeLinear", "DynamicQuantizeMatMul", "DynamicQuantizeLSTM",
                     "QAttention", "QEmbedLayerNormalization"}
#: Integer ops that are dynamic when one of their inputs comes from DynamicQuantizeLinear.
INTEGER_OPS = {"MatMulInteger", "ConvInteger", "MatMulIntegerToFloat"}

#: Ops that carry the mask's values forward (elementwise, casts, shape moves, selections).
MASK_CARRIERS = {
    "Cast", "CastLike", "Sub", "Add", "Mul", "Div", "Neg", "Not", "Abs", "Equal", "Less",
    "LessOrEqual", "Greater", "GreaterOrEqual", "And", "Or", "Xor", "Unsqueeze", "Squeeze",
    "Reshape", "Expand", "Where", "Tile", "Concat", "Slice", "Transpose", "Identity",
    "Flatten", "Min", "Max", "Clip", "Pow", "Exp", "Log", "Sum", "QuantizeLinear",
    "DequantizeLinear", "Gather", "GatherElements", "Pad", "Split", "ConstantOfShape",
}


def iter_nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    """Every node of ``graph`` and of its subgraphs (If/Loop/Scan bodies), in order."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from iter_nodes(attr.g)
            for sub in attr.graphs:
                yield from iter_nodes(sub)


def _label(node: onnx.NodeProto) -> str:
    return f"{node.name or '(unnamed)'} ({node.op_type})"


def find_dynamic_quantization(model: onnx.ModelProto) -> list[str]:
    """Nodes whose activation scales are computed at run time, e.g. ``MatMul_q (DynamicQuantizeLinear)``.

    DynamicQuantizeLinear takes one scale and zero point over its whole input tensor, so
    pad rows and batch neighbours set the scale real tokens are quantized with.
    """
    found, dynamic_out = [], set()
    for node in iter_nodes(model.graph):
        if node.op_type in DYNAMIC_QUANT_OPS:
            found.append(_label(node))
            if node.op_type == "DynamicQuantizeLinear":
                dynamic_out.update(o for o in node.output if o)
        elif node.op_type in INTEGER_OPS and dynamic_out.intersection(node.input):
            found.append(_label(node))
    return found


def mask_inputs(model: onnx.ModelProto) -> list[str]:
    """Graph inputs that look like an attention mask (by name)."""
    inits = {i.name for i in model.graph.initializer}
    return [i.name for i in model.graph.input
            if i.name not in inits and "mask" in i.name.lower()]


def _constant_names(model: onnx.ModelProto) -> set[str]:
    names = {i.name for i in model.graph.initializer}
    names.update(o for n in iter_nodes(model.graph) if n.op_type == "Constant" for o in n.output)
    return names


def _carries(node: onnx.NodeProto, derived: set[str], constants: set[str]) -> bool:
    """Does ``node`` pass the mask's values on (rather than use the mask to zero a signal)?

    A Mul/Div of a mask-derived tensor by a run-time activation is masking (mean pooling:
    states × mask): its values are the activation's, so the mask path stops there. Add and
    Where propagate: the additive bias (~float32 min at pads) is still in the scores.
    """
    if node.op_type not in MASK_CARRIERS:
        return False
    if node.op_type in ("Mul", "Div"):
        others = [i for i in node.input if i and i not in derived]
        return all(i in constants for i in others)
    return True


def mask_derived_tensors(model: onnx.ModelProto, masks: Sequence[str] | None = None) -> set[str]:
    """Tensors computed from the attention-mask input through carrier ops (forward data flow)."""
    derived = set(masks if masks is not None else mask_inputs(model))
    constants = _constant_names(model)
    for node in iter_nodes(model.graph):
        if derived.intersection(node.input) and _carries(node, derived, constants):
            derived.update(o for o in node.output if o)
    return derived


def find_quantized_mask_path(model: onnx.ModelProto,
                             masks: Sequence[str] | None = None) -> list[str]:
    """Mask-derived tensors that a QuantizeLinear quantizes, e.g. ``/Add_output_0 -> Add_q (QuantizeLinear)``.

    The additive mask holds values near float32 min at pads: a static scale calibrated on
    padded batches spans them, and every real attention score rounds to the same step.
    """
    derived = mask_derived_tensors(model, masks)
    found = []
    for node in iter_nodes(model.graph):
        if node.op_type == "QuantizeLinear" and node.input and node.input[0] in derived:
            found.append(f"{node.input[0]} -> {_label(node)}")
    return found


# --------------------------------------------------------------------------- comparisons

@dataclass
class StateDiff:
    """How far one text's real-token states moved against its reference.

    Attributes:
        min_cos: lowest cosine of one real token's state, over every layer (1.0 when equal).
        cos_layer: the layer holding it (0 embeddings, 1..L blocks).
        max_delta: largest |Δ| of one token's state, relative to the mean state norm of
            the reference at that layer.
        delta_layer: the layer holding it.
        pooled_cos: cosine of the masked-mean pooled last layer.
        nonfinite_layer: first layer with NaN/Inf anywhere in the compared states, else None.
    """

    min_cos: float = 1.0
    cos_layer: int = 0
    max_delta: float = 0.0
    delta_layer: int = 0
    pooled_cos: float = 1.0
    nonfinite_layer: int | None = None

    @property
    def worst_cos(self) -> float:
        """The lower of the token and pooled cosines (the value the checks report)."""
        return min(self.min_cos, self.pooled_cos)


def _rowwise_cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    na, nb = np.linalg.norm(a, axis=-1), np.linalg.norm(b, axis=-1)
    dots = np.einsum("...d,...d->...", a, b)
    with np.errstate(divide="ignore", invalid="ignore"):
        cos = dots / (na * nb)
    both_zero = (na == 0) & (nb == 0)
    return np.where(both_zero, 1.0, np.nan_to_num(cos, nan=0.0))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of two vectors in float64 (1.0 when both are zero, 0.0 when one is)."""
    return float(_rowwise_cos(np.asarray(a, np.float64), np.asarray(b, np.float64)))


def compare_states(ref: Sequence[np.ndarray], got: Sequence[np.ndarray]) -> StateDiff:
    """Compare per-layer real-token states ``[n, H]`` of a text with its reference.

    NaN/Inf in ``got`` (at any position handed in) sets ``nonfinite_layer`` and counts as
    the worst possible cosine.
    """
    diff = StateDiff()
    for layer, (r, g) in enumerate(zip(ref, got)):
        r64, g64 = np.asarray(r, np.float64), np.asarray(g, np.float64)
        if not np.isfinite(g64).all():
            if diff.nonfinite_layer is None:
                diff.nonfinite_layer = layer
            diff.min_cos, diff.cos_layer = -1.0, layer
            continue
        cos = float(_rowwise_cos(r64, g64).min()) if len(r64) else 1.0
        scale = float(np.linalg.norm(r64, axis=-1).mean()) or 1.0
        delta = float(np.linalg.norm(g64 - r64, axis=-1).max() / scale) if len(r64) else 0.0
        if cos < diff.min_cos:
            diff.min_cos, diff.cos_layer = cos, layer
        if delta > diff.max_delta:
            diff.max_delta, diff.delta_layer = delta, layer
    if diff.nonfinite_layer is None and len(ref) and len(ref[-1]):
        diff.pooled_cos = cosine(np.mean(np.asarray(ref[-1], np.float64), 0),
                                 np.mean(np.asarray(got[-1], np.float64), 0))
    elif diff.nonfinite_layer is not None:
        diff.pooled_cos = -1.0
    return diff


def first_nonfinite(layers: Sequence[np.ndarray]) -> int | None:
    """Index of the first layer holding NaN or Inf, else None."""
    for i, h in enumerate(layers):
        if not np.isfinite(h).all():
            return i
    return None
