"""Build tiny random sentence-transformers folders, and sentence-transformers' own results on them.

Usage: python tests/st/build.py KIND OUTDIR      (KIND "all": every kind into OUTDIR/KIND)

Runs in a subprocess (it imports torch and sentence-transformers; the test process needs
neither), offline: the models are built from transformers configs with random weights and the
tiny WordPiece tokenizer of tests/fixtures/build.py. KIND:

- ``encoder``: a BERT folder as sentence-transformers 5.x writes it (Transformer, Pooling mean,
  Normalize; max_seq_length 48), then its ONNX files the 5.x way: ``SentenceTransformer(path,
  backend="onnx")`` + ``save_pretrained`` (onnx/model.onnx),
  ``export_dynamic_quantized_onnx_model(model, "avx512_vnni", path)``
  (onnx/model_qint8_avx512_vnni.onnx) and ``export_optimized_onnx_model(model, "O3", path)``
  (onnx/model_O3.onnx), plus a static QDQ file (onnx/model_qdq.onnx) and a float16 one
  (onnx/model_fp16.onnx) made with ONNX Runtime. O4 itself is not made: Optimum's O4 needs a GPU.
- ``decoder``: a Qwen3 folder (Pooling lasttoken, Normalize, the tokenizer padding on the left)
  and its onnx/model.onnx (inputs input_ids, attention_mask, position_ids).
- ``legacy``: a folder as older versions wrote it: ``sentence_transformers.models.*`` type
  names, legacy ``pooling_mode_*`` flags (mean_sqrt_len_tokens), max_seq_length 40 in
  sentence_bert_config.json, no Normalize, model.onnx at the top.
- ``pooling``: no folder; pooling.npz holds random token states, masks padded on the right
  and on the left, and sentence-transformers' Pooling module's output for every mode.

Each folder gets texts.txt and reference.npz: ``SentenceTransformer(folder).encode(texts)``
(PyTorch backend) under ``auto``, and for the encoder under ``mean`` (no Normalize), ``cls``
(with Normalize) and ``onnx_backend`` (sentence-transformers' own ONNX backend).
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))

import build as fixtures  # noqa: E402  (tests/fixtures/build.py: tiny vocab, tokenizer, BERT)

TEXTS = [
    "the cat sat on the mat",
    "a dog",
    "this is a sample sentence with some words in it",
    "padding text is short",
    "what was the model doing when the pad token was there and why was it so long",
    "it",
    " ".join(["this is a long text that the model must cut"] * 7),  # past max_seq_length
    "we can not have one word",
]
#: [PAD]'s outlier: its embedding in dimension 0, and the embedding LayerNorm's weight there
OUTLIER, OUTLIER_GAIN = 100.0, 50.0
#: weights' init std: large enough that a block's output weighs as much as the residual stream
#: (with the default 0.02 the blocks barely change it, and no quantization error shows)
INIT_RANGE = 0.2
POOLING_MODES = ("mean", "cls", "max", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")


def _hf_folder(tmp: Path, family: str) -> Path:
    """A tiny random transformers model and the tiny tokenizer, saved as a HF folder."""
    hf = tmp / family
    hf.mkdir()
    vocab = fixtures.build_vocab()
    fixtures.save_tokenizer(hf, vocab)
    if family == "qwen3":
        import modern  # tests/fixtures/modern.py

        config = json.loads((hf / "tokenizer_config.json").read_text())
        config["padding_side"] = "left"  # as Qwen3-Embedding's tokenizer config says
        (hf / "tokenizer_config.json").write_text(json.dumps(config))
        model = modern.tiny("qwen3", len(vocab))
    else:
        model = _outlier_pads(fixtures.tiny_bert(len(vocab), initializer_range=INIT_RANGE))
    model.save_pretrained(str(hf))
    return hf


def _outlier_pads(model):
    """Give [PAD] an outlier dimension, as trained encoders have (a random init gives pads and
    real tokens the same range, so no dynamic int8 scale would depend on the padding): only
    [PAD]'s embedding has a dimension 0 (a spike), which the embedding LayerNorm amplifies."""
    import torch

    emb = model.embeddings
    with torch.no_grad():
        for table in (emb.word_embeddings.weight, emb.position_embeddings.weight, emb.token_type_embeddings.weight):
            table[:, 0] = 0.0
        emb.word_embeddings.weight[model.config.pad_token_id] = 0.0
        emb.word_embeddings.weight[model.config.pad_token_id, 0] = OUTLIER
        emb.LayerNorm.weight[0] = OUTLIER_GAIN
    return model


def _st_model(hf: Path, mode: str, normalize: bool, max_seq_length: int | None = None):
    from sentence_transformers import SentenceTransformer, models

    kw = {"max_seq_length": max_seq_length} if max_seq_length else {}
    transformer = models.Transformer(str(hf), **kw)
    modules = [transformer, models.Pooling(transformer.get_word_embedding_dimension(), mode)]
    return SentenceTransformer(modules=modules + ([models.Normalize()] if normalize else []), device="cpu")


def _export_onnx(out: Path):
    """onnx/model.onnx as sentence-transformers 5.x writes it; returns the ONNX-backend model."""
    from sentence_transformers import SentenceTransformer

    onnx_model = SentenceTransformer(str(out), backend="onnx", device="cpu")
    onnx_model.save_pretrained(str(out))
    return onnx_model


def _static_qdq(out: Path) -> None:
    """onnx/model_qdq.onnx: ONNX Runtime's static QDQ quantization of MatMuls, calibrated unpadded."""
    import numpy as np
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()

    class Reader(CalibrationDataReader):
        def __init__(self):
            feeds = []
            for text in TEXTS[:6]:
                ids = np.array([tok.encode(text).ids], dtype=np.int64)
                feeds.append({"input_ids": ids, "attention_mask": np.ones_like(ids),
                              "token_type_ids": np.zeros_like(ids)})
            self.feeds = iter(feeds)

        def get_next(self):
            return next(self.feeds, None)

    quantize_static(str(out / "onnx" / "model.onnx"), str(out / "onnx" / "model_qdq.onnx"), Reader(),
                    quant_format=QuantFormat.QDQ, op_types_to_quantize=["MatMul"],
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)


def _fp16(out: Path) -> None:
    """onnx/model_fp16.onnx: ONNX Runtime's float16 conversion (what Optimum's O4 applies after
    fusing, minus the GPU-only fusions), inputs and outputs kept float32."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(out / "onnx" / "model.onnx")), keep_io_types=True)
    onnx.save(model, str(out / "onnx" / "model_fp16.onnx"))


def _write_reference(out: Path, **arrays) -> None:
    import numpy as np

    (out / "texts.txt").write_text("\n".join(TEXTS) + "\n")
    np.savez(out / "reference.npz", **{k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()})


def build_encoder(out: Path, tmp: Path) -> None:
    from sentence_transformers import export_dynamic_quantized_onnx_model, export_optimized_onnx_model

    hf = _hf_folder(tmp, "bert")
    st = _st_model(hf, "mean", normalize=True, max_seq_length=48)
    st.save(str(out))
    onnx_model = _export_onnx(out)
    export_dynamic_quantized_onnx_model(onnx_model, "avx512_vnni", str(out))
    export_optimized_onnx_model(onnx_model, "O3", str(out))
    _static_qdq(out)
    _fp16(out)
    raw = _st_model(hf, "mean", normalize=False, max_seq_length=48)
    cls = _st_model(hf, "cls", normalize=True, max_seq_length=48)
    _write_reference(out, auto=st.encode(TEXTS), mean=raw.encode(TEXTS), cls=cls.encode(TEXTS),
                     onnx_backend=onnx_model.encode(TEXTS))


def build_decoder(out: Path, tmp: Path) -> None:
    from sentence_transformers import SentenceTransformer

    hf = _hf_folder(tmp, "qwen3")
    st = _st_model(hf, "lasttoken", normalize=True)
    if st.tokenizer.padding_side != "left":
        raise SystemExit(f"the Qwen3 tokenizer pads on the {st.tokenizer.padding_side}, expected left")
    st.save(str(out))
    _export_onnx(out)  # its own ONNX backend cannot run it: it feeds no position_ids
    reference = SentenceTransformer(str(out), device="cpu")  # PyTorch backend, from the folder
    _write_reference(out, auto=reference.encode(TEXTS))


def build_legacy(out: Path, tmp: Path) -> None:
    """Written the 5.x way, then rewritten to the older layout and type names."""
    from sentence_transformers import SentenceTransformer

    hf = _hf_folder(tmp, "bert")
    _st_model(hf, "mean_sqrt_len_tokens", normalize=False).save(str(out))
    _export_onnx(out)
    shutil.move(str(out / "onnx" / "model.onnx"), str(out / "model.onnx"))
    shutil.rmtree(out / "onnx")
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    (out / "modules.json").write_text(json.dumps(modules, indent=2))
    flags = {key: False for key in ("pooling_mode_cls_token", "pooling_mode_mean_tokens", "pooling_mode_max_tokens",
                                    "pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken")}
    (out / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": fixtures.HIDDEN, **flags, "pooling_mode_mean_sqrt_len_tokens": True}))
    (out / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 40, "do_lower_case": False}))
    reference = SentenceTransformer(str(out), device="cpu")
    if reference.max_seq_length != 40:
        raise SystemExit(f"sentence-transformers read max_seq_length {reference.max_seq_length}, expected 40")
    _write_reference(out, auto=reference.encode(TEXTS))


def build_pooling(out: Path, tmp: Path) -> None:
    """sentence-transformers' Pooling on random states, masks padded right and left."""
    import numpy as np
    import torch
    from sentence_transformers import models

    rng = np.random.default_rng(0)
    h = rng.normal(size=(4, 9, 6)).astype(np.float32)
    lengths = np.array([9, 5, 1, 3])
    right = (np.arange(9)[None, :] < lengths[:, None]).astype(np.int64)
    arrays = {"h": h, "right": right, "left": right[:, ::-1].copy()}
    for side in ("right", "left"):
        features = {"token_embeddings": torch.from_numpy(h), "attention_mask": torch.from_numpy(arrays[side])}
        for mode in (*POOLING_MODES, ("cls", "mean")):
            pooled = models.Pooling(6, mode)({**features})["sentence_embedding"].numpy()
            arrays[f"{side}:{'+'.join(mode) if isinstance(mode, tuple) else mode}"] = pooled
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "pooling.npz", **arrays)


KINDS = {"encoder": build_encoder, "decoder": build_decoder, "legacy": build_legacy, "pooling": build_pooling}


def main(kind: str, out: Path) -> None:
    """Build ``kind`` into ``out``; ``all``: every kind into ``out/KIND`` (one process, one import)."""
    if kind not in KINDS and kind != "all":
        raise SystemExit(f"unknown kind {kind!r}; known: all, {', '.join(sorted(KINDS))}")
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    targets = {k: out / k for k in KINDS} if kind == "all" else {kind: out}
    for name, folder in targets.items():
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            KINDS[name](folder, Path(tmp))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
