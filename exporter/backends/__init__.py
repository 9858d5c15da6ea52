"""Export backends behind one small interface: each writes the fp32 ``model.onnx`` with every hidden state.

``optimum`` (Optimum's ``main_export``, the transformers 4.x lane, extra ``optimum``) and ``torch``
(``torch.onnx.export(dynamo=True)``, any transformers, extra ``export``). Everything after the fp32
file (validation, precisions, manifest) is the pipeline's and the same for both. Importing this
package imports neither torch, transformers nor Optimum.
"""
from __future__ import annotations

from padlens.errors import BadInput

from .base import OUTPUT_AXES, Backend, output_names
from .dynamo import TorchBackend
from .optimum import OptimumBackend

#: ``--backend`` choices: auto picks Optimum where it is installed and supports the installed transformers
BACKENDS: tuple[str, ...] = ("auto", "optimum", "torch")

__all__ = ["BACKENDS", "Backend", "OUTPUT_AXES", "OptimumBackend", "TorchBackend", "choose", "output_names"]


def choose(name: str = "auto") -> Backend:
    """The backend ``name`` asks for, ready to export: BadInput (one line, naming what is missing or
    the pin that excludes it) when it cannot run here; ``auto``: Optimum if it can, else torch."""
    if name not in BACKENDS:
        raise BadInput(f"unknown export backend {name!r}; choose from {', '.join(BACKENDS)}")
    if name == "auto":
        name = "optimum" if OptimumBackend().why_not() is None else "torch"
    backend = OptimumBackend() if name == "optimum" else TorchBackend()
    reason = backend.why_not()
    if reason is not None:
        raise BadInput(f"--backend {name}: {reason}")
    return backend
