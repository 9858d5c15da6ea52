"""Time ``Encoder.open`` (load, locate, expose, create the session) on an exported MiniLM fp32.

Usage: .venv/bin/python benchmarks/load_time.py [EXPORT_DIR] [RUNS]
(EXPORT_DIR defaults to benchmarks/work/minilm: `padlens export minilm-l6 -o DIR --precision fp32`).
Prints the median wall and CPU seconds over RUNS opens after one warm-up open. To compare two
versions, run them interleaved (PYTHONPATH pointing at the other version's package tree).
"""
from __future__ import annotations

import logging
import statistics
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)


def main(folder: str, runs: int) -> None:
    from padlens.inspector.inputs.resolve import resolve_models
    from padlens.inspector.runtime.encoder import Encoder

    Encoder.open(resolve_models([folder])[0])
    wall, cpu = [], []
    for _ in range(runs):
        ref = resolve_models([folder])[0]
        started, cpu_started = time.perf_counter(), time.process_time()
        encoder = Encoder.open(ref)
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
        del encoder
    print(f"Encoder.open median wall {statistics.median(wall):.3f} s, cpu {statistics.median(cpu):.3f} s "
          f"({runs} runs: {[round(t, 3) for t in wall]})")


if __name__ == "__main__":
    default = Path(__file__).resolve().parent / "work" / "minilm"
    main(sys.argv[1] if len(sys.argv) > 1 else str(default), int(sys.argv[2]) if len(sys.argv) > 2 else 5)
