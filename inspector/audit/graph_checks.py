"""Graph checks: what the ONNX graph alone says (dynamic quantization, a quantized mask path)."""
from __future__ import annotations

from collections.abc import Sequence

import onnx

from padlens.inspector.audit.results import Verdict
from padlens.inspector.contract import DYNAMIC_QUANT_OPS, INTEGER_OPS
from padlens.inspector.model.loader import iter_nodes

#: Ops that carry the mask's values forward (elementwise, casts, shape moves, selections).
MASK_CARRIERS = frozenset({
    "Cast", "CastLike", "Sub", "Add", "Mul", "Div", "Neg", "Not", "Abs", "Equal", "Less",
    "LessOrEqual", "Greater", "GreaterOrEqual", "And", "Or", "Xor", "Unsqueeze", "Squeeze",
    "Reshape", "Expand", "Where", "Tile", "Concat", "Slice", "Transpose", "Identity",
    "Flatten", "Min", "Max", "Clip", "Pow", "Exp", "Log", "Sum", "QuantizeLinear",
    "DequantizeLinear", "Gather", "GatherElements", "Pad", "Split", "ConstantOfShape",
})


# --------------------------------------------------------------------------- graph reads


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
    return [i.name for i in model.graph.input if i.name not in inits and "mask" in i.name.lower()]


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


def find_quantized_mask_path(model: onnx.ModelProto, masks: Sequence[str] | None = None) -> list[str]:
    """Mask-derived tensors that a QuantizeLinear quantizes, e.g. ``/Add_output_0 -> Add_q (QuantizeLinear)``.

    The additive mask holds values near float32 min at pads: a static scale calibrated on
    padded batches spans them, and every real attention score rounds to the same step.
    """
    derived = mask_derived_tensors(model, masks)
    return [f"{node.input[0]} -> {_label(node)}" for node in iter_nodes(model.graph)
            if node.op_type == "QuantizeLinear" and node.input and node.input[0] in derived]


def mask_index_nodes(model: onnx.ModelProto) -> list[str]:
    """Fused nodes whose mask output is a sequence length (EmbedLayerNormalization's mask_index)."""
    consumed = {name for node in iter_nodes(model.graph) for name in node.input}
    return [node.name or node.output[0] for node in iter_nodes(model.graph)
            if node.op_type == "EmbedLayerNormalization" and len(node.output) > 1
            and node.output[1] and node.output[1] in consumed]


def names(items: Sequence[str], k: int = 3) -> str:
    """The first ``k`` of ``items``, then how many more."""
    more = f" and {len(items) - k} more" if len(items) > k else ""
    return ", ".join(items[:k]) + more


# --------------------------------------------------------------------------- checks


def dynamic_activation_quantization(ctx) -> Verdict:
    """Dynamic activation quantization nodes (a count: 0 passes)."""
    dynamic = ctx.facts.dynamic
    detail = (f"{len(dynamic)} nodes compute activation scales at run time over a whole tensor, so "
              f"pads and batch neighbours set the scale: {names(dynamic, 4)}." if dynamic
              else "no dynamic activation quantization (DynamicQuantizeLinear, DynamicQuantizeMatMul, "
                   "MatMulInteger fed by them).")
    return Verdict(not dynamic, float(len(dynamic)), 0.0, detail)


def mask_path_quantized(ctx) -> Verdict:
    """QuantizeLinear nodes on mask-derived tensors (a count: 0 passes)."""
    quantized, masks = ctx.facts.mask_quantized, ctx.facts.mask_inputs
    detail = (f"{len(quantized)} mask-derived tensors are quantized: {names(quantized, 4)}. "
              "The additive mask holds values near float32 min at pads; a scale calibrated on them "
              "rounds every real attention score to one step. Exclude these nodes from quantization "
              "(or calibrate unpadded)." if quantized
              else f"no QuantizeLinear on a tensor derived from {', '.join(masks) or 'the mask'}.")
    return Verdict(not quantized, float(len(quantized)), 0.0, detail)


CHECKS = {"dynamic_activation_quantization": dynamic_activation_quantization,
          "mask_path_quantized": mask_path_quantized}
