"""Tiny randomly initialised Hugging Face encoders, one per supported architecture.

Usage: python tests/exporter/tiny_models.py OUTDIR ARCH [ARCH...] [--export EXPORTDIR] [--backend NAME]

Runs in a subprocess (it imports torch) so the test process never does: the inspector's
tests check that padlens works without torch. Each ARCH gets OUTDIR/ARCH, a folder saved
with save_pretrained plus a tokenizer built in code with the `tokenizers` library. With
--export, each is then exported (all four precisions) to EXPORTDIR/ARCH by
padlens.exporter.export, and EXPORTDIR/ARCH.error holds the message if one fails.
"""
from __future__ import annotations

import json
import string
import sys
from pathlib import Path

ARCHITECTURES = ("bert", "distilbert", "electra", "modernbert", "mpnet", "qwen2", "qwen3", "roberta",
                 "xlm-roberta")
#: ModernBERT's sliding window: small, so its local layers differ from global ones on short texts
LOCAL_WINDOW = 4
HIDDEN, LAYERS, HEADS, INTERMEDIATE, MAX_POS = 32, 2, 2, 37, 130
WORDS = ("the a is of and to in pad token cat dog sat on mat sentence padding model "
         "where train station hi lot sleep").split()
BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
ROBERTA_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


def vocabulary(specials: list[str]) -> list[str]:
    """Specials first, then characters, continuation pieces and a few words (< 100 tokens)."""
    chars = list(string.ascii_lowercase + string.digits + ".,?'!-")
    vocab = specials + chars + ["##" + c for c in string.ascii_lowercase]
    return vocab + [w for w in WORDS if w not in vocab]


def save_tokenizer(folder: Path, specials: list[str], padding_side: str = "right") -> int:
    """A WordPiece tokenizer over the tiny vocabulary, saved as transformers saves one."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = vocabulary(specials)
    ids = {t: i for i, t in enumerate(vocab)}
    bos, pad, eos, unk, mask = (specials if specials[0] == "<s>" else
                                ["[CLS]", "[PAD]", "[SEP]", "[UNK]", "[MASK]"])
    tok = Tokenizer(models.WordPiece(ids, unk_token=unk, max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} $B:1 {eos}:1",
        special_tokens=[(bos, ids[bos]), (eos, ids[eos])],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token=unk, pad_token=pad, cls_token=bos, sep_token=eos,
        mask_token=mask, model_max_length=MAX_POS - 2, padding_side=padding_side,
    )
    fast.save_pretrained(str(folder))
    return len(vocab)


def tiny_model(arch: str, vocab_size: int):
    """A randomly initialised encoder of ``arch`` (seed 0)."""
    import torch
    import transformers as tf

    torch.manual_seed(0)
    common = dict(vocab_size=vocab_size, max_position_embeddings=MAX_POS)
    bert_like = dict(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                     intermediate_size=INTERMEDIATE, **common)
    if arch == "bert":
        return tf.BertModel(tf.BertConfig(pad_token_id=0, **bert_like))
    if arch == "electra":
        return tf.ElectraModel(tf.ElectraConfig(embedding_size=16, pad_token_id=0, **bert_like))
    if arch == "distilbert":
        return tf.DistilBertModel(tf.DistilBertConfig(
            dim=HIDDEN, n_layers=LAYERS, n_heads=HEADS, hidden_dim=INTERMEDIATE, pad_token_id=0, **common))
    if arch == "modernbert":
        return tf.ModernBertModel(tf.ModernBertConfig(
            pad_token_id=1, bos_token_id=0, eos_token_id=2, cls_token_id=0, sep_token_id=2,
            global_attn_every_n_layers=2, local_attention=LOCAL_WINDOW, **bert_like))
    if arch in ("qwen2", "qwen3"):
        return _tiny_qwen(arch, common)
    if arch == "qwen3_5_text":  # transformers 5 only: hybrid linear attention, which torch.export cannot trace
        return tf.Qwen3_5TextModel(tf.Qwen3_5TextConfig(
            hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS, num_key_value_heads=1,
            intermediate_size=INTERMEDIATE, head_dim=16, linear_key_head_dim=8, linear_value_head_dim=8,
            linear_num_key_heads=2, linear_num_value_heads=2, pad_token_id=1, **common))
    if arch == "nomic_bert":  # transformers 5 only
        return tf.NomicBertModel(tf.NomicBertConfig(pad_token_id=0, type_vocab_size=2, **bert_like))
    if arch == "mpnet":
        return tf.MPNetModel(tf.MPNetConfig(pad_token_id=1, bos_token_id=0, eos_token_id=2, **bert_like))
    config = tf.RobertaConfig if arch == "roberta" else tf.XLMRobertaConfig
    model = tf.RobertaModel if arch == "roberta" else tf.XLMRobertaModel
    return model(config(pad_token_id=1, bos_token_id=0, eos_token_id=2, type_vocab_size=1, **bert_like))


def _tiny_qwen(arch: str, common: dict):
    """A tiny Qwen2/Qwen3 decoder (grouped-query attention, RMSNorm, rotary positions)."""
    import transformers as tf

    config = tf.Qwen3Config if arch == "qwen3" else tf.Qwen2Config
    model = tf.Qwen3Model if arch == "qwen3" else tf.Qwen2Model
    extra = {"head_dim": HIDDEN // HEADS} if arch == "qwen3" else {}
    return model(config(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                        num_key_value_heads=1, intermediate_size=INTERMEDIATE, pad_token_id=1,
                        bos_token_id=0, eos_token_id=2, **extra, **common))


def sentence_transformers_files(folder: Path) -> None:
    """What sentence-transformers keeps beside a model: mean pooling, then Normalize."""
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": HIDDEN, "pooling_mode_cls_token": False,
         "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False}))
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 128, "do_lower_case": False}))


def build(arch: str, folder: Path) -> Path:
    """Save a tiny ``arch`` encoder and its tokenizer in ``folder``; bert gets sentence-transformers files."""
    folder.mkdir(parents=True)
    roberta_like = ("modernbert", "mpnet", "qwen2", "qwen3", "qwen3_5_text", "roberta", "xlm-roberta")
    specials = ROBERTA_SPECIALS if arch in roberta_like else BERT_SPECIALS
    # Qwen3-Embedding pads on the left; the tiny Qwen2 keeps right padding so both sides are exported
    vocab_size = save_tokenizer(folder, specials, "left" if arch == "qwen3" else "right")
    tiny_model(arch, vocab_size).eval().save_pretrained(str(folder))
    if arch == "bert":
        sentence_transformers_files(folder)
    return folder


def main(argv: list[str]) -> None:
    export_dir, backend = None, "auto"
    if "--external-data" in argv:  # every weight to model.onnx.data, as above 2 GB (torch backend)
        from padlens.exporter.backends import dynamo

        dynamo.EXTERNAL_DATA_BYTES = 0
        argv = [a for a in argv if a != "--external-data"]
    if "--backend" in argv:
        i = argv.index("--backend")
        backend = argv[i + 1]
        argv = argv[:i] + argv[i + 2:]
    if "--export" in argv:
        i = argv.index("--export")
        export_dir = Path(argv[i + 1])
        argv = argv[:i] + argv[i + 2:]
    out, archs = Path(argv[0]), argv[1:]
    for arch in archs:
        folder = build(arch, out / arch)
        if export_dir is not None:
            _export(folder, export_dir / arch, backend)


def _export(folder: Path, target: Path, backend: str = "auto") -> None:
    from padlens.errors import PadlensError
    from padlens.exporter import export

    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        export(str(folder), target, backend=backend)
    except PadlensError as exc:
        target.with_name(target.name + ".error").write_text(f"{type(exc).__name__}: {exc}")


if __name__ == "__main__":
    main(sys.argv[1:])
