"""The pad statistics' per-layer sums in one pass over each fetched state (the compiled ``_fused`` module).

ONNX Runtime has no operator that takes several reductions in one read, so the in-graph statistics
(``padlens.inspector.stats.ingraph``) read each layer's state six times (its norms, the unit-vector sums
and the anchor's row, the anchor dots, the pad sums per position, the neighbour steps written and read
back). On a CPU the session instead hands out each state as an output (ONNX Runtime returns its own
buffer, no copy) and ``_fused.layer`` reads every row once, while it is in the cache, for all of
them, in float64; the attention maps stay in the graph. A batch's layers are dealt between the calling
thread and helpers (the module releases the GIL), each layer whole on one thread.

Built from ``_fused.c`` when padlens is installed (an optional extension: without a C compiler the
install goes on, ``available()`` is False and the sums run inside the graph as before).
"""
from __future__ import annotations

import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from padlens.inspector.stats import measures

try:
    from padlens.inspector.stats import _fused
except ImportError:  # built without a C compiler: the in-graph statistics run instead
    _fused = None

#: the environment variable that turns the compiled module off (``available``)
OFF_SWITCH = "PADLENS_NO_COMPILED"
#: the widest states the one-pass sums are used for: their share of a run falls with the width (they
#: grow with B·T·H a layer, the model with B·T·H²), while fetching every state keeps them all until
#: the run ends (the in-graph sums free each once read); wider models keep the sums in the graph
MAX_WIDTH = 768
#: the most threads one batch's layers are split between (the caller's and helpers)
MAX_THREADS = 8
#: the workspaces a thread's calls take in turn (a call's arrays are written again three calls on),
#: up to this many bytes a workspace; past it each call takes fresh arrays
RING = 3
RING_BYTES = 64 << 20


def available() -> bool:
    """Whether the compiled module loaded and is not switched off (``PADLENS_NO_COMPILED=1`` in the
    environment: the sums then run as ONNX operators in the graph, for a comparison or a suspect build)."""
    return _fused is not None and os.environ.get(OFF_SWITCH, "") not in ("1", "true", "yes")


@functools.cache
def _helpers() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=MAX_THREADS - 1, thread_name_prefix="padlens-fused")


class _Workspace:
    """One call's arrays for states of one shape, kept for later calls: fresh arrays of these sizes
    cost their pages' first writes each batch (about 3,000 page faults a MiniLM batch, 20 ms in a VM)."""

    def __init__(self, layers: int, b: int, t: int, h: int):
        self.shape = (layers, b, t, h)
        self.sq, self.steps = np.empty((layers, b, t)), np.empty((layers, b, t))
        self.dots = np.empty((layers, b, t, 1))
        self.sums = np.empty((layers, b, 3, h))
        self.positions = np.empty((layers, t, 1, h))
        self.text = np.empty((b, 4, h))

    @staticmethod
    def bytes(layers: int, b: int, t: int, h: int) -> int:
        return 8 * (layers * (3 * b * t + 3 * b * h + t * h) + 4 * b * h)


_local = threading.local()


def _workspace(shape: tuple[int, int, int, int]) -> _Workspace:
    """The next workspace of this thread's ring for ``shape`` (a new ring when the shape changes), or
    a fresh one past ``RING_BYTES``."""
    if _Workspace.bytes(*shape) > RING_BYTES:
        return _Workspace(*shape)
    ring = getattr(_local, "ring", None)
    if ring is None or ring[0].shape != shape:
        ring = _local.ring = [_Workspace(*shape) for _ in range(RING)]
        _local.turn = 0
    _local.turn = (_local.turn + 1) % RING
    return ring[_local.turn]


def layer_sums(states: list[np.ndarray], mask: np.ndarray, threads: int | None = None) -> tuple[np.ndarray, ...]:
    """(sq, sums, dots, steps, positions, text) of the float32 states ``[B, T, H]`` in ``states``, layers
    stacked first, as ``ingraph.read`` takes them from the graph: sq and steps ``[L, B, T]`` (steps' row
    0 is ‖h_0‖²), sums ``[L, B, 3, H]`` (Σ h/‖h‖ over pads, over real tokens, and h_anchor), dots
    ``[L, B, T, 1]`` (h_t · h_anchor), positions ``[L, T, 1, H]`` (Σ over the batch's pads at each
    position); text: the last state's ``[B, 4, H]`` pooled sums (``measures.TEXT_SUM_ROWS``). All float64.
    The layers are split between ``threads`` threads (None: the machine's cores, at most ``MAX_THREADS``).

    Up to ``RING_BYTES`` the arrays belong to a ring of ``RING`` workspaces of the calling thread: a
    call's results are overwritten by the third call after it on the same thread. The statistics add
    each batch to their accumulators before the next batch but one is read (``steps.measure`` settles
    the previous batch's first), so nothing reads them that late; a caller that keeps them copies them."""
    if _fused is None:
        raise RuntimeError("padlens' compiled statistics module is not built")
    if not states:
        raise ValueError("no states")
    mask = np.asarray(mask)
    pad = np.ascontiguousarray(mask == 0, dtype=np.uint8)
    anchor = np.ascontiguousarray(measures.pad_anchor(mask), dtype=np.int64)
    first = np.ascontiguousarray((mask != 0).argmax(1), dtype=np.int64)
    b, t = mask.shape
    xs = [np.ascontiguousarray(state, dtype=np.float32) for state in states]
    w = _workspace((len(xs), b, t, xs[0].shape[-1]))
    calls = [(x, pad, anchor, first, 0, b, w.sq[k], w.dots[k], w.steps[k], w.sums[k], w.positions[k, :, 0, :],
              w.text if k == len(xs) - 1 else None) for k, x in enumerate(xs)]
    n = max(1, min(threads or os.cpu_count() or 1, MAX_THREADS, len(calls)))
    shares = [calls[i::n] for i in range(n)]  # layers dealt in turn: each thread's about as large
    helped = [_helpers().submit(_layers, share) for share in shares[1:]]
    _layers(shares[0])
    for job in helped:
        job.result()
    return w.sq, w.sums, w.dots, w.steps, w.positions, w.text


def _layers(calls: list[tuple]) -> None:
    """Some of a batch's layers, one after the other."""
    for args in calls:
        _fused.layer(*args)
