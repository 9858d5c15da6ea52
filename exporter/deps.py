"""The export extra: check it is installed (without importing it) and report its versions."""
from __future__ import annotations

import logging
from importlib import metadata
from importlib.util import find_spec

from padlens import __version__
from padlens.errors import MissingExtra

log = logging.getLogger(__name__)

MISSING = "padlens export needs the export extra: pip install 'padlens[export]'"

#: what every backend needs (the torch reference validates every export); Optimum is its backend's own check
_MODULES = ("torch", "transformers")
_DISTRIBUTIONS: tuple[str, ...] = ()


def require_export_extra() -> None:
    """Raise MissingExtra unless torch and transformers are installed (a backend checks the rest)."""
    for name in _MODULES:
        if find_spec(name) is None:
            log.debug("export extra: %s is missing", name)
            raise MissingExtra(MISSING)
    for dist in _DISTRIBUTIONS:
        try:
            metadata.distribution(dist)
        except metadata.PackageNotFoundError:
            log.debug("export extra: distribution %s is missing", dist)
            raise MissingExtra(MISSING) from None


def versions() -> dict[str, str | None]:
    """Versions of padlens and of what made the export, read from package metadata."""
    out: dict[str, str | None] = {"padlens": __version__}
    for dist in ("optimum", "optimum-onnx", "transformers", "torch", "onnxscript", "onnx", "onnxruntime"):
        out[dist] = _version(dist)
    out["onnxruntime"] = out["onnxruntime"] or _version("onnxruntime-gpu")
    return out


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None
