"""Build the production-size benchmark models (random weights, offline) under benchmarks/work/.

    .venv/bin/python benchmarks/build_production_model.py qwen3-0.6b       # ≈ 70 s, 5.8 GB peak
    .venv/bin/python benchmarks/build_production_model.py modernbert-base

``qwen3-0.6b``: transformers ``Qwen3Model`` with Qwen3-Embedding-0.6B's configuration (hidden
1024, 28 layers, intermediate 3072, 16 heads, 8 KV heads, head_dim 128, vocab 151,669, tied
embeddings, rope_theta 1e6, pad id 151,643 whose embedding row is zero), exported by Optimum
(padlens' exporter: task ``feature-extraction``, every hidden state as an output) to
``model.onnx`` + ``model.onnx_data`` (2.4 GB of external data), with a WordLevel tokenizer over
the whole vocabulary that pads on the left and appends ``<|endoftext|>`` like Qwen3-Embedding.
``modernbert-base``: ModernBERT-base's configuration (149M parameters, vocab 50,368, 22
layers), self-contained, a tokenizer padding on the right with [CLS] … [SEP].

Each folder gets ``build.json`` (config, parameter count, seconds); an existing folder with
``build.json`` is kept (``--force`` rebuilds). Never commit these folders (git-ignored).
"""
from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / "work"

QWEN3_0_6B = dict(vocab_size=151_669, hidden_size=1024, num_hidden_layers=28, intermediate_size=3072,
                  num_attention_heads=16, num_key_value_heads=8, head_dim=128, tie_word_embeddings=True,
                  rope_theta=1_000_000.0, max_position_embeddings=32_768, rms_norm_eps=1e-6,
                  pad_token_id=151_643, bos_token_id=151_643, eos_token_id=151_643)
MODERNBERT_BASE = dict(vocab_size=50_368, hidden_size=768, num_hidden_layers=22, intermediate_size=1152,
                       num_attention_heads=12, global_attn_every_n_layers=3, local_attention=128,
                       max_position_embeddings=8192, pad_token_id=50_283, cls_token_id=50_281,
                       sep_token_id=50_282, bos_token_id=50_281, eos_token_id=50_282)
MODELS = {"qwen3-0.6b": ("qwen3", QWEN3_0_6B), "modernbert-base": ("modernbert", MODERNBERT_BASE)}


def corpus_words() -> list[str]:
    """The lowercased words of the bundled corpus, in first-seen order."""
    text = (ROOT / "inspector" / "data" / "corpus.txt").read_text(encoding="utf-8").lower()
    return list(dict.fromkeys(re.findall(r"\w+|[^\w\s]", text)))


def vocabulary(size: int, specials: dict[int, str]) -> dict[str, int]:
    """``size`` tokens: the corpus words and digits first, fillers after, ``specials`` at their ids."""
    words = [w for w in dict.fromkeys(corpus_words() + [str(d) for d in range(10)]) if w not in specials.values()]
    fillers = (f"tok{i}" for i in range(size))
    tokens = iter(words + [next(fillers) for _ in range(size - len(specials) - len(words))])
    vocab = {token: i for i, token in specials.items()}
    vocab.update((next(tokens), i) for i in range(size) if i not in specials)
    return vocab


def save_tokenizer(out: Path, family: str, config: dict) -> None:
    """A WordLevel tokenizer over the model's whole vocabulary, saved with tokenizer_config.json."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    if family == "qwen3":
        specials = {config["pad_token_id"]: "<|endoftext|>", config["pad_token_id"] + 1: "<|im_start|>",
                    config["pad_token_id"] + 2: "<|im_end|>", 0: "<unk>"}
        pad, unk, side = "<|endoftext|>", "<unk>", "left"
        template = processors.TemplateProcessing(single="$A <|endoftext|>", special_tokens=[(pad, config["pad_token_id"])])
    else:
        specials = {config["pad_token_id"]: "[PAD]", config["cls_token_id"]: "[CLS]",
                    config["sep_token_id"]: "[SEP]", 50_280: "[UNK]", 50_284: "[MASK]"}
        pad, unk, side = "[PAD]", "[UNK]", "right"
        template = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[
            ("[CLS]", config["cls_token_id"]), ("[SEP]", config["sep_token_id"])])
    vocab = vocabulary(config["vocab_size"], specials)
    tok = Tokenizer(models.WordLevel(vocab, unk_token=unk))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tok.post_processor = template
    tok.add_special_tokens(list(specials.values()))
    tok.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "pad_token": pad, "unk_token": unk,
        "padding_side": side, "model_max_length": 8192}, indent=2) + "\n")
    (out / "special_tokens_map.json").write_text(json.dumps({"pad_token": pad, "unk_token": unk}, indent=2) + "\n")


def build_model(family: str, config: dict, scratch: Path):
    """Random weights, saved as a Hugging Face folder in ``scratch``; returns the parameter count."""
    import torch
    import transformers as tf

    classes = {"qwen3": (tf.Qwen3Config, tf.Qwen3Model), "modernbert": (tf.ModernBertConfig, tf.ModernBertModel)}
    config_class, model_class = classes[family]
    torch.manual_seed(0)
    model = model_class(config_class(**config)).eval()
    params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(str(scratch))
    del model
    return params


def export(family: str, hf_dir: Path, out: Path) -> None:
    """padlens' exporter (Optimum, feature-extraction, every hidden state) into ``out``."""
    from padlens.exporter.backends.optimum import discard, export_fp32, move_export

    scratch = Path(tempfile.mkdtemp(prefix="optimum-", dir=WORK))
    try:
        move_export(export_fp32(hf_dir, family, scratch), out / "model.onnx")
    finally:
        discard(scratch)


def build(name: str, force: bool) -> Path:
    out = WORK / name
    if (out / "build.json").is_file() and not force:
        log.warning("%s already built (build.json); --force rebuilds", out)
        return out
    family, config = MODELS[name]
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    start = time.perf_counter()
    hf_dir = Path(tempfile.mkdtemp(prefix="hf-", dir=WORK))
    try:
        params = build_model(family, config, hf_dir)
        export(family, hf_dir, out)
    finally:
        shutil.rmtree(hf_dir, ignore_errors=True)
    save_tokenizer(out, family, config)
    files = {p.name: p.stat().st_size for p in sorted(out.iterdir())}
    (out / "build.json").write_text(json.dumps({"name": name, "family": family, "config": config, "parameters": params,
                                                "files": files, "seconds": time.perf_counter() - start}, indent=2) + "\n")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+", choices=sorted(MODELS))
    parser.add_argument("--force", action="store_true", help="rebuild a folder that has build.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    WORK.mkdir(parents=True, exist_ok=True)
    for name in args.names:
        print(build(name, args.force))


if __name__ == "__main__":
    main()
