"""padlens.inspector: inspect, audit and embed any ONNX encoder with ONNX Runtime, no PyTorch.

Names are imported lazily: ``import padlens.inspector`` (or one of its light modules, such as
``contract``) loads neither onnx nor onnxruntime until a name that needs them is used. The
functions ``inspect``, ``audit`` and ``embed`` share their submodules' names, so they are
taken from the top: ``from padlens import inspect, audit, embed``.
"""
from __future__ import annotations

import importlib

#: public name -> submodule that defines it
_EXPORTS = {
    "InspectResult": "inspect", "RunResult": "inspect", "LayerMetrics": "inspect",
    "PoolingDamage": "inspect", "Fault": "inspect", "InspectSettings": "inspect",
    "choose_max_length": "inputs.lengths",
    "AuditResult": "audit", "CheckResult": "audit", "EmbedResult": "embed",
    "pool": "stats.pooling", "l2_normalize": "stats.pooling", "PoolingConfig": "stats.pooling", "resolve_pooling": "stats.pooling",
    "Encoder": "runtime.encoder", "EncoderInfo": "runtime.encoder", "Forward": "runtime.encoder",
    "ModelRef": "inputs.resolve", "resolve_models": "inputs.resolve",
    "load_encoder": "model.graph", "EncoderGraph": "model.graph",
    "create_session": "runtime.session", "SessionInfo": "runtime.session", "SessionOptions": "runtime.session",
    "load_tokenizer": "inputs.tokenize", "Batch": "inputs.tokenize",
    "read_texts": "inputs.texts", "iter_texts": "inputs.texts",
    "render": "report.table",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
