"""fp16 conversion and int8 quantization of the fp32 export; every layer output is kept."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from padlens.errors import ExportFailed
from padlens.inspector.contract import PRECISION_FILES, PRECISIONS  # noqa: F401  (re-exported)

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


# int8 (dynamic and static) is made by padlens.exporter.quantize, the one owner of
# onnxruntime.quantization: ONE int8-static recipe for `padlens export` and `padlens quantize`.
from padlens.exporter.quantize.recipe import (  # noqa: F401  (re-exported for the exporter)
    DYNAMIC_RECIPE,
    STATIC_RECIPE,
    StaticRecipe,
    quantize_int8_dynamic,
    quantize_int8_static,
    quantized_nodes,
)
