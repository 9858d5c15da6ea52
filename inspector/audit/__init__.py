"""`padlens audit`: does padding leak into real tokens? Checks per model, precision and provider.

The package: ``results`` (CheckResult, AuditResult, JUnit), ``variants`` (what a variant is), ``running`` (how
it is run), ``cache`` (the ``Probe``: what is cached),
``facts`` (what the checks read, gathered once), the check families ``invariance``, ``graph_checks``
and ``drift``, the ``registry`` describing each check once, ``render`` (terminal text) and
``run`` (the ``audit()`` entry point). Names are imported lazily, so reading the registry
(``padlens --help``) does not load onnx or ONNX Runtime.

May import: inputs/, model/, runtime/, stats/, report/ (formatting, JSON), contract. Never probe/ or ray/.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "audit": "run", "audit_run": "run", "DEFAULT_TEXTS": "run", "Settings": "run",
    "AuditResult": "results", "CheckResult": "results", "DriftPoint": "results", "Verdict": "results",
    "ERROR": "results", "WARNING": "results",
    "Probe": "cache", "Layout": "variants", "Sequences": "variants", "tokenize": "variants",
    "Facts": "facts", "SPECS": "registry", "CheckSpec": "registry", "render_text": "render",
    "check_model": "api",
}
__all__ = [*_EXPORTS]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
