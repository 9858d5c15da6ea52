"""quantize speed: embed throughput of an fp32 encoder, its folder's dynamic int8, and `padlens quantize`'s files.

    .venv/bin/python benchmarks/quantize_speed.py                    # MiniLM, 1,024 texts, 3 rounds
    .venv/bin/python benchmarks/quantize_speed.py --texts 128 --reps 1   # a smoke run
    .venv/bin/python benchmarks/quantize_speed.py --model benchmarks/work/qwen3-0.6b/model.onnx

MiniLM: a transformers.js-style folder (benchmarks/work/quantize-tjs, built once by
tests/exporter/quantize/folders.py: Optimum-style fp32 export + ORT quantize_dynamic per-channel,
reduce-range, every IntegerOps op type as onnx/model_quantized.onnx). ``--model FILE``: any fp32
file instead (the 0.6B benchmark model of the production-size issue), its folder's dynamic int8
when it has one. Each scheme is made once with `padlens quantize` (time and peak RSS recorded),
then one `padlens embed` process per file per round, interleaved, same texts (4-120 words, from
the bundled corpus), same threads. Reported: wall seconds (kernel wait4: loading counts), medians,
each file's ratio to the dynamic int8 (and to fp32), bytes on disk, the lowest row cosine vs fp32.
Results: benchmarks/work/quantize_speed.json (the lead records the final timings in RESULTS.md).
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
from embed_speed import make_corpus
from spawn import spawn_measured, write_result

from padlens.inspector.contract import QUANTIZE_SCHEMES as SCHEMES

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / "work"
BIN = Path(sys.executable).parent
TJS = WORK / "quantize-tjs"
DYNAMIC_NAMES = ("model_quantized.onnx", "model_int8.onnx", "model_qint8_avx512_vnni.onnx")
BATCH = 32


def minilm_folder() -> Path:
    """The transformers.js-style MiniLM folder, built once (imports torch, in a subprocess)."""
    if not (TJS / "onnx" / "model_quantized.onnx").is_file():
        subprocess.run([sys.executable, "-m", "tests.exporter.quantize.folders", "transformers-js", str(TJS)],
                       cwd=ROOT, check=True)
    return TJS / "onnx" / "model.onnx"


def quantized(source: Path, scheme: str, env: dict) -> tuple[Path, dict]:
    """``padlens quantize SOURCE --scheme SCHEME`` beside the source (made once), and its cost."""
    out = WORK / "quantize" / f"{source.parent.parent.name}.{source.stem}.{scheme}.onnx"
    out.parent.mkdir(parents=True, exist_ok=True)
    tok = source.parent.parent if source.parent.name == "onnx" else source.parent
    if out.is_file():
        return out, {}
    cmd = [str(BIN / "padlens"), "quantize", str(source), "-o", str(out), "--scheme", scheme,
           "--tokenizer", str(tok), "--keep-anyway", "--json", str(out) + ".run.json"]
    m = spawn_measured(cmd, env, WORK / ".quantize_speed.stderr", ok=(0, 1))
    print(f"  quantize {scheme}: {m.wall_s:.1f} s, peak RSS {m.rss_mb:.0f} MB, exit {m.code}", flush=True)
    return out, {"wall_s": round(m.wall_s, 1), "rss_mb": round(m.rss_mb), "exit": m.code}


def files(source: Path, env: dict) -> tuple[dict[str, Path], dict]:
    found = {"fp32": source}
    dynamic = next((source.parent / n for n in DYNAMIC_NAMES if (source.parent / n).is_file()), None)
    if dynamic is not None:
        found["int8-dynamic"] = dynamic
    costs = {}
    for scheme in SCHEMES:
        found[scheme], costs[scheme] = quantized(source, scheme, env)
    return found, costs


def size(path: Path) -> int:
    data = [p for p in path.parent.glob(path.name + "*data") if p.is_file()]
    return path.stat().st_size + sum(p.stat().st_size for p in data)


def bench(source: Path, n: int, reps: int, threads: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "true"}
    models, costs = files(source, env)
    texts = make_corpus(WORK / f"embed_texts_{n}.txt", n)
    tok = source.parent.parent if source.parent.name == "onnx" else source.parent
    runs: dict[str, list[float]] = {k: [] for k in models}
    for r in range(reps):
        print(f"round {r + 1}/{reps} (load {os.getloadavg()[0]:.1f})", flush=True)
        for name, path in models.items():
            cmd = [str(BIN / "padlens"), "embed", str(path), "--tokenizer", str(tok), "--texts", str(texts),
                   "-o", str(WORK / f"quantize_embed_{name}.npy"), "--batch-size", str(BATCH),
                   "--threads", str(threads)]
            m = spawn_measured(cmd, env, WORK / ".quantize_speed.stderr")
            print(f"  {m.wall_s:7.1f} s {m.rss_mb:6.0f} MB  {name}", flush=True)
            runs[name].append(m.wall_s)
    med = {k: statistics.median(v) for k, v in runs.items()}
    base = np.load(WORK / "quantize_embed_fp32.npy").astype(np.float64)
    out = {"source": str(source), "texts": n, "reps": reps, "threads": threads, "batch_size": BATCH,
           "wall_s": {k: [round(x, 2) for x in v] for k, v in runs.items()},
           "median_s": {k: round(v, 2) for k, v in med.items()},
           "vs_fp32": {k: round(med["fp32"] / v, 3) for k, v in med.items()},
           "bytes": {k: size(p) for k, p in models.items()},
           "min_cos_vs_fp32": {k: _min_cos(base, np.load(WORK / f"quantize_embed_{k}.npy")) for k in models},
           "quantize_cost": costs, "load_after": os.getloadavg()}
    if "int8-dynamic" in med:
        out["vs_int8_dynamic"] = {k: round(med["int8-dynamic"] / v, 3) for k, v in med.items()}
    return out


def _min_cos(a: np.ndarray, b: np.ndarray) -> float:
    b = b.astype(np.float64)
    return round(float(((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min()), 5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="an fp32 .onnx file (default: MiniLM, transformers.js folder)")
    parser.add_argument("--texts", type=int, default=1024)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    WORK.mkdir(parents=True, exist_ok=True)
    source = args.model or minilm_folder()
    result = bench(source.resolve(), args.texts, args.reps, args.threads)
    name = "quantize_speed.json" if args.model is None else f"quantize_speed_{source.parent.name}.json"
    write_result(WORK / name, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
