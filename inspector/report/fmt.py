"""How padlens writes numbers for people: one cosine format for tables, audits and reports."""
from __future__ import annotations

import logging
import math

log = logging.getLogger(__name__)


def fmt_cos(value, precise: bool = False) -> str:
    """A cosine: 3 decimals (``0.983``), '-' when missing or NaN.

    ``precise`` keeps 6 decimals and writes values within 1e-4 of 1 as ``1 - 3.9e-07``, so
    rounding noise stays readable (the audit's verdicts).
    """
    if value is None or not math.isfinite(float(value)):
        return "-"
    v = float(value)
    if not precise:
        return f"{v:.3f}"
    return f"{v:.6f}" if v < 0.9999 else f"1 - {max(1.0 - v, 0.0):.1e}"
