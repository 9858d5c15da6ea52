"""The one int8-static recipe (``padlens quantize`` and ``padlens export``) and the exporter's dynamic int8."""
from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from padlens.exporter.quantize.plan import Plan

Feed = dict[str, np.ndarray]

#: How ``quantize_int8_dynamic`` quantizes (recorded in padlens.json).
DYNAMIC_RECIPE = {"method": "dynamic (onnxruntime.quantization.quantize_dynamic, its defaults)",
                  "op_types": "onnxruntime defaults", "weight_type": "QInt8", "per_channel": False,
                  "activations": "quantized at run time, one scale per tensor (pads and batch neighbours included)"}


def quantize_int8_dynamic(src: Path, dst: Path) -> dict:
    """ONNX Runtime dynamic quantization with its defaults, as production users apply it."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with hide_preprocess_hint():
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
    return dict(DYNAMIC_RECIPE)


@dataclass(frozen=True)
class StaticRecipe:
    """How int8-static is made: ONNX Runtime ``quantize_static`` in QDQ format.

    Only the inputs of ``op_types`` are quantized; their outputs go on in float (ORT runs
    DQ→MatMul as MatMulIntegerToFloat), so the outlier channels of BERT's FFN outputs (up
    to ~200 on MiniLM) never set a scale, and every other op reads float tensors.

    Attributes:
        op_types: op types whose inputs get QuantizeLinear/DequantizeLinear pairs.
        per_channel: weights get one scale per output channel.
        weight_type: ``QInt8`` (symmetric, the ORT default for weights).
        activation_type: ``QUInt8`` (asymmetric): ORT fuses every quantized MatMul into an
            integer kernel; with ``QInt8`` activations it left the LayerNorm-fed MatMuls as
            float MatMuls over dequantized inputs (same accuracy, slower).
        activation_symmetric: symmetric activation ranges (ORT ``ActivationSymmetric``).
        reduce_range: 7-bit weights (ORT's advice for x86 CPUs without VNNI).
        calibration_method: ``MinMax``, ``Entropy``, ``Percentile`` or ``Distribution``.
        calibration_options: options of the calibrator (``moving_average``, ``percentile``…).
        exclude: names of MatMul nodes kept in float (inputs and weights), besides those the
            graph's plan keeps float (``plan.plan_matmuls``: inputs from the mask or positions alone).
    """

    op_types: tuple[str, ...] = ("MatMul",)
    per_channel: bool = True
    weight_type: str = "QInt8"
    activation_type: str = "QUInt8"
    activation_symmetric: bool = False
    reduce_range: bool = False
    calibration_method: str = "MinMax"
    calibration_options: dict = field(default_factory=dict)
    exclude: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        out = asdict(self)
        out.update(op_types=list(self.op_types), exclude=list(self.exclude), outputs="float",
                   method="static QDQ")
        return out


#: The recipe ``padlens export --precision int8-static`` and ``padlens quantize`` use
#: (benchmarks/int8_static.py compares it with the alternatives: held-out pooled cosine vs fp32
#: on MiniLM 0.942 -> 0.993).
STATIC_RECIPE = StaticRecipe()


def quantize_int8_static(src: Path, dst: Path, feeds: Sequence[Feed], recipe: StaticRecipe = STATIC_RECIPE,
                         plan: Plan | None = None, external_data: bool = False) -> dict:
    """QDQ static quantization of ``src`` calibrated on ``feeds``; returns what was done.

    Only the inputs of ``recipe.op_types`` (MatMul) are quantized, so the residual stream,
    LayerNorm, Softmax and the attention-mask path (values near float32 min) stay in float
    (DESIGN.md), and scales are constants: real tokens do not move with padding. MatMuls whose
    inputs come from the mask or positions alone stay float too (``plan``, read from the graph
    when not given). Give one unpadded text per feed: calibration ranges then come from real
    tokens only. ``external_data``: ``src`` keeps its weights in external data (ORT then writes
    its intermediate files the same way).
    """
    if not feeds:
        raise ValueError("int8-static needs at least one calibration feed")
    if plan is None:
        from padlens.exporter.quantize.plan import float_matmuls

        plan = float_matmuls(src)
    recipe = StaticRecipe(**{**asdict(recipe), "exclude": tuple(dict.fromkeys((*recipe.exclude, *plan.kept_float)))})
    with tempfile.TemporaryDirectory(prefix="padlens-calib-") as tmp, hide_preprocess_hint():
        cache = _calibrate(src, feeds, recipe, Path(tmp), external_data)
        _quantize(src, dst, recipe, cache, external_data)
    model = _float_inputs(_load(dst), recipe)
    _save(model, dst)
    return _done(model, recipe, plan, len(feeds))


def _done(model, recipe: StaticRecipe, plan: Plan, feeds: int) -> dict:
    done = recipe.to_dict()
    quantized = set(quantized_nodes(model, recipe.op_types))
    done["quantized_nodes"] = len(quantized)
    done["float_nodes"] = [n.name for n in model.graph.node if n.op_type in recipe.op_types and n.name not in quantized]
    done["kept_float_why"] = dict(plan.kept_float)
    done["residual_stream_float"] = len(plan.residual)
    done["calibration_feeds"] = feeds
    return done


def _calibrate(src: Path, feeds: Sequence[Feed], recipe: StaticRecipe, tmp: Path, external_data: bool) -> Path:
    """Tensor ranges saved as an ORT calibration cache; one ``collect_data`` per feed, so
    feeds of different lengths work with the histogram calibrators too (ORT stacks a
    reader's batches, which needs one shape)."""
    from onnxruntime.quantization.calibrate import CalibrationMethod, create_calibrator, save_tensors_data

    calibrator = create_calibrator(
        src, list(recipe.op_types), augmented_model_path=str(tmp / "augmented.onnx"),
        calibrate_method=CalibrationMethod[recipe.calibration_method],
        use_external_data_format=external_data, extra_options=dict(recipe.calibration_options),
    )
    with contextlib.redirect_stdout(io.StringIO()):  # the histogram collector prints
        for feed in feeds:
            calibrator.collect_data(_reader([feed]))
        ranges = calibrator.compute_data()
    cache = tmp / "ranges.json"
    save_tensors_data(ranges, cache)
    return cache


def _quantize(src: Path, dst: Path, recipe: StaticRecipe, cache: Path, external_data: bool) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    extra = {"DedicatedQDQPair": True, "ActivationSymmetric": recipe.activation_symmetric,
             "WeightSymmetric": True, "OpTypesToExcludeOutputQuantization": list(recipe.op_types)}
    quantize_static(
        str(src), str(dst), None, quant_format=QuantFormat.QDQ,
        op_types_to_quantize=list(recipe.op_types), per_channel=recipe.per_channel,
        reduce_range=recipe.reduce_range, activation_type=QuantType[recipe.activation_type],
        weight_type=QuantType[recipe.weight_type],
        calibrate_method=CalibrationMethod[recipe.calibration_method],
        nodes_to_exclude=list(recipe.exclude), extra_options=extra, calibration_cache_path=str(cache),
        use_external_data_format=external_data,
    )


def _float_inputs(model, recipe: StaticRecipe):
    """Give every node that is not quantized its float inputs back.

    ORT's QDQ quantizer, having quantized a tensor for one consumer, hands the dequantized
    copy to every consumer: the residual Add after each FFN got the int8-rounded LayerNorm
    output, and an excluded MatMul that shares its input with a quantized one (Q, K and V
    share the LayerNorm output) got int8 inputs too. Rewire those inputs to the float tensor
    (held-out pooled cosine on MiniLM 0.990 -> 0.993); drop Q/DQ nodes left unused.
    """
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    for node in graph.node:
        if node.op_type in _QDQ or (node.op_type in recipe.op_types and node.name not in recipe.exclude):
            continue
        for k, name in enumerate(node.input):
            dq = producer.get(name)
            q = producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
            if q is not None and q.op_type == "QuantizeLinear":
                node.input[k] = q.input[0]
    _drop_unused_qdq(graph)
    return model


def _drop_unused_qdq(graph) -> None:
    while True:
        used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
        dead = [n for n in graph.node if n.op_type in _QDQ and not any(o in used for o in n.output)]
        if not dead:
            return
        for node in dead:
            graph.node.remove(node)


_QDQ = ("QuantizeLinear", "DequantizeLinear")


def quantized_nodes(model, op_types: Sequence[str] = ("MatMul",)) -> list[str]:
    """Names of the ``op_types`` nodes with at least one input coming out of a DequantizeLinear."""
    producer = {out: node for node in model.graph.node for out in node.output}
    return [node.name for node in model.graph.node if node.op_type in op_types
            and any(getattr(producer.get(i), "op_type", None) == "DequantizeLinear" for i in node.input)]


def _load(path: Path):
    import onnx

    return onnx.load(str(path))


def _save(model, path: Path) -> None:
    from padlens.inspector.model.expose import save_model

    save_model(model, path)


def _reader(feeds: Sequence[Feed]):
    """A CalibrationDataReader over ready-made feeds (one dict of graph inputs per batch)."""
    from onnxruntime.quantization import CalibrationDataReader

    class FeedReader(CalibrationDataReader):
        def __init__(self) -> None:
            self._feeds = iter(feeds)

        def get_next(self) -> Feed | None:
            return next(self._feeds, None)

        def rewind(self) -> None:
            self._feeds = iter(feeds)

    return FeedReader()


class _PreprocessHint(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-process" not in record.getMessage() and "pre-processing" not in record.getMessage()


@contextlib.contextmanager
def hide_preprocess_hint() -> Iterator[None]:
    """onnxruntime.quantization logs 'consider pre-processing' on the root logger: drop it."""
    root = logging.getLogger()
    hint = _PreprocessHint()
    root.addFilter(hint)
    try:
        yield
    finally:
        root.removeFilter(hint)
