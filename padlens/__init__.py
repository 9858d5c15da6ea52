"""padlens: what the [PAD] positions of a transformer encoder hold, and where they leak.

The public API, imported lazily (``import padlens`` loads neither onnxruntime nor torch)::

    from padlens import export, inspect, audit, embed, probe

    export("minilm-l6", "out/minilm")                   # needs padlens[export]
    result = inspect(["out/minilm"], texts=["this is a sample sentence"])
    verdict = audit(["out/minilm"])                      # verdict.passed, verdict.checks
    embed("out/minilm", "texts.txt", "emb.npy")
    quantize("folder/onnx/model.onnx", "model.int8-static.onnx")  # verified before kept
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: public name -> module that defines it (a later command adds one line here)
_API = {
    "export": "padlens.exporter",
    "inspect": "padlens.inspector.inspect",
    "audit": "padlens.inspector.audit",
    "embed": "padlens.inspector.embed",
    "probe": "padlens.inspector.probe",
    "quantize": "padlens.exporter.quantize",
    "study": "padlens.inspector.study",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
