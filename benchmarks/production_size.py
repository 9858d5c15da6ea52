"""Production size: padlens against bare ONNX Runtime on one model folder, whole processes side by side.

    .venv/bin/python benchmarks/production_size.py            # the size table: builds what is missing
    .venv/bin/python benchmarks/production_size.py --quick    # smoke check of every contender
    .venv/bin/python benchmarks/production_size.py benchmarks/work/qwen3-0.6b --reps 5   # one model
    .venv/bin/python benchmarks/production_size.py --inspect --texts 256 --reps 3   # issue 33: inspect vs bare

With no model given: MiniLM (``padlens export minilm-l6 -o benchmarks/work/minilm``), ModernBERT-base's
and Qwen3-Embedding-0.6B's configurations (``build_production_model.py``), each built first when missing.

Per model, each round runs every contender as its own process (``spawn.spawn_measured``: wall,
CPU, peak RSS from the kernel), the order rotating per round; medians over ``--reps`` rounds:

- ``bare_open``: ``onnxruntime.InferenceSession`` on the file; ``padlens_open``: ``Encoder.open``
  (locate, instrument with the in-graph statistics, session) — target (b) ≤ 1.5x.
- ``bare_loop``: the session, the model's tokenizer and padding side, ``--texts`` corpus texts
  padded to ``--max-length``, every hidden state fetched; ``inspect``: ``padlens inspect`` on the
  same texts with ``--json`` — target (a) ≥ 0.9x the bare loop's time, peak RSS ≤ 1.2x.
- ``audit``: ``padlens audit`` on the same texts, neighbour batches of ``--batch-size`` rows: peak RSS
  ≤ 1.3x the bare loop's, time vs inspect (c). ``audit_default``: the same without ``--batch-size``
  (what a user runs: a text between a short and a long neighbour, variants stacked when rows are
  independent of their batch).
- ``--inspect`` (issue 33's table): ``bare_loop``, ``bare_last`` (the plain graph's ``last_hidden_state``
  only), ``inspect``, and ``inspect_hidden`` (inspect's own steps with no attention statistics: what
  those cost alone is inspect's time and memory over it), every state side by side.
- ``bare_sorted``: the session over the texts sorted by length, batches padded to their longest,
  the last output fetched; ``embed``: ``padlens embed`` — target (d) ≥ 0.95x. ``probe``: peak RSS.

Writes ``benchmarks/work/production_size.json`` (every process, medians, ratios) and prints a
Markdown table: model, weights, open ratio, run ratio, peak RSS over the bare loop's.
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
from pathlib import Path

from spawn import fresh_bytecode, spawn_measured, write_result

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / "work"
PY = str(ROOT / ".venv" / "bin" / "python")
PADLENS = str(ROOT / ".venv" / "bin" / "padlens")

# the bare contenders, run as ``python -c BARE MODE MODEL TEXTS MAX_LENGTH BATCH THREADS``
BARE = r"""
import sys, time
import onnxruntime as ort
mode, model, texts_file, max_length, batch, threads = sys.argv[1:7]
max_length, batch, threads = int(max_length), int(batch), int(threads)
from padlens.inspector.inputs.resolve import resolve_models
from padlens.inspector.inputs.tokenize import load_tokenizer
from padlens.inspector.model.graph import load_encoder
from padlens.inspector.runtime.feeds import make_feeds
ref = resolve_models([model])[0]
if mode in ("padlens_open", "inspect_hidden"):
    import json
    from padlens.inspector import steps
    from padlens.inspector.runtime.encoder import Encoder
    from padlens.inspector.runtime.session import SessionOptions
    enc = Encoder.open(ref, SessionOptions(threads=threads), keep_model=False, stats=True, check_exposure=True,
                       attention=mode == "padlens_open")
    if mode == "padlens_open":
        sys.exit(0)
    # inspect's own steps without the attention maps' statistics: their cost is inspect's time less this
    texts = [line.rstrip("\n") for line in open(texts_file, encoding="utf-8") if line.strip()]
    run, side = steps.new_run(ref, "cpu", enc, 0.0, max_length), enc.padding_side("auto")[0]
    for i in range(0, len(texts), batch):
        steps.measure_chunk([run], texts[i:i + batch], max_length, "max_length", side, first=i == 0)
    json.dumps(steps.finish(run).to_dict(), allow_nan=False)
    sys.exit(0)
graph = load_encoder(ref.path)  # the inputs and the hidden outputs (their names only)
hidden, inputs, last = [str(t) for t in graph.layers.hidden], graph.inputs, graph.outputs[0]
del graph
options = ort.SessionOptions()
options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
session = ort.InferenceSession(str(ref.path), options, providers=["CPUExecutionProvider"])
if mode == "bare_open":
    sys.exit(0)
tok = load_tokenizer(ref.tokenizer_path)
side = tok.padding_side
if mode == "bare_last":  # issue 33's bare loop: the plain graph, its last_hidden_state only
    mode, hidden = "bare_loop", [last]
texts = [line.rstrip("\n") for line in open(texts_file, encoding="utf-8") if line.strip()]
if mode == "bare_sorted":
    lengths = [len(tok.encode([t], max_length=max_length, padding="longest", side=side).input_ids[0]) for t in texts]
    texts = [texts[i] for i in sorted(range(len(texts)), key=lengths.__getitem__)]
fetch = hidden if mode == "bare_loop" else [last]
padding = "max_length" if mode == "bare_loop" else "longest"
for i in range(0, len(texts), batch):
    b = tok.encode(texts[i:i + batch], max_length=max_length, padding=padding, side=side)
    session.run(fetch, make_feeds(inputs, b))
"""


def default_models() -> list[str]:
    """MiniLM, ModernBERT-base's and Qwen3-0.6B's configurations, built first when missing."""
    import subprocess

    if not (WORK / "minilm" / "model.onnx").is_file():
        subprocess.run([PADLENS, "export", "minilm-l6", "-o", str(WORK / "minilm"), "--precision", "fp32"], check=True)
    missing = [n for n in ("modernbert-base", "qwen3-0.6b") if not (WORK / n / "build.json").is_file()]
    if missing:
        subprocess.run([PY, str(ROOT / "benchmarks" / "build_production_model.py"), *missing], check=True)
    return [str(WORK / "minilm" / "model.onnx"), str(WORK / "modernbert-base"), str(WORK / "qwen3-0.6b")]


def model_path(arg: str) -> Path:
    path = Path(arg)
    return path / "model.onnx" if path.is_dir() else path


def corpus(n: int, words: tuple[int, int] | None, seed: int = 0) -> list[str]:
    """``n`` lines of the bundled corpus (cycled, numbered), or of ``words`` random corpus words."""
    lines = [t for t in (ROOT / "inspector" / "data" / "corpus.txt").read_text(encoding="utf-8").splitlines() if t.strip()]
    if words is None:
        return [lines[i % len(lines)] + (f" ({i})" if i >= len(lines) else "") for i in range(n)]
    import random

    rng, vocab = random.Random(seed), " ".join(lines).split()
    return [" ".join(rng.choices(vocab, k=rng.randint(*words))) for _ in range(n)]


def commands(model: Path, texts: Path, mixed: Path, out: Path, args) -> dict[str, list[str]]:
    common = ["--max-length", str(args.max_length), "--batch-size", str(args.batch_size), "--threads", str(args.threads)]
    bare = [PY, "-c", BARE]
    tail = [str(args.max_length), str(args.batch_size), str(args.threads)]
    return {
        "bare_open": bare + ["bare_open", str(model), str(texts)] + tail,
        "padlens_open": bare + ["padlens_open", str(model), str(texts)] + tail,
        "bare_loop": bare + ["bare_loop", str(model), str(texts)] + tail,
        "bare_last": bare + ["bare_last", str(model), str(texts)] + tail,
        "inspect": [PADLENS, "inspect", str(model), "--texts", str(texts), *common, "--json", str(out / "inspect.json")],
        "inspect_hidden": bare + ["inspect_hidden", str(model), str(texts)] + tail,
        "audit": [PADLENS, "audit", str(model), "--texts", str(texts), *common, "--json", str(out / "audit.json")],
        "audit_default": [PADLENS, "audit", str(model), "--texts", str(texts), "--max-length", str(args.max_length),
                          "--threads", str(args.threads), "--json", str(out / "audit_default.json")],
        "bare_sorted": bare + ["bare_sorted", str(model), str(mixed)] + tail,
        "embed": [PADLENS, "embed", str(model), "--texts", str(mixed), "-o", str(out / "embed.npy"), *common],
        "probe": [PADLENS, "probe", str(model), "--texts", str(texts), *common, "--json", str(out / "probe.json")],
    }


def measure_model(arg: str, args) -> dict:
    model = model_path(arg)
    out = Path(tempfile.mkdtemp(prefix="production-", dir=WORK))
    texts, mixed = out / "texts.txt", out / "mixed.txt"
    texts.write_text("\n".join(corpus(args.texts, None)) + "\n", encoding="utf-8")
    mixed.write_text("\n".join(corpus(args.embed_texts, (4, 120))) + "\n", encoding="utf-8")
    cmds = commands(model, texts, mixed, out, args)
    names = [n for n in cmds if n not in args.skip]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), PYTHONPATH=str(ROOT))
    runs: dict[str, list[dict]] = {n: [] for n in names}
    for rep in range(args.reps):
        for name in names[rep % len(names):] + names[:rep % len(names)]:
            m = spawn_measured(cmds[name], env, out / f"{name}.err", ok=(0, 1))  # audit exits 1 on a failed check
            runs[name].append({"wall_s": m.wall_s, "cpu_s": m.cpu_s, "rss_mb": m.rss_mb, "code": m.code})
            print(f"  {model.parent.name} {name}: {m.wall_s:.2f} s, {m.rss_mb:.0f} MB", file=sys.stderr, flush=True)
    med = {n: {k: statistics.median(r[k] for r in runs[n]) for k in ("wall_s", "cpu_s", "rss_mb")} for n in names}
    weights = sum(p.stat().st_size for p in model.parent.iterdir() if p.name.startswith(model.name))
    return {"model": str(model), "weights_bytes": weights, "runs": runs, "median": med,
            "ratios": ratios(med), "commands": {n: cmds[n][:2] + cmds[n][3:] if cmds[n][1] == "-c" else cmds[n]
                                                for n in names}}


def ratios(med: dict) -> dict:
    """The targets' ratios, where both sides were measured (speed: bare time / padlens time)."""
    def r(a: str, b: str, key: str) -> float | None:
        return med[a][key] / med[b][key] if a in med and b in med else None
    return {"open_x": r("padlens_open", "bare_open", "wall_s"),           # ≤ 1.5
            "inspect_speed": r("bare_loop", "inspect", "wall_s"),         # ≥ 0.95 (issue 33)
            "inspect_rss_x": r("inspect", "bare_loop", "rss_mb"),         # ≤ 1.2
            "inspect_speed_vs_last": r("bare_last", "inspect", "wall_s"),
            "inspect_rss_vs_last": r("inspect", "bare_last", "rss_mb"),
            "attention_stats_time_x": r("inspect", "inspect_hidden", "wall_s"),  # their cost alone
            "attention_stats_rss_x": r("inspect", "inspect_hidden", "rss_mb"),
            "audit_rss_x": r("audit", "bare_loop", "rss_mb"),             # ≤ 1.3
            "audit_vs_inspect_time": r("audit", "inspect", "wall_s"),
            "audit_default_rss_x": r("audit_default", "bare_loop", "rss_mb"),   # ≤ 1.3
            "audit_default_vs_inspect_time": r("audit_default", "inspect", "wall_s"),
            "embed_speed": r("bare_sorted", "embed", "wall_s"),           # ≥ 0.95
            "probe_rss_x": r("probe", "bare_loop", "rss_mb")}


def inspect_table(results: list[dict]) -> str:
    """``--inspect``: padlens inspect against the bare loops, and the attention statistics' cost alone."""
    rows = ["| model | weights | bare loop (all states) | bare loop (last) | inspect | inspect without attention "
            "| speed vs bare | RSS vs bare | speed vs last | RSS vs last | attention stats time |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for res in results:
        m, q = res["median"], res["ratios"]

        def cell(name, m=m):
            return f"{m[name]['wall_s']:.1f} s, {m[name]['rss_mb']:.0f} MB" if name in m else "–"

        def f(x):
            return "–" if x is None else f"{x:.2f}x"
        rows.append(f"| {Path(res['model']).parent.name} | {res['weights_bytes'] / 1e9:.2f} GB | {cell('bare_loop')} | "
                    f"{cell('bare_last')} | {cell('inspect')} | {cell('inspect_hidden')} | {f(q['inspect_speed'])} | "
                    f"{f(q['inspect_rss_x'])} | {f(q['inspect_speed_vs_last'])} | {f(q['inspect_rss_vs_last'])} | "
                    f"{f(q['attention_stats_time_x'])} |")
    return "\n".join(rows)


def table(results: list[dict]) -> str:
    rows = ["| model | weights | open / bare | inspect speed | inspect RSS / bare | audit RSS / bare | embed speed |",
            "|---|---|---|---|---|---|---|"]
    for res in results:
        q = res["ratios"]

        def f(x):
            return "–" if x is None else f"{x:.2f}x"
        rows.append(f"| {Path(res['model']).parent.name} | {res['weights_bytes'] / 1e9:.2f} GB | {f(q['open_x'])} | "
                    f"{f(q['inspect_speed'])} | {f(q['inspect_rss_x'])} | {f(q['audit_rss_x'])} | {f(q['embed_speed'])} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="model folders (model.onnx inside) or .onnx files "
                        "(default: the three of the size table, built when missing)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--texts", type=int, default=32)
    parser.add_argument("--embed-texts", type=int, default=256)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip", nargs="*", default=[], help="contenders to leave out (e.g. probe audit)")
    parser.add_argument("--quick", action="store_true", help="smoke check: 1 round, 8 texts, 32 to embed, length 32")
    parser.add_argument("--inspect", action="store_true", help="inspect side by side only: the bare loops (every "
                        "state; last_hidden_state), padlens inspect, and inspect without the attention statistics")
    args = parser.parse_args()
    fresh_bytecode(ROOT)
    if args.inspect:
        args.skip = sorted(set(args.skip) | {"bare_open", "padlens_open", "audit", "audit_default", "bare_sorted",
                                             "embed", "probe"})
    else:
        args.skip = sorted(set(args.skip) | {"bare_last", "inspect_hidden"})
    if args.quick:
        args.reps, args.texts, args.embed_texts, args.max_length, args.batch_size = 1, 8, 32, 32, 8
    WORK.mkdir(parents=True, exist_ok=True)
    results = [measure_model(m, args) for m in (args.models or default_models())]
    write_result(WORK / "production_size.json", {"args": vars(args), "load": os.getloadavg(), "models": results})
    print(inspect_table(results) if args.inspect else table(results))


if __name__ == "__main__":
    main()
