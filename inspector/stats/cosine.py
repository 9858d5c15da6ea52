"""The one row cosine padlens compares vectors with (audit, probes, export validation, quantize checks), float64."""
from __future__ import annotations

import numpy as np


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """cos between matching rows of ``a`` and ``b`` (``[..., d]`` -> ``[...]``), in float64.

    The zero-row rule: a zero row has no direction. Two zero rows are the same vector (1.0);
    a zero row against a non-zero one shares no direction with it (0.0). A row holding NaN
    or Inf gives NaN (callers count it as a fault). The pad metrics, which leave zero states
    out of their means instead, use ``metrics.unit_rows``.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    na, nb = np.linalg.norm(a, axis=-1), np.linalg.norm(b, axis=-1)
    dots = np.einsum("...d,...d->...", a, b)
    with np.errstate(divide="ignore", invalid="ignore"):
        cos = np.where((na > 0) & (nb > 0), dots / (na * nb), np.where((na == 0) & (nb == 0), 1.0, 0.0))
    bad = ~np.isfinite(a).all(axis=-1) | ~np.isfinite(b).all(axis=-1)
    return np.where(bad, np.nan, np.clip(cos, -1.0, 1.0))
