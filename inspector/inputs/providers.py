"""Execution-provider names as users write them (``cuda``) and as ONNX Runtime spells them: checked before any session."""
from __future__ import annotations

from padlens.errors import ProviderError

CPU = "CPUExecutionProvider"

PROVIDER_ALIASES: dict[str, str] = {
    "cpu": CPU,
    "cuda": "CUDAExecutionProvider",
    "gpu": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
    "rocm": "ROCMExecutionProvider",
    "dml": "DmlExecutionProvider",
    "directml": "DmlExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "migraphx": "MIGraphXExecutionProvider",
    "dnnl": "DnnlExecutionProvider",
    "xnnpack": "XnnpackExecutionProvider",
    "qnn": "QNNExecutionProvider",
    "webgpu": "WebGpuExecutionProvider",
}


def known_providers() -> list[str]:
    """Every provider name padlens accepts: the aliases and ORT's full names."""
    import onnxruntime as ort  # imported when used: reading the options stays light (``--help``)

    return sorted(set(PROVIDER_ALIASES) | set(ort.get_all_providers()))


def canonical_provider(name: str) -> str:
    """``cuda`` -> ``CUDAExecutionProvider``; a full ORT name is returned as ORT spells it."""
    key = name.strip()
    if key.lower() in PROVIDER_ALIASES:
        return PROVIDER_ALIASES[key.lower()]
    import onnxruntime as ort

    full = {p.lower(): p for p in ort.get_all_providers()}
    full.update({v.lower(): v for v in PROVIDER_ALIASES.values()})
    for candidate in (key.lower(), key.lower() + "executionprovider"):
        if candidate in full:
            return full[candidate]
    raise ProviderError(f"unknown provider {name!r}; known: {', '.join(sorted(PROVIDER_ALIASES))}, "
                        "or any ONNX Runtime provider name such as CUDAExecutionProvider")
