"""padlens.exporter: Hugging Face encoders to ONNX with every layer exposed, in four precisions.

Importing this package never imports torch, transformers or optimum (the `export` extra);
they are imported inside the functions that need them.

    from padlens.exporter import export
    result = export("minilm-l6", "out/minilm")
    result.checks["fp32"].max_abs_real      # vs PyTorch, real tokens
"""
from __future__ import annotations

from .deps import MISSING as MISSING_EXTRA_MESSAGE
from .deps import require_export_extra
from .manifest import MANIFEST
from .pipeline import ExportResult, export, normalize_precisions
from .precision import FILES as PRECISION_FILES
from .precision import PRECISIONS
from .source import SUPPORTED_ARCHITECTURES
from .texts import read_texts
from .validate import FP32_TOLERANCE, LayerDelta, PrecisionCheck

__all__ = [
    "ExportResult", "FP32_TOLERANCE", "LayerDelta", "MANIFEST", "MISSING_EXTRA_MESSAGE",
    "PRECISIONS", "PRECISION_FILES", "PrecisionCheck", "SUPPORTED_ARCHITECTURES", "export",
    "normalize_precisions", "read_texts", "require_export_extra",
]
