"""How padlens writes numbers for people: one formatter per kind of number, for tables, audits, reports and plots.

Kinds: a cosine (``fmt_cos``), a norm or distance (``fmt_norm``), any other score at a fixed number of
decimals (``fmt_num``: R², accuracy, correlation, thresholds) and a measured value at full precision
(``fmt_measure``: JUnit summaries). Missing values (None, NaN, Inf, not a number) are written ``missing``.
"""
from __future__ import annotations

import math


def finite(value) -> float | None:
    """``value`` as a finite float, or None when it is missing, NaN, Inf or not a number."""
    if value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def fmt_cos(value, precise: bool = False) -> str:
    """A cosine: 3 decimals (``0.983``), '-' when missing or NaN.

    ``precise`` keeps 6 decimals and writes values within 1e-4 of 1 as ``1 - 3.9e-07``, so
    rounding noise stays readable (the audit's verdicts).
    """
    v = finite(value)
    if v is None:
        return "-"
    if not precise:
        return f"{v:.3f}"
    return f"{v:.6f}" if v < 0.9999 else f"1 - {max(1.0 - v, 0.0):.1e}"


def fmt_norm(value) -> str:
    """Norms and distances: 2 decimals, whole numbers from 1000 up; '-' when missing."""
    v = finite(value)
    if v is None:
        return "-"
    return f"{v:.0f}" if abs(v) >= 1000 else f"{v:.2f}"


def fmt_num(value, digits: int = 3, missing: str = "-") -> str:
    """A score at ``digits`` decimals (``0.412``); ``missing`` when there is none."""
    v = finite(value)
    return missing if v is None else f"{v:.{digits}f}"


def fmt_measure(value, missing: str = "n/a") -> str:
    """A measured value or threshold at 6 significant digits (``3.9e-07``, ``0.985``)."""
    v = finite(value)
    return missing if v is None else f"{v:.6g}"
