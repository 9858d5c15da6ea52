"""Reference loops for the throughput benchmark: bare ONNX Runtime and PyTorch, one process each.

    python benchmarks/loops.py bare  EXPORT_DIR TEXTS_FILE --max-length 128 --batch-size 32
    python benchmarks/loops.py torch EXPORT_DIR TEXTS_FILE --max-length 128 --batch-size 32

``bare``: the same instrumented graph padlens builds (every layer exposed, attention
probabilities included), the same tokenizer and padding, fetching every output; no metrics.
``torch``: transformers AutoModel with output_hidden_states=True on the same texts, padding
and batch size, loaded from the Hugging Face folder the export came from (``--hf-dir``).
Prints one JSON line: mode, texts, load and loop seconds.
"""
from __future__ import annotations

import argparse
import json
import logging
import time

log = logging.getLogger(__name__)


def read_lines(path: str) -> list[str]:
    with open(path, encoding="utf-8") as fh:
        return [line.rstrip("\n") for line in fh if line.strip()]


def bare(args) -> dict:
    from padlens.inspector.inputs.resolve import resolve_models
    from padlens.inspector.runtime.encoder import Encoder
    from padlens.inspector.runtime.session import SessionOptions

    start = time.perf_counter()
    enc = Encoder.open(resolve_models([args.model])[0], SessionOptions(threads=args.threads))
    session = enc.session.session
    fetch = list(dict.fromkeys(list(enc.graph.outputs) + enc.hidden_outputs + enc.attention_outputs))
    texts = read_lines(args.texts)
    loaded = time.perf_counter()
    n_out = 0
    for i in range(0, len(texts), args.batch_size):
        batch = enc.tokenizer.encode(texts[i:i + args.batch_size], max_length=args.max_length,
                                     padding="max_length", side="right")
        n_out += len(session.run(fetch, enc.feeds(batch)))
    done = time.perf_counter()
    return {"mode": "bare", "texts": len(texts), "outputs": len(fetch), "load_s": loaded - start,
            "loop_s": done - loaded}


def torch_loop(args) -> dict:
    import torch
    from transformers import AutoModel, AutoTokenizer

    start = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    tok = AutoTokenizer.from_pretrained(args.hf_dir)
    model = AutoModel.from_pretrained(args.hf_dir).eval()
    texts = read_lines(args.texts)
    loaded = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(texts), args.batch_size):
            enc = tok(texts[i:i + args.batch_size], padding="max_length", truncation=True,
                      max_length=args.max_length, return_tensors="pt")
            out = model(**enc, output_hidden_states=True)
            [h.numpy() for h in out.hidden_states]  # what a user would take out of torch
    done = time.perf_counter()
    return {"mode": "torch", "texts": len(texts), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "load_s": loaded - start, "loop_s": done - loaded}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["bare", "torch"])
    parser.add_argument("model", help="export dir (bare) — ignored by torch, which reads --hf-dir")
    parser.add_argument("texts")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--hf-dir", help="Hugging Face model folder (torch mode)")
    args = parser.parse_args()
    result = bare(args) if args.mode == "bare" else torch_loop(args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
