"""`padlens quantize`: padding-invariant quantized copies of an fp32 ONNX encoder, verified before kept.

The package owns ``onnxruntime.quantization`` (ruff's banned-api says so): ``recipe`` (the one
int8-static recipe, used by ``padlens export`` too, and the exporter's dynamic int8), ``plan``
(which MatMuls stay float, read from the graph), ``weights`` (weight-only MatMulNBits),
``calibrate`` (texts and feeds), ``verify`` (the audit's invariance checks and pooled cosine
against the source) and ``run`` (the ``quantize()`` entry point and its sidecar). Its schemes are
``padlens.inspector.contract.QUANTIZE_SCHEMES``. It may import the inspector's model/, inputs/,
runtime/, stats/, embed (embed's pooling and batching), report/jsonable (JSON) and the audit through
``padlens.inspector.audit.check_model`` only; never probe/, ray/ or inspect, nor torch or transformers
(exporter/quantize/ruff.toml). Names are imported lazily, so ``padlens --help`` loads neither onnx
nor ONNX Runtime.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "quantize": "run", "QuantizeResult": "run", "SCHEMES": "run", "FLOORS": "run", "sidecar_path": "run",
    "StaticRecipe": "recipe", "STATIC_RECIPE": "recipe", "quantize_int8_static": "recipe",
    "quantize_int8_dynamic": "recipe", "float_matmuls": "plan", "quantize_weights": "weights",
    "Verification": "verify",
}
__all__ = [*_EXPORTS]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
