"""Plain JSON values from results: dataclasses, numpy values, NaN, paths (one converter)."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

#: ``field(metadata=NOT_IN_JSON)`` keeps a field (arrays for plots) out of ``to_jsonable``.
NOT_IN_JSON = {"json": False}


def to_jsonable(value):
    """Plain JSON values: dataclasses -> dicts of their fields (less those marked
    ``NOT_IN_JSON``), NaN/Inf -> None, numpy scalars and arrays -> Python, paths -> str."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)
                if f.metadata.get("json", True)}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value
