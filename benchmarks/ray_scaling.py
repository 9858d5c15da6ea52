"""Ray scaling: in-process vs Ray Data with 1 and 2 workers, and driver memory vs corpus size.

    python benchmarks/ray_scaling.py all benchmarks/work/minilm --texts 10000 --max-length 32 --rounds 3
    python benchmarks/ray_scaling.py one benchmarks/work/minilm TEXTS --engine ray --workers 1 --max-length 32

``all`` writes the corpora (the bundled corpus cycled, as benchmarks/run_all.py does), then
runs every configuration as its own process, interleaved round by round, and prints the
medians as a Markdown table (raw numbers: benchmarks/work/ray_scaling.json). ``one`` runs one
``padlens inspect`` (library call, the CLI's defaults) and prints one JSON line: the job's
seconds, Ray's start-up seconds (a local instance sized to this machine, started before the
job as a running cluster would be), and the driver's own peak RSS (``ru_maxrss`` of this
process: Ray's workers are other processes).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / "work"
#: (engine, workers, ORT threads): in-process with ORT's default threads (pinned to cores) and
#: with 2 threads like the 1-worker actor (not pinned), then Ray with 1 and 2 workers
CONFIGS = (("local", None, None), ("local", None, 2), ("ray", 1, None), ("ray", 2, None))


def one(args) -> dict:
    """One inspection in this process; the measurements as a dict."""
    started = time.perf_counter()
    ray_start = 0.0
    if args.engine == "ray":
        import ray

        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
                 logging_level=logging.ERROR)
        ray_start = time.perf_counter() - started
    job = time.perf_counter()
    result = _inspect(args)
    job_s = time.perf_counter() - job
    if args.engine == "ray":
        import ray

        ray.shutdown()
    run = result.runs[0]
    return {"engine": args.engine, "workers": args.workers, "texts": result.texts_count, "job_s": job_s,
            "ray_start_s": ray_start, "process_s": time.perf_counter() - started,
            "driver_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "pad_pad_cos_last": run.layers[-1].pad_pad_cos, "pad_content_rsa": run.pad_content_rsa}


def _inspect(args):
    common = {"max_length": args.max_length, "batch_size": args.batch_size, "threads": args.threads}
    if args.engine == "local":
        from padlens.inspector.inspect import inspect

        return inspect([args.model], texts_file=args.texts, **common)
    from padlens.inspector.inputs.options import EngineOptions, RunOptions
    from padlens.inspector.ray.inspect_job import inspect_ray

    engine = EngineOptions("ray", workers=args.workers)
    return inspect_ray([args.model], RunOptions(texts_file=args.texts, engine=engine, **common))


def run_one(model: str, texts: Path, engine: str, workers: int | None, args, threads: int | None = None) -> dict:
    cmd = [sys.executable, __file__, "one", model, str(texts), "--engine", engine, "--max-length",
           str(args.max_length), "--batch-size", str(args.batch_size)] + (["--workers", str(workers)] if workers else [])
    cmd += ["--threads", str(threads)] if threads else []
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall_s"] = time.perf_counter() - start
    print(f"  {engine:5} workers={workers or '-'} threads={threads or '-'} texts={out['texts']:6} job {out['job_s']:7.1f} s "
          f"wall {out['wall_s']:7.1f} s driver {out['driver_rss_mb']:6.0f} MB", flush=True)
    return out


def scaling(args) -> dict:
    """Interleaved rounds of in-process, Ray 1 worker, Ray 2 workers on the big corpus."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from run_all import write_texts

    WORK.mkdir(parents=True, exist_ok=True)
    big = write_texts(WORK / f"texts_{args.texts}.txt", args.texts)
    small = write_texts(WORK / f"texts_{args.texts // 4}.txt", args.texts // 4)
    runs = {_key(*c): [] for c in CONFIGS}
    for round_ in range(args.rounds):
        print(f"round {round_ + 1}/{args.rounds}", flush=True)
        for engine, workers, threads in CONFIGS:
            runs[_key(engine, workers, threads)].append(run_one(args.model, big, engine, workers, args, threads))
    memory = {"small": run_one(args.model, small, "ray", 1, args), "big": runs["ray-1"][0]}
    medians = {k: {m: statistics.median(r[m] for r in v) for m in ("job_s", "wall_s", "ray_start_s", "driver_rss_mb")}
               for k, v in runs.items()}
    out = {"texts": args.texts, "max_length": args.max_length, "batch_size": args.batch_size, "rounds": args.rounds,
           "medians": medians, "runs": runs, "memory": memory, "load_after": os.getloadavg(),
           "equal": len({round(r["pad_pad_cos_last"], 9) for v in runs.values() for r in v}) == 1}
    (WORK / "ray_scaling.json").write_text(json.dumps(out, indent=2))
    print(table(out))
    return out


def _key(engine: str, workers: int | None, threads: int | None) -> str:
    return f"{engine}-{workers or 0}" + (f"-t{threads}" if threads else "")


def table(out: dict) -> str:
    base = out["medians"]["local-0"]["job_s"]
    lines = ["| engine | job s (median) | vs in-process | process wall s | Ray start s | driver peak RSS |",
             "|---|---|---|---|---|---|"]
    for key, m in out["medians"].items():
        lines.append(f"| {key} | {m['job_s']:.1f} | {m['job_s'] / base:.2f}× | {m['wall_s']:.1f} | "
                     f"{m['ray_start_s']:.1f} | {m['driver_rss_mb']:.0f} MB |")
    mem = out["memory"]
    lines.append(f"\nDriver peak RSS, Ray 1 worker: {mem['small']['texts']} texts {mem['small']['driver_rss_mb']:.0f} MB, "
                 f"{mem['big']['texts']} texts {mem['big']['driver_rss_mb']:.0f} MB")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("one", "all"):
        p = sub.add_parser(name)
        p.add_argument("model")
        if name == "one":
            p.add_argument("texts")
            p.add_argument("--engine", choices=("local", "ray"), default="local")
            p.add_argument("--workers", type=int)
            p.add_argument("--threads", type=int)
        else:
            p.add_argument("--texts", type=int, default=10_000)
            p.add_argument("--rounds", type=int, default=3)
        p.add_argument("--max-length", type=int, default=32)
        p.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    if args.command == "one":
        print(json.dumps(one(args)))
    else:
        scaling(args)


if __name__ == "__main__":
    main()
