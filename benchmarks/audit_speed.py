"""audit speed: `padlens audit` of the demo's four precisions, this tree against an earlier one.

    git worktree add /tmp/ea/before e8b8151          # the tree when issue 11 was filed
    .venv/bin/pip install --no-deps --target /tmp/ea/site /tmp/ea/before
    .venv/bin/python benchmarks/audit_speed.py --before-site /tmp/ea/site [--reps 3]

Each round runs two whole processes, interleaved: the earlier padlens (``python -P -m padlens``
with ``PYTHONPATH`` on the ``--target`` install, so the editable install of this tree is not
seen) and this tree's ``padlens``, both ``-q audit <export dir> --json``, on the demo's export
(``padlens export minilm-l6``: fp32, fp16, int8-dynamic, int8-static) with the 16 default texts.
Wall seconds from the kernel (os.wait4), medians, and whether both give the same verdicts and
values (largest |Δ value| over the checks both report). Results: benchmarks/work/audit_speed.json.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
from pathlib import Path

from spawn import spawn_measured, write_result

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / "work"
BIN = Path(sys.executable).parent
EXPORT = WORK / "minilm-all"


def prepare(export: Path) -> None:
    if not (export / "padlens.json").is_file():
        subprocess.run([str(BIN / "padlens"), "-q", "export", "minilm-l6", "-o", str(export), "--force"], check=True)


def run_measured(cmd: list[str], env: dict) -> float:
    """Wall seconds of ``cmd`` as its own process (exit 0 or 1: the audit's verdict)."""
    m = spawn_measured(cmd, env, WORK / ".audit_speed.stderr", ok=(0, 1))
    print(f"  {m.wall_s:7.1f} s {m.rss_mb:6.0f} MB  {' '.join(cmd[1:])[:110]}", flush=True)
    return m.wall_s


def compare(before: Path, after: Path) -> dict:
    """Same verdicts and values? Over the (model, check) pairs both report."""
    a = {(c["model"], c["name"]): c for c in json.loads(before.read_text())["checks"]}
    b = {(c["model"], c["name"]): c for c in json.loads(after.read_text())["checks"]}
    both = sorted(set(a) & set(b))
    deltas = [abs(a[k]["value"] - b[k]["value"]) for k in both
              if a[k]["value"] is not None and b[k]["value"] is not None]
    return {"checks_compared": len(both), "only_before": sorted(map(list, set(a) - set(b))),
            "only_after": sorted(map(list, set(b) - set(a))),
            "same_verdicts": all(a[k]["passed"] == b[k]["passed"] for k in both),
            "max_abs_value_delta": max(deltas, default=0.0)}


def bench(before_site: Path, export: Path, reps: int) -> dict:
    prepare(export)
    cmds = {
        "before": [sys.executable, "-P", "-m", "padlens", "-q", "audit", str(export), "--json",
                   str(WORK / "audit_before.json")],
        "after": [str(BIN / "padlens"), "-q", "audit", str(export), "--json", str(WORK / "audit_after.json")],
    }
    envs = {"before": {**os.environ, "PYTHONPATH": str(before_site)}, "after": dict(os.environ)}
    walls: dict[str, list[float]] = {k: [] for k in cmds}
    for r in range(reps):
        print(f"round {r + 1}/{reps} (load {os.getloadavg()[0]:.1f})", flush=True)
        for name, cmd in cmds.items():
            walls[name].append(run_measured(cmd, envs[name]))
    med = {k: statistics.median(v) for k, v in walls.items()}
    return {"export": str(export), "reps": reps, "commands": {k: " ".join(v) for k, v in cmds.items()},
            "before_site": str(before_site), "wall_s": {k: [round(x, 2) for x in v] for k, v in walls.items()},
            "median_s": {k: round(v, 2) for k, v in med.items()}, "ratio": round(med["after"] / med["before"], 3),
            "same": compare(WORK / "audit_before.json", WORK / "audit_after.json"), "load_after": os.getloadavg()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before-site", type=Path, required=True,
                        help="a `pip install --no-deps --target DIR` of the earlier tree")
    parser.add_argument("--export", type=Path, default=EXPORT, help="the four-precision export (made if missing)")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)
    WORK.mkdir(parents=True, exist_ok=True)
    result = bench(args.before_site.resolve(), args.export.resolve(), args.reps)
    write_result(WORK / "audit_speed.json", result)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(main())
