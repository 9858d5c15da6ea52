"""`padlens probe`: linear probes of what one pad state knows.

``data`` (the states collected per layer), ``fit`` (the probes, scikit-learn's), ``run`` (the
``probe()`` entry point and its results), ``table`` and ``plots`` (rendering). Names are imported
lazily: ``from padlens.inspector.probe import probe, ProbeResult``.

May import: inputs/, runtime/, report/ (formatting, JSON, figures). Never ray/ or audit/.
"""
from __future__ import annotations

import importlib

_EXPORTS = {"probe": "run", "fitter": "run", "ProbeResult": "run", "ProbeRun": "run", "ProbeLayer": "run",
            "ProbeScore": "run", "TARGETS": "run", "STATES": "run"}
__all__ = [*_EXPORTS]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
