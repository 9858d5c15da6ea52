"""padlens inspect (in-graph and numpy statistics) against a bare ONNX Runtime loop, interleaved.

    .venv/bin/padlens export minilm-l6 -o /tmp/ins/minilm --precision fp32
    .venv/bin/python benchmarks/inspect_speed.py /tmp/ins/minilm --texts 1024 --reps 3 --threads 2
    .venv/bin/python benchmarks/inspect_speed.py /tmp/ins/minilm --provider cuda   # on a GPU machine

Three ways through the same texts (the bundled corpus cycled, each line numbered), padded to
``--max-length``, in batches of ``--batch-size``, one after another in each round (the order
rotates per round), ``--reps`` rounds, medians:

- ``bare``: ``onnxruntime.InferenceSession`` on the file as it is (a padlens export already
  lists ``hidden_states.0..L`` as outputs), the same tokenizer and padding, fetching the
  seven hidden states of every batch; no metrics. Timed from creating the session.
- ``numpy``: ``padlens.inspect(stats="numpy")``: every layer, every metric in float64 from the
  copied-out states and attention maps, then the result's JSON written to a file.
- ``graph``: ``padlens.inspect(stats="graph")``: the same with the statistics reduced inside the
  ONNX Runtime session (``padlens.inspector.stats.ingraph``).

``--paired``: the same three paths batch by batch in one process (each batch goes through all
three, in an order that rotates per batch; open, exposure check, finish and JSON timed apart),
so that a busy spell of a shared machine hits them alike.

Tokens/s counts padded tokens (texts x max length). Also times ``Encoder.open`` (load, locate,
expose, session) with and without the statistics graph. Prints a Markdown table and writes
``benchmarks/work/inspect_speed.json``.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import time
from importlib import metadata
from pathlib import Path

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / "work"
MODES = ("bare", "numpy", "graph")


def corpus_texts(n: int) -> list[str]:
    """``n`` lines of the bundled corpus, cycled, each made distinct by a number."""
    lines = [t for t in (ROOT / "inspector" / "data" / "corpus.txt").read_text(encoding="utf-8").splitlines()
             if t.strip()]
    return [lines[i % len(lines)] + (f" ({i})" if i >= len(lines) else "") for i in range(n)]


def session_options(args):
    """The ``SessionOptions`` of ``--provider`` and ``--threads``."""
    from padlens.inspector.runtime.session import SessionOptions

    return SessionOptions(tuple(args.provider), threads=args.threads)


def model_file(folder: str) -> str:
    path = Path(folder)
    return str(path / "model.onnx" if path.is_dir() else path)


def bare(args, texts: list[str]) -> dict:
    """A bare ORT loop: session on the file, the same tokenizer and padding, hidden states fetched."""
    import onnxruntime as ort

    from padlens.inspector.inputs.resolve import resolve_models
    from padlens.inspector.inputs.tokenize import load_tokenizer
    from padlens.inspector.model.graph import load_encoder
    from padlens.inspector.runtime.feeds import make_feeds
    from padlens.inspector.runtime.session import resolve_providers

    ref = resolve_models([model_file(args.model)])[0]
    graph = load_encoder(ref.path)  # outside the timing: only to know the inputs and the hidden outputs
    fetch = [str(t) for t in graph.layers.hidden]
    missing = [t for t in fetch if t not in graph.outputs]
    if missing:
        raise SystemExit(f"{ref.path} does not list {missing} as outputs: pass a padlens export")
    inputs = graph.inputs
    del graph
    start = time.perf_counter()
    options = ort.SessionOptions()
    if args.threads:
        options.intra_op_num_threads, options.inter_op_num_threads = args.threads, 1
    session = ort.InferenceSession(str(ref.path), options, providers=resolve_providers(args.provider))
    tokenizer = load_tokenizer(ref.tokenizer_path)
    loaded = time.perf_counter()
    for i in range(0, len(texts), args.batch_size):
        batch = tokenizer.encode(texts[i:i + args.batch_size], max_length=args.max_length,
                                 padding="max_length", side="right")
        session.run(fetch, make_feeds(inputs, batch))
    done = time.perf_counter()
    return {"wall_s": done - start, "load_s": loaded - start, "loop_s": done - loaded}


def padlens_inspect(args, texts: list[str], stats: str) -> dict:
    """``padlens.inspect`` on the texts, then its JSON written to a file: the whole result."""
    from padlens.fsio import atomic_write
    from padlens.inspector.inspect import inspect

    start = time.perf_counter()
    result = inspect([model_file(args.model)], texts=texts, max_length=args.max_length, batch_size=args.batch_size,
                     threads=args.threads, providers=tuple(args.provider), padding_side="right", stats=stats)
    atomic_write(WORK / f"inspect_speed_{stats}.json", json.dumps(result.to_dict(), indent=2, allow_nan=False) + "\n")
    done = time.perf_counter()
    run = result.runs[0]
    return {"wall_s": done - start, "load_s": run.timings["load"], "verify_s": run.timings["verify"],
            "forward_s": run.timings["forward"], "metrics_s": run.timings["metrics"],
            "stats": run.encoder.stats, "n_texts": run.n_texts}


def paired(args, texts: list[str]) -> dict:
    """Batch by batch in one process: each batch through the bare loop, then inspect's numpy and
    graph paths (``steps.measure``: forward, metrics, the exposure check on the first batch),
    in an order that rotates per batch; then each path's finish and JSON. A slow spell of a
    shared machine hits the three alike. Seconds per path: open, batches, finish + JSON."""
    import onnxruntime as ort

    from padlens.inspector import steps
    from padlens.inspector.inputs.resolve import resolve_models
    from padlens.inspector.runtime.encoder import Encoder
    from padlens.inspector.runtime.feeds import make_feeds
    from padlens.inspector.runtime.session import resolve_providers

    ref = resolve_models([model_file(args.model)])[0]
    seconds = {mode: {"open": 0.0, "batches": 0.0, "finish": 0.0} for mode in MODES}
    start = time.perf_counter()
    options = ort.SessionOptions()
    if args.threads:
        options.intra_op_num_threads, options.inter_op_num_threads = args.threads, 1
    session = ort.InferenceSession(str(ref.path), options, providers=resolve_providers(args.provider))
    seconds["bare"]["open"] = time.perf_counter() - start
    runs = {}
    for mode in ("numpy", "graph"):
        start = time.perf_counter()
        enc = Encoder.open(resolve_models([model_file(args.model)])[0], session_options(args), keep_model=False,
                           stats=mode == "graph", check_exposure=True)
        runs[mode] = steps.new_run(enc.ref, args.provider[0], enc, time.perf_counter() - start, args.max_length)
        seconds[mode]["open"] = time.perf_counter() - start
    tokenizer, inputs = runs["numpy"].encoder.tokenizer, runs["numpy"].encoder.graph.inputs
    fetch = [str(t) for t in runs["numpy"].encoder.graph.layers.hidden]
    for index, i in enumerate(range(0, len(texts), args.batch_size)):
        chunk = texts[i:i + args.batch_size]
        batch = tokenizer.encode(chunk, max_length=args.max_length, padding="max_length", side="right")
        for mode in MODES[index % 3:] + MODES[:index % 3]:
            start = time.perf_counter()
            if mode == "bare":
                session.run(fetch, make_feeds(inputs, batch))
            else:
                steps.measure(runs[mode], batch, first=index == 0, texts=chunk)
            seconds[mode]["batches"] += time.perf_counter() - start
    for mode in ("numpy", "graph"):
        start = time.perf_counter()
        doc = json.dumps(steps.finish(runs[mode]).to_dict(), indent=2, allow_nan=False)
        (WORK / f"inspect_speed_paired_{mode}.json").write_text(doc)
        seconds[mode]["finish"] = time.perf_counter() - start
    for mode in MODES:
        seconds[mode]["total"] = sum(seconds[mode].values())
    for mode in ("numpy", "graph"):
        seconds[mode]["vs_bare"] = seconds["bare"]["total"] / seconds[mode]["total"]
        seconds[mode]["batches_vs_bare"] = seconds["bare"]["batches"] / seconds[mode]["batches"]
    return seconds


def open_times(args, runs: int = 5) -> dict:
    """Median seconds of ``Encoder.open`` without and with the statistics graph (interleaved)."""
    from padlens.inspector.inputs.resolve import resolve_models
    from padlens.inspector.runtime.encoder import Encoder

    times: dict[str, list[float]] = {"open": [], "open_stats": []}
    for i in range(runs + 1):
        for key, stats in (("open", False), ("open_stats", True)):
            ref = resolve_models([model_file(args.model)])[0]
            start = time.perf_counter()
            enc = Encoder.open(ref, session_options(args), keep_model=False, stats=stats)
            if i:  # the first round warms the page cache and imports
                times[key].append(time.perf_counter() - start)
            del enc
    return {key: statistics.median(values) for key, values in times.items()} | {"runs": times}


def machine() -> dict:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    cpu = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")), "?")
    versions = {}
    for dist in ("onnxruntime", "onnxruntime-gpu", "onnx", "numpy", "tokenizers", "padlens"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "versions": versions,
            "load_before": os.getloadavg()}


def measure(args) -> dict:
    texts = corpus_texts(args.texts)
    if args.paired:
        before = os.getloadavg()
        passes = [paired(args, texts) for _ in range(args.reps)]
        return {"args": vars(args), "machine": machine() | {"load_before": before}, "paired": passes,
                "load_after": os.getloadavg()}
    runs: dict[str, list[dict]] = {mode: [] for mode in MODES}
    for rep in range(args.reps):
        order = MODES[rep % len(MODES):] + MODES[:rep % len(MODES)]
        for mode in order:
            got = bare(args, texts) if mode == "bare" else padlens_inspect(args, texts, mode)
            runs[mode].append(got)
            print(f"round {rep + 1} {mode:5s} {got['wall_s']:7.2f} s", flush=True)
    tokens = args.texts * args.max_length
    summary = {}
    for mode, values in runs.items():
        wall = statistics.median(v["wall_s"] for v in values)
        summary[mode] = {"wall_s": wall, "tokens_per_s": tokens / wall,
                         "median": {k: statistics.median(v[k] for v in values)
                                    for k in values[0] if isinstance(values[0][k], float)}}
    for mode in ("numpy", "graph"):
        summary[mode]["vs_bare"] = summary["bare"]["wall_s"] / summary[mode]["wall_s"]
        summary[mode]["vs_bare_loop"] = (summary["bare"]["median"]["loop_s"]
                                         / (summary[mode]["median"]["forward_s"] + summary[mode]["median"]["metrics_s"]))
    return {"args": vars(args), "machine": machine(), "runs": runs, "summary": summary,
            "agreement": json_agreement(), "load": open_times(args), "load_after": os.getloadavg()}


def json_agreement() -> dict:
    """Largest difference between the numpy and graph JSONs of the last round: floats (relative
    to max(1, |x|)), and the paths whose keys or other values differ."""
    a = json.loads((WORK / "inspect_speed_numpy.json").read_text())
    b = json.loads((WORK / "inspect_speed_graph.json").read_text())
    worst = {"max_diff": 0.0, "where": "", "mismatches": []}

    def walk(x, y, path: str) -> None:
        if isinstance(x, dict):
            if set(x) != set(y):
                worst["mismatches"].append(f"{path}: keys")
            for key in set(x) & set(y):
                if key not in ("timings", "stats"):
                    walk(x[key], y[key], f"{path}.{key}")
        elif isinstance(x, list) and isinstance(y, list) and len(x) == len(y):
            for i, (p, q) in enumerate(zip(x, y)):
                walk(p, q, f"{path}[{i}]")
        elif isinstance(x, float) and isinstance(y, float):
            diff = abs(x - y) / max(1.0, abs(x))
            if diff > worst["max_diff"]:
                worst["max_diff"], worst["where"] = diff, path
        elif x != y:
            worst["mismatches"].append(path)

    walk(a, b, "")
    return worst


def table(out: dict) -> str:
    s, rows = out["summary"], []
    rows.append("| | wall s (rounds) | median | tokens/s | vs bare | loop-only vs bare | load | verify | forward | metrics |")
    rows.append("|---|---|---|---|---|---|---|---|---|---|")
    for mode in MODES:
        walls = ", ".join(f"{r['wall_s']:.1f}" for r in out["runs"][mode])
        m = s[mode]["median"]
        ratio = f"{s[mode]['vs_bare']:.3f}×" if mode != "bare" else "1"
        loop = f"{s[mode]['vs_bare_loop']:.3f}×" if mode != "bare" else "1"
        forward = m.get("forward_s", m.get("loop_s"))
        rows.append(f"| {mode} | {walls} | {s[mode]['wall_s']:.2f} | {s[mode]['tokens_per_s']:,.0f} | {ratio} | {loop} "
                    f"| {m['load_s']:.2f} | {m.get('verify_s', 0):.2f} | {forward:.2f} | {m.get('metrics_s', 0):.2f} |")
    load = out["load"]
    rows.append("")
    rows.append(f"Encoder.open median: {load['open']:.3f} s without, {load['open_stats']:.3f} s with the statistics graph")
    agree = out["agreement"]
    rows.append(f"numpy vs graph JSON: largest difference {agree['max_diff']:.2e} at {agree['where']}; "
                f"other mismatches: {agree['mismatches'] or 'none'}")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default=str(WORK / "minilm"), help="padlens export dir (fp32 model.onnx)")
    parser.add_argument("--texts", type=int, default=1024)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--provider", action="append", default=None, help="cpu (default), cuda, ...")
    parser.add_argument("--paired", action="store_true",
                        help="batch by batch in one process (the three paths take turns on each batch)")
    args = parser.parse_args()
    args.provider = args.provider or ["cpu"]
    WORK.mkdir(parents=True, exist_ok=True)
    out = measure(args)
    (WORK / ("inspect_speed_paired.json" if args.paired else "inspect_speed.json")).write_text(json.dumps(out, indent=2))
    print(paired_table(out) if args.paired else table(out))


def paired_table(out: dict) -> str:
    rows = ["| pass | path | open s | batches s | finish + JSON s | total s | vs bare | batches vs bare |",
            "|---|---|---|---|---|---|---|---|"]
    for n, seconds in enumerate(out["paired"], 1):
        for mode in MODES:
            s = seconds[mode]
            rows.append(f"| {n} | {mode} | {s['open']:.2f} | {s['batches']:.2f} | {s['finish']:.2f} | {s['total']:.2f} "
                        f"| {s.get('vs_bare', 1):.3f} | {s.get('batches_vs_bare', 1):.3f} |")
    for mode in ("numpy", "graph"):
        ratio = statistics.median(p[mode]["vs_bare"] for p in out["paired"])
        rows.append(f"\nmedian {mode} vs bare: {ratio:.3f}×")
    return "\n".join(rows)


if __name__ == "__main__":
    main()
