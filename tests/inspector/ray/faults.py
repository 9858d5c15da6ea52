"""Fault injection for the Ray tests: an actor class that kills its own process once, mid-run.

Production code has no hook for this: ``dying_worker`` subclasses the job's actor class (``InspectWorker``,
``EmbedWorker``) and the ``worker_dies_once`` fixture swaps it in on the driver, which hands the class to Ray
(a class made in a function is pickled by value, so the workers need no copy of this module).
"""
from __future__ import annotations

import os
from pathlib import Path


def dying_worker(base: type, text: int, marker: Path) -> type:
    """``base`` whose actor exits its process (no cleanup, as a crash would) on the first block holding text
    ``text``; the ``marker`` file records that it did, so the retried block runs normally."""

    class Dying(base):
        def __call__(self, block: dict):
            index = block["index"]
            if int(index[0]) <= text <= int(index[-1]) and not os.path.exists(marker):
                Path(marker).write_text(f"pid {os.getpid()} exited on text {text}\n")
                os._exit(1)
            return super().__call__(block)

    Dying.__name__ = Dying.__qualname__ = f"Dying{base.__name__}"
    return Dying
