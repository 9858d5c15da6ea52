"""The memory budget of a run: what one batch's exposed outputs take, against what is available."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Sequence

from padlens.errors import BadInput, Param

if TYPE_CHECKING:
    from padlens.inspector.runtime.encoder import Encoder

MEMORY_SAFETY = 2.0
"""Outputs may take at most 1/MEMORY_SAFETY of the available memory: ONNX Runtime's own
intermediate tensors and the float32 copies padlens makes need about as much again."""


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (MemAvailable), or None when unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def output_bytes_per_text(encoder: Encoder, max_length: int) -> int | None:
    """Bytes one text's exposed outputs take at ``max_length`` tokens: (L+1) float32 [T, H]
    states, the model's own token output, and [heads, T, T] attention per exposed block (one
    block's when the graph reads the maps itself: each is freed once its statistics ran)."""
    hidden = encoder.graph.layers.hidden_size
    if not hidden:
        return None
    t = int(max_length)
    states = (encoder.num_layers + 2) * t * int(hidden) * 4
    heads = max(1, int(hidden) // 64)
    attention = (len(encoder.attention_outputs) or int(encoder.maps_in_graph)) * heads * t * t * 4
    return states + attention


def check_memory(encoders: Sequence[Encoder], batch_size: int, max_length: int,
                 available: int | None = None) -> None:
    """BadInput, suggesting a batch size that fits, when one batch's exposed outputs would
    not fit in the available memory (runs take turns, so the largest run counts)."""
    available = available_memory() if available is None else available
    sizes = [(size, enc) for enc in encoders if (size := output_bytes_per_text(enc, max_length))]
    if not available or not sizes:
        return
    per_text, worst = max(sizes, key=lambda item: item[0])
    budget = available / MEMORY_SAFETY
    if per_text * int(batch_size) <= budget:
        return
    fits = int(budget // per_text)
    need = _size(per_text * int(batch_size))
    head = (f"{worst.label}'s {worst.num_layers + 1} exposed layers need about {need} for a batch of "
            f"{batch_size} at max length {max_length}, but only {_size(available)} of memory is available")
    if fits >= 1:
        raise BadInput(f"{head}: pass ", Param("batch_size", fits), " or less")
    raise BadInput(f"{head}, too little even for one text: pass a smaller ", Param("max_length"))


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover

