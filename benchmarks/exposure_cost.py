"""Cost of exposing every layer: last_hidden_state only vs every layer, plain and ORT-fused graph.

    python benchmarks/exposure_cost.py EXPORT_DIR TEXTS_FILE [--max-length 128] [--batch-size 32]

Four sessions in one process, run on the same tokenized batches, interleaved round by round
(so machine noise hits every variant alike); prints one JSON line with the median seconds
per round of each variant and the exposed/last-only ratios.
"""
from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path

import onnx

log = logging.getLogger(__name__)


def last_only(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose only graph output is last_hidden_state (the layers stay intermediates)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    keep = [o for o in out.graph.output if o.name == "last_hidden_state"] or [out.graph.output[0]]
    del out.graph.output[:]
    out.graph.output.extend(keep)
    return out


def every_layer(path: Path) -> onnx.ModelProto:
    """What padlens runs: layers located and exposed (padlens.inspector.model.graph)."""
    from padlens.inspector.model import graph

    g = graph.load_encoder(path)
    model, _ = graph.expose_outputs(last_only(g.model), list(g.layers.hidden) + list(g.layers.attention))
    return model


def fused(path: Path, tmp: Path) -> Path:
    """ORT's transformer optimizer output (Attention, SkipLayerNorm, BiasGelu fused)."""
    from onnxruntime.transformers import optimizer

    opt = optimizer.optimize_model(str(path), model_type="bert", num_heads=0, hidden_size=0)
    target = tmp / "fused.onnx"
    opt.save_model_to_file(str(target))
    log.info("fused ops: %s", opt.get_fused_operator_statistics())
    return target


def session(model: onnx.ModelProto, tmp: Path, name: str, threads: int | None):
    import onnxruntime as ort

    path = tmp / f"{name}.onnx"
    onnx.save(model, str(path))
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export")
    parser.add_argument("texts")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--texts-limit", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()

    from padlens.inspector.inputs.tokenize import load_tokenizer
    from padlens.inspector.model.graph import load_encoder
    from padlens.inspector.runtime.feeds import make_feeds

    src = Path(args.export) / "model.onnx"
    tok = load_tokenizer(args.export)
    texts = [t for t in Path(args.texts).read_text(encoding="utf-8").splitlines() if t.strip()][:args.texts_limit]
    batches = [tok.encode(texts[i:i + args.batch_size], max_length=args.max_length)
               for i in range(0, len(texts), args.batch_size)]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        fused_path = fused(src, tmp)
        plain, fused_model = onnx.load(str(src)), onnx.load(str(fused_path))
        variants = {"plain_last": session(last_only(plain), tmp, "pl", args.threads),
                    "plain_every": session(every_layer(src), tmp, "pe", args.threads),
                    "fused_last": session(last_only(fused_model), tmp, "fl", args.threads),
                    "fused_every": session(every_layer(fused_path), tmp, "fe", args.threads)}
        inputs = load_encoder(src).inputs
        feeds = [make_feeds(inputs, b) for b in batches]
        times = {k: [] for k in variants}
        for s in variants.values():  # warm-up
            s.run(None, feeds[0])
        for _ in range(args.rounds):
            for name, s in variants.items():
                start = time.perf_counter()
                for f in feeds:
                    s.run(None, f)
                times[name].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    outputs = {k: len(s.get_outputs()) for k, s in variants.items()}
    print(json.dumps({"texts": len(texts), "rounds": args.rounds, "median_s": med, "outputs": outputs,
                      "plain_ratio": med["plain_every"] / med["plain_last"],
                      "fused_ratio": med["fused_every"] / med["fused_last"],
                      "fused_vs_plain": med["fused_every"] / med["plain_every"]}))


if __name__ == "__main__":
    main()
