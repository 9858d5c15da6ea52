"""In-graph pad statistics: the reductions the metrics need, appended to the instrumented model.

ONNX Runtime computes, per hidden layer, the sums ``padlens.inspector.stats.measures`` reduces states
to (‖h‖² per position, Σu over pads and over real tokens, the anchor pad's dot with every
position, neighbour differences, pad sums per position) and, per attention map, the mass each
query puts on each key group; for the last layer the pooled sums of the cross-text metrics.
Only these small tensors ([B, T], [B, k, H], [T, H], [B, T, 4]) leave the session: no
[B, T, H] state and no [B, heads, T, T] map is copied out. The masks that select pads, real
tokens, anchors and key groups are fed as extra graph inputs, made in numpy from each batch.

With ``fused=True`` (``build``; the encoder asks for it on the CPU where the compiled module loaded)
only the attention maps' masses are taken in the graph: the session returns each hidden state as
ONNX Runtime holds it, and ``padlens.inspector.stats.fused`` takes every per-layer sum in one pass
over it (in float64), where the operators here read it six times.

Precision: reductions over one sequence run in float32 inside the graph (``LAYER_DTYPE``;
ONNX Runtime's float64 MatMul is several times slower than its float32 one and was not needed
for 1e-6); norms, cosines and every sum across sequences are taken in float64 in numpy.
tests/inspector/stats/test_ingraph.py checks the results against the float64 reference path
(``PadStats.add`` etc.) within 1e-6.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from padlens.errors import ModelLoadError
from padlens.inspector.stats import accumulators as acc
from padlens.inspector.stats import fused as fused_sums
from padlens.inspector.stats import measures

PREFIX = "padlens.stats"
MIN_OPSET = 13  # Slice/Unsqueeze/ReduceSum take their axes as inputs from here on
IN_MASKS = f"{PREFIX}.masks"  # [B, 2, T] (layer dtype): pad, real
IN_ANCHOR = f"{PREFIX}.anchor"  # [B, 1, T] (layer dtype): one-hot of the anchor pad
IN_PAD = f"{PREFIX}.pad"  # [T, 1, B] (layer dtype): pad, position-major (a MatMul sums per position)
IN_TEXT = f"{PREFIX}.text_weights"  # [B, 4, T] (layer dtype): real, all, pad, first real (measures.TEXT_SUM_ROWS)
IN_KEYS = f"{PREFIX}.keys"  # [B, T, 4] float32: key groups (measures.key_groups)
FLOAT_TYPES = {"float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16,
               "bfloat16": TensorProto.BFLOAT16, "float64": TensorProto.DOUBLE}
LAYER_DTYPE = "float32"  # what the in-graph reductions run in
_NP = {TensorProto.FLOAT: np.float32, TensorProto.DOUBLE: np.float64}  # the reductions' constants


@dataclass(frozen=True)
class LayerOutputs:
    """Output names of one hidden layer's reductions.

    Attributes:
        sq: ``[B, T]`` ‖h‖²; sums: ``[B, 3, H]`` Σu over pads, over real tokens, and h_anchor;
        dots: ``[B, T, 1]`` h_t · h_anchor; steps: ``[B, T]`` ‖h_t − h_{t−1}‖² (row 0: ‖h_0‖², no step);
        positions: ``[T, 1, H]`` Σ over the batch's pads of h per position.
    """

    sq: str
    sums: str
    dots: str
    steps: str
    positions: str


@dataclass(frozen=True)
class StatsPlan:
    """What the statistics added to a model are called.

    Attributes:
        layers: one ``LayerOutputs`` per hidden layer, layer 0 first.
        text: ``[B, 4, H]`` pooled sums of the last layer (``measures.TEXT_SUM_ROWS``).
        attention: ``[B, T, 4]`` head-mean mass per key group, one per attention map.
        dtype: the numpy dtype the per-layer reductions run in (``float32`` or ``float64``).
        width: the hidden size the neighbour steps' Conv was built for (``read`` checks the states
            have it), 0 when they are made with a Pad.
        hidden: with the per-layer sums taken outside the graph (``build(fused=True)``: ``layers``
            empty, no ``text``), the output names of the hidden states, layer 0 first, that
            ``read`` hands to ``padlens.inspector.stats.fused``.
        threads: the threads those sums are split between (None: the machine's cores).
    """

    layers: tuple[LayerOutputs, ...]
    text: str
    attention: tuple[str, ...]
    dtype: str = "float32"
    width: int = 0
    hidden: tuple[str, ...] = ()
    threads: int | None = None

    @property
    def fused(self) -> bool:
        """The per-layer sums come from the fetched states (``padlens.inspector.stats.fused``)."""
        return not self.layers

    @property
    def fetch(self) -> list[str]:
        """Every output, in a fixed order (``read`` reads them back in it)."""
        if self.fused:
            return [*self.hidden, *self.attention]
        names = [n for layer in self.layers for n in (layer.sq, layer.sums, layer.dots, layer.steps,
                                                      layer.positions)]
        return names + [self.text, *self.attention]


@dataclass
class BatchSums:
    """One batch's statistics as numpy arrays (``read``).

    Attributes:
        layers: ``acc.LayerSums`` per hidden layer.
        text: ``[B, 4, H]`` float64 pooled sums of the last layer.
        attention: ``[B, T, 4]`` masses per attention map.
    """

    layers: list[acc.LayerSums]
    text: np.ndarray
    attention: list[np.ndarray]

    @property
    def valid(self) -> bool:
        """Every layer's states finite (else the batch goes the numpy way, which names the
        faults); zero states are valid: norm 0, no direction (``padlens.inspector.stats.measures``)."""
        return all(bool(np.all(layer.valid)) for layer in self.layers)


# ---------------------------------------------------------------- building the graph

def unsupported(model: onnx.ModelProto, float_dtype: str, structure) -> str:
    """Why statistics cannot be added to ``model`` ("" when they can)."""
    opset = default_opset(model)
    if opset < MIN_OPSET:
        return f"opset {opset} < {MIN_OPSET}"
    if float_dtype != "float32":  # ORT fuses our Cast with its own around fp16 kernels: unrounded states
        return f"hidden states of type {float_dtype} (measured from the states as fetched)"
    if _half_weights(model):  # float32 outputs over fp16 blocks (keep_io_types): attention is fp16 inside
        return "a float16 graph (measured from the states as fetched)"
    if structure is not None and (structure.fixed_batch or structure.fixed_length):
        return "the graph fixes its batch or length (batches are split or padded to fit)"
    return ""


def _half_weights(model: onnx.ModelProto) -> bool:
    """Whether the graph keeps float16/bfloat16 weights (an fp16 model, whatever its output types)."""
    half = (TensorProto.FLOAT16, TensorProto.BFLOAT16)
    return any(t.data_type in half for t in model.graph.initializer)


def default_opset(model: onnx.ModelProto) -> int:
    """The version of the default (ai.onnx) opset ``model`` imports (0 when none)."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


class _Builder:
    """Appends nodes and constants with fresh names to a delta graph."""

    def __init__(self, opset: int):
        self.opset = opset
        self.graph = onnx.GraphProto()
        self.count = 0

    def name(self, what: str) -> str:
        self.count += 1
        return f"{PREFIX}.{what}.{self.count}"

    def const(self, values, dtype=np.int64) -> str:
        name = self.name("const")
        self.graph.initializer.append(numpy_helper.from_array(np.asarray(values, dtype=dtype), name))
        return name

    def op(self, op_type: str, inputs: list[str], output: str | None = None, **attrs) -> str:
        output = output or self.name(op_type.lower())
        self.graph.node.append(helper.make_node(op_type, inputs, [output], name=self.name(op_type), **attrs))
        return output

    def reduce(self, op_type: str, x: str, axes: list[int], output: str | None = None, keepdims: int = 0) -> str:
        """A Reduce* node, with axes as an input or an attribute as the opset wants."""
        as_input = self.opset >= 18 or (op_type == "ReduceSum" and self.opset >= 13)
        if as_input:
            return self.op(op_type, [x, self.const(axes)], output, keepdims=keepdims)
        return self.op(op_type, [x], output, axes=axes, keepdims=keepdims)

    def cast(self, x: str, source: str, to: int) -> str:
        return x if FLOAT_TYPES.get(source) == to else self.op("Cast", [x], to=to)

    def slice(self, x: str, start: int, end: int, axis: int, output: str | None = None) -> str:
        return self.op("Slice", [x, self.const([start]), self.const([end]), self.const([axis])], output)


def build(model: onnx.ModelProto, hidden: list[str], attention: list[str],
          float_dtype: str, dtype: str = LAYER_DTYPE, width: int | None = None,
          fused: bool = False) -> tuple[onnx.ModelProto, StatsPlan]:
    """A delta ModelProto adding the statistics of ``hidden`` and ``attention`` to ``model``
    (merged into it, or its bytes appended to the model's), and the output names.
    ``dtype``: what the reductions run in (float32 or float64); ``width``: the states' hidden size
    where the graph says it (the neighbour steps then run as one Conv, ``_steps``); ``fused``: only
    the attention masses in the graph, the per-layer sums taken from the fetched states (the plan's
    ``hidden`` is then for the caller to name: the outputs the states are exposed as)."""
    b = _Builder(default_opset(model))
    width = width if width and width > 1 and dtype == "float32" and not fused else 0
    text = "" if fused else f"{PREFIX}.text"
    layers = () if fused else tuple(
        _layer(b, name, float_dtype, i, FLOAT_TYPES[dtype], width, text if i == len(hidden) - 1 else "")
        for i, name in enumerate(hidden))
    square = _square(b, attention[0]) if attention else ""
    masses = tuple(_attention(b, name, float_dtype, i, square) for i, name in enumerate(attention))
    plan = StatsPlan(layers, text, masses, dtype, width)
    _declare(b.graph, plan)
    delta = onnx.ModelProto()
    delta.graph.CopyFrom(b.graph)
    return delta, plan


def _layer(b: _Builder, tensor: str, float_dtype: str, index: int, to: int, width: int, text: str) -> LayerOutputs:
    """‖h‖², Σu over pads and real tokens with h_anchor, h·h_anchor, neighbour steps, pad sums;
    with ``text`` (the last layer) also the pooled sums, rows of the same MatMul (one pass over h)."""
    out = LayerOutputs(*(f"{PREFIX}.{index}.{k}" for k in ("sq", "sums", "dots", "steps", "positions")))
    x = b.cast(tensor, float_dtype, to)
    runs = bool(width) and width % SQUARE_RUN == 0
    # ‖h‖² in runs cut from each row as long as it is ([0, 0, −1, 32]: no use of the declared width)
    sq = _squares(b, x, [0, 0, -1, SQUARE_RUN] if runs else None, out.sq)
    # 1/max(‖h‖, tiny): a zero state weighs a finite number times 0 = nothing (no direction), not NaN
    norm = b.op("Max", [b.op("Sqrt", [sq]), b.const(np.finfo(np.float32).tiny, _NP[to])])
    inv = b.op("Unsqueeze", [b.op("Reciprocal", [norm]), b.const([1])])  # [B, 1, T]
    rows = [b.op("Mul", [IN_MASKS, inv]), IN_ANCHOR] + ([IN_TEXT] if text else [])
    weights = b.op("Concat", rows, axis=1)  # [B, 3, T] (+ 4 rows of text weights)
    if text:
        both = b.op("MatMul", [weights, x])  # [B, 7, H]
        sums = b.slice(both, 0, 3, 1, out.sums)
        b.slice(both, 3, 3 + len(measures.TEXT_SUM_ROWS), 1, text)
    else:
        sums = b.op("MatMul", [weights, x], out.sums)  # [B, 3, H]
    # [B, 1, H] as [B, H, 1] by a Reshape (the same bytes): a Transpose here would be fused into a new
    # node, which ONNX Runtime's ready-first order runs late, h out of the cache (``SessionOptions.ready_first``)
    anchor = b.op("Reshape", [b.slice(sums, 2, 3, 1), b.const([0, -1, 1])])
    b.op("MatMul", [x, anchor], out.dots)
    steps = [0, -1, width // SQUARE_RUN, SQUARE_RUN] if runs else [0, -1, width] if width else None
    _squares(b, _steps(b, x, width), steps, out.steps)  # [B, T]: row 0 is ‖h_0‖², no step
    # [T, 1, B] @ [T, B, H]: ORT folds the transpose into one FusedMatMul (an Einsum took 5x longer)
    b.op("MatMul", [IN_PAD, b.op("Transpose", [x], perm=[1, 0, 2])], out.positions)
    return out


#: elements summed per run of ReduceSumSquare where the width allows (``_squares``)
SQUARE_RUN = 32


def _squares(b: _Builder, x: str, shape: list[int] | None, output: str) -> str:
    """``[B, T]`` Σ x² over the last axis of ``x`` reshaped to ``shape`` (None: as it is), and over the
    axis before it too when ``shape`` has four ([B, T, H/32, 32]: runs of ``SQUARE_RUN``).

    ONNX Runtime's ReduceSumSquare has no vectorised path: it adds each output's squares one after
    the other on one thread, so a row of H costs H dependent additions. Where ``shape`` cuts each row
    in runs of ``SQUARE_RUN``, their sums of squares are summed by ReduceSum, which is vectorised
    (MiniLM, [32, 128, 384]: 0.73 against 0.95 ms; float32 error 1.5e-7 against 9.7e-7 relative)."""
    x = b.op("Reshape", [x, b.const(shape)]) if shape else x
    if shape and len(shape) == 4:
        return b.reduce("ReduceSum", b.reduce("ReduceSumSquare", x, [-1]), [-1], output)
    return b.reduce("ReduceSumSquare", x, [-1], output)


def _steps(b: _Builder, x: str, width: int) -> str:
    """Row t holds h_t − h_{t−1}, row 0 holds h_0 (no step): ``[B, T, H]``, or ``[B, 1, T·H]`` (the rows laid
    end to end) with the width known.

    With the width known, one Conv over each sequence's states laid end to end ([B, 1, T·H]):
    kernel (−1, +1) dilated by H, H zeros in front, so y[i] = x[i] − x[i − H], the same float32
    difference as a Sub, in one multi-threaded pass (ORT's Pad copies on one thread; MiniLM, 32 × 128:
    1.7 vs 2.9 ms a layer with the squares). Otherwise h minus h shifted by a Pad (a negative pad
    crops the last row)."""
    if not width:
        return b.op("Sub", [x, b.op("Pad", [x, b.const([0, 1, 0, 0, -1, 0])])])
    flat = b.op("Reshape", [x, b.const([0, 1, -1])])
    kernel = b.const([[[-1.0, 1.0]]], np.float32)
    return b.op("Conv", [flat, kernel], dilations=[width], kernel_shape=[2], pads=[width, 0])  # [B, 1, T·H]


def _attention(b: _Builder, tensor: str, float_dtype: str, index: int, square: str) -> str:
    """Head-mean mass per key group: the map as [B, heads, T, T] (``square``: [0, −1, T, T], shared
    by the maps; a [B, T, T] map is one head), its sum over heads @ [B, T, 4], divided by the number
    of heads (ORT's ReduceSum reads the map faster than its ReduceMean)."""
    probs = b.op("Reshape", [b.cast(tensor, float_dtype, TensorProto.FLOAT), square])  # [B, heads, T, T]
    heads = b.op("Cast", [b.op("Gather", [b.op("Shape", [probs]), b.const(1)], axis=0)], to=TensorProto.FLOAT)
    masses = b.op("MatMul", [b.reduce("ReduceSum", probs, [1]), IN_KEYS])
    return b.op("Div", [masses, heads], f"{PREFIX}.attention.{index}")


def _square(b: _Builder, tensor: str) -> str:
    """[0, −1, T, T] for ``tensor``, an attention map whose last axis is T (every block's map has it)."""
    last = b.slice(b.op("Shape", [tensor]), -1, np.iinfo(np.int64).max, 0)  # T
    return b.op("Concat", [b.const([0, -1]), last, last], axis=0)


def _declare(graph: onnx.GraphProto, plan: StatsPlan) -> None:
    """The fed masks as typed graph inputs; the statistics as (untyped) graph outputs."""
    f32, layer = TensorProto.FLOAT, FLOAT_TYPES[plan.dtype]
    for name, dtype, shape in ((IN_MASKS, layer, ["B", 2, "T"]), (IN_ANCHOR, layer, ["B", 1, "T"]),
                               (IN_PAD, layer, ["T", 1, "B"]), (IN_TEXT, layer, ["B", 4, "T"])):
        if not plan.fused:
            graph.input.append(helper.make_tensor_value_info(name, dtype, shape))
    if plan.attention:
        graph.input.append(helper.make_tensor_value_info(IN_KEYS, f32, ["B", "T", 4]))
    for name in plan.fetch:  # a fused plan's hidden states are exposed by the caller, not here
        graph.output.append(onnx.ValueInfoProto(name=name))


# ---------------------------------------------------------------- feeding and reading

def feeds(plan: StatsPlan, mask: np.ndarray) -> dict[str, np.ndarray]:
    """The masks the statistics read, made from a batch's attention mask ``[B, T]``."""
    mask = np.asarray(mask)
    if plan.fused:
        return {IN_KEYS: measures.key_groups(mask).astype(np.float32)} if plan.attention else {}
    b, t = mask.shape
    pad = (mask == 0).astype(plan.dtype)
    rows = np.arange(b)
    anchor = np.zeros((b, 1, t), plan.dtype)
    anchor[rows, 0, measures.pad_anchor(mask)] = 1.0
    first = np.zeros((b, t), plan.dtype)
    first[rows, (mask != 0).argmax(1)] = 1.0
    real = 1.0 - pad
    out = {IN_MASKS: np.stack([pad, real], axis=1), IN_ANCHOR: anchor,
           IN_PAD: np.ascontiguousarray(pad.T[:, None, :]),
           IN_TEXT: np.stack([real, np.ones_like(real), pad, first], axis=1)}
    if plan.attention:
        out[IN_KEYS] = measures.key_groups(mask).astype(np.float32)
    return out


def read(plan: StatsPlan, values: list[np.ndarray], mask: np.ndarray) -> BatchSums:
    """``BatchSums`` from the session's outputs for ``plan.fetch``, in float64."""
    mask = np.asarray(mask)
    if plan.fused:
        return _read_states(plan, values, mask)
    n = len(plan.layers)
    if plan.width and np.shape(values[1])[-1] != plan.width:  # the steps' Conv was built for another width
        raise ModelLoadError(f"the graph declares hidden states {plan.width} wide, they are "
                             f"{np.shape(values[1])[-1]}: its shapes are wrong")
    layers = _layer_sums(*(values[k:5 * n:5] for k in range(5)), mask)
    text = np.asarray(values[5 * n], np.float64)
    return BatchSums(layers, text, [np.asarray(v, np.float64) for v in values[5 * n + 1:]])


def _read_states(plan: StatsPlan, values: list[np.ndarray], mask: np.ndarray) -> BatchSums:
    """``BatchSums`` of a fused plan: the per-layer sums of the fetched states, the graph's masses."""
    n = len(plan.hidden)
    states = values[:n]
    for index, h in enumerate(states):
        if np.ndim(h) != 3 or np.shape(h)[:2] != mask.shape or np.shape(h)[2] != np.shape(states[0])[2]:
            raise ModelLoadError(f"layer {index} output {plan.hidden[index]!r} has shape {np.shape(h)}, "
                                 f"not [batch, tokens, hidden] = [{mask.shape[0]}, {mask.shape[1]}, …]")
    sq, sums, dots, steps, positions, text = fused_sums.layer_sums(states, mask, plan.threads)
    layers = _layer_sums(sq, sums, dots, steps, positions, mask)
    return BatchSums(layers, text, [np.asarray(v, np.float64) for v in values[n:]])


@measures.quiet
def _layer_sums(sq, sums, dots, steps, positions, mask: np.ndarray) -> list[acc.LayerSums]:
    """Every layer's ``LayerSums`` from its outputs (lists, layer 0 first), the float64 maths
    done on the layers stacked: [L, B, T] and [L, B, 3, H]."""
    norms = np.sqrt(np.asarray(sq, np.float64))
    sums = np.asarray(sums, np.float64)
    rows = np.arange(norms.shape[1])
    anchor = measures.pad_anchor(mask)
    cos = np.asarray(dots, np.float64)[..., 0] / norms / norms[:, rows, anchor][..., None]
    valid = np.isfinite(norms).all(axis=-1) & np.isfinite(sums).all(axis=(-2, -1))
    steps = np.sqrt(np.asarray(steps, np.float64)[..., 1:])  # row 0 holds ‖h_0‖²: no step
    return [acc.LayerSums(norms=norms[i], pad_sum=sums[i, :, 0], real_sum=sums[i, :, 1], anchor_cos=cos[i],
                        steps=steps[i], position_sum=positions[i][:, 0], valid=valid[i]) for i in range(len(norms))]


def accumulate(sums: BatchSums, mask: np.ndarray, pads: list[acc.PadStats],
               attention: list[acc.AttentionStats | None], texts: acc.TextStats) -> None:
    """Add one batch's statistics to a run's accumulators (every layer valid: ``sums.valid``)."""
    acc.add_layer_sums(pads, sums.layers, mask)
    n = min(len(attention) - 1, len(sums.attention))  # attention[0] (embeddings) has none
    if n > 0:
        acc.add_attention_masses(attention[1:1 + n], sums.attention[:n], mask)
    texts.add_vectors(measures.text_vectors_from_sums(sums.text, mask, sums.layers[-1].valid))
