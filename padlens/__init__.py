"""padlens: what the [PAD] positions of a transformer encoder hold, and where they leak."""
from __future__ import annotations

__version__ = "0.1.0"
