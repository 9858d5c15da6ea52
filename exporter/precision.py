"""fp16 conversion and int8 quantization of the fp32 export; every layer output is kept."""
from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from padlens.errors import ExportFailed
from padlens.inspector.contract import PRECISION_FILES, PRECISIONS  # noqa: F401  (re-exported)

log = logging.getLogger(__name__)

#: precision name -> file name in the export folder (the contract lives in padlens.inspector.contract)
FILES = PRECISION_FILES

Feed = dict[str, np.ndarray]


def graph_io(path: Path) -> tuple[list[str], list[str]]:
    """Input and output names of the ONNX graph at ``path``."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return [i.name for i in model.graph.input], [o.name for o in model.graph.output]


def check_outputs(path: Path, expected: Sequence[str]) -> None:
    """Raise ExportFailed when the graph at ``path`` lost any of the ``expected`` outputs."""
    _, outputs = graph_io(path)
    missing = [name for name in expected if name not in outputs]
    if missing:
        raise ExportFailed(f"{path.name} lost its outputs {', '.join(missing)}")


def to_fp16(src: Path, dst: Path) -> None:
    """float16 weights and compute; float32 graph inputs and outputs kept (Cast at the edges)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))


def quantize_int8_dynamic(src: Path, dst: Path) -> None:
    """ONNX Runtime dynamic quantization with its defaults, as production users apply it."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _hide_preprocess_hint():
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)


def quantize_int8_static(src: Path, dst: Path, feeds: Sequence[Feed]) -> None:
    """QDQ static quantization of the MatMuls only, calibrated (MinMax) on ``feeds``.

    Only MatMul inputs get QuantizeLinear/DequantizeLinear pairs, one pair per MatMul
    (``DedicatedQDQPair``), so the residual stream, LayerNorm and the attention-mask path
    (values near float32 min) stay in float, which is what keeps the model usable (see
    DESIGN.md). Weights are quantized per output channel.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if not feeds:
        raise ValueError("int8-static needs at least one calibration feed")
    with _hide_preprocess_hint():
        quantize_static(
            str(src), str(dst), _reader(feeds),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["MatMul"],
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"DedicatedQDQPair": True},
        )


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
def _hide_preprocess_hint() -> Iterator[None]:
    """onnxruntime.quantization logs 'consider pre-processing' on the root logger: drop it."""
    root = logging.getLogger()
    hint = _PreprocessHint()
    root.addFilter(hint)
    try:
        yield
    finally:
        root.removeFilter(hint)
