"""Audit tolerances: per-precision defaults, and parsing of `--tolerance NAME=VALUE`."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

from padlens.errors import BadInput
from padlens.inspector.audit import registry

#: Numerical classes a model's precision falls into; each has its own rounding noise.
#: ``int4`` holds the 4-bit (and narrower) weight-only precisions: int4-weight, nf4-weight, fp4-weight.
CLASSES = ("fp32", "fp16", "int8", "int4")

#: Minimum cosine (real tokens at every layer, and the pooled embedding) for the
#: invariance checks, where the model is compared with itself: a correct graph is exact
#: up to rounding, so these only absorb rounding noise (fp32 ~1e-6, fp16 ~1e-3, one int8
#: step). ORT's dynamically quantized MiniLM reaches ~0.985 and must fail.
INVARIANCE_COS = {"fp32": 0.99999, "fp16": 0.9999, "int8": 0.999, "int4": 0.999}
#: Maximum |Δ| of a real token, relative to the mean norm of that text's states at that layer.
INVARIANCE_DELTA = {"fp32": 1e-3, "fp16": 1e-2, "int8": 5e-2, "int4": 5e-2}
#: Minimum pooled cosine against the fp32 CPU reference (a different graph: here the
#: precision's own error counts, not only rounding). Measured on MiniLM: fp16 0.999999;
#: int8 static (MatMul-only QDQ, per-channel) 0.983-0.999 per text, int8 dynamic 0.93-0.96; a quantized
#: mask path wrecks it (0.38, DESIGN.md). The int8 floor catches broken, not mediocre, int8.
#: 4-bit weights (MatMulNBits block 32, MatMulBnb4 NF4 block 64; int4 class) measure 0.957-0.965
#: on MiniLM: their floor sits below that, above what a broken graph gives.
DRIFT_COS = {"fp32": 0.99999, "fp16": 0.999, "int8": 0.8, "int4": 0.9}
#: `mask_honoured` (b): an all-ones mask must move real tokens by at least this (relative).
MASK_EFFECT = 1e-6

#: Check names come from the audit's registry (one description per check).
INVARIANCE_CHECKS = registry.names(registry.INVARIANCE)
GRAPH_CHECKS = registry.names(registry.GRAPH)
CHECKS = registry.names()


@dataclass(frozen=True)
class Tolerance:
    """Thresholds one check applies to one model.

    Attributes:
        cos: minimum cosine (tokens at every layer and pooled); None where unused.
        delta: maximum |Δ| relative to the state norm; None where unused.
    """

    cos: float | None = None
    delta: float | None = None


def precision_class(precision: str | None) -> str:
    """``fp32``, ``fp16``, ``int8`` or ``int4`` for a precision label (``int8-dynamic`` -> ``int8``,
    ``int4-weight+fp16`` -> ``int4``: the weights' error dominates the fp16 compute's)."""
    p = (precision or "fp32").lower()
    if _FOUR_BIT.match(p):
        return "int4"
    if p.startswith(("int", "uint", "q", "u8", "s8")) or "int8" in p:
        return "int8"
    if p.startswith(("fp16", "float16", "bf16", "half")) or "fp16" in p:
        return "fp16"
    return "fp32"


#: 4-bit (or narrower) weights: int4-weight, uint4, nf4-weight, fp4-weight, q4, q4f16, bnb4
_FOUR_BIT = re.compile(r"^(u?int[1-4](?!\d)|nf4|fp4|q4|bnb4)")


def default_tolerance(check: str, klass: str) -> Tolerance:
    """The built-in thresholds of ``check`` for precision class ``klass``."""
    if check == "reference_drift":
        return Tolerance(cos=DRIFT_COS[klass])
    if check in INVARIANCE_CHECKS:
        return Tolerance(cos=INVARIANCE_COS[klass], delta=INVARIANCE_DELTA[klass])
    return Tolerance()


def tolerance_for(check: str, precision: str | None,
                  overrides: dict[str, float] | None = None) -> Tolerance:
    """Thresholds for ``check`` on a model of ``precision``, after user overrides.

    ``overrides`` maps ``CHECK`` (the cosine) and ``CHECK.delta`` to a value, applied to every
    precision; ``reference_drift.CLASS`` (e.g. ``reference_drift.int4``) to one precision class only.
    """
    klass = precision_class(precision)
    tol = default_tolerance(check, klass)
    overrides = overrides or {}
    for name in (check, f"{check}.{klass}"):
        if name in overrides:
            tol = replace(tol, cos=overrides[name])
    if f"{check}.delta" in overrides:
        tol = replace(tol, delta=overrides[f"{check}.delta"])
    return tol


def known_names() -> list[str]:
    """Every name ``--tolerance`` accepts."""
    names = []
    for check in INVARIANCE_CHECKS:
        names += [check, f"{check}.delta"]
    return names + ["reference_drift"] + [f"reference_drift.{klass}" for klass in CLASSES]


def validate(overrides: dict[str, float] | None) -> dict[str, float]:
    """Check names and values of a tolerance mapping; raise BadInput naming the bad one."""
    out = {}
    for name, value in (overrides or {}).items():
        if name not in known_names():
            raise BadInput(f"unknown tolerance {name!r}; known: {', '.join(known_names())}")
        out[name] = _check_value(name, value)
    return out


def _check_value(name: str, value: object) -> float:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise BadInput(f"tolerance {name}={value!r} is not a number") from None
    if not math.isfinite(v) or v < 0:
        raise BadInput(f"tolerance {name}={value!r} must be a finite number >= 0")
    if not name.endswith(".delta") and v > 1:
        raise BadInput(f"tolerance {name}={value!r} is a minimum cosine: between 0 and 1")
    return v


def parse_tolerances(items: list[str] | tuple[str, ...]) -> dict[str, float]:
    """Parse ``["padding_invariance=0.9999", ...]`` (the CLI's repeated option)."""
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise BadInput(f"{item!r} is not NAME=VALUE (e.g. padding_invariance=0.9999)", parameter="tolerances")
        out.update(validate({name.strip(): value.strip()}))
    return out
