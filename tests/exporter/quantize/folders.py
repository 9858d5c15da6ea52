"""Real-MiniLM folders as today's tools write them, for `padlens quantize` tests and its benchmark.

Usage: python -m tests.exporter.quantize.folders KIND OUTDIR   (KIND: transformers-js, st5)

- ``transformers-js``: the transformers.js / onnx-community layout: tokenizer and config at the
  top, ``onnx/model.onnx`` (``padlens export minilm-l6 --precision fp32``) and
  ``onnx/model_quantized.onnx``: ORT ``quantize_dynamic`` per-channel, reduce-range, every
  IntegerOps op type (the Gather of the embeddings too), as transformers.js' script makes it.
- ``st5``: a sentence-transformers 5.x folder: ``SentenceTransformer(minilm, backend="onnx")``
  + ``save_pretrained`` (onnx/model.onnx) and ``export_dynamic_quantized_onnx_model(model,
  "avx512_vnni", path)`` (onnx/model_qint8_avx512_vnni.onnx).

Both import torch (export, sentence-transformers): run them where that is allowed.
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

#: the files at the top of a transformers.js folder
TOP_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def transformers_js(out: Path, exported: Path | None = None) -> Path:
    """``out`` as a transformers.js MiniLM folder (see the module docstring), from the export dir
    ``exported`` when given (its model.onnx is fp32)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.registry import IntegerOpsRegistry

    from padlens.exporter import export

    with tempfile.TemporaryDirectory() as tmp:
        if exported is None:
            exported = Path(tmp) / "minilm"
            export("minilm-l6", exported, precisions=["fp32"])
        (out / "onnx").mkdir(parents=True, exist_ok=True)
        for name in TOP_FILES:
            if (exported / name).is_file():
                shutil.copy2(exported / name, out / name)
        shutil.copy2(exported / "model.onnx", out / "onnx" / "model.onnx")
    quantize_dynamic(str(out / "onnx" / "model.onnx"), str(out / "onnx" / "model_quantized.onnx"),
                     per_channel=True, reduce_range=True, weight_type=QuantType.QInt8,
                     op_types_to_quantize=list(IntegerOpsRegistry))
    return out


def st5(out: Path) -> Path:
    """``out`` as a sentence-transformers 5.x MiniLM folder with its ONNX files."""
    from sentence_transformers import SentenceTransformer, export_dynamic_quantized_onnx_model

    from padlens.models import get_recipe, package_folder

    shutil.copytree(package_folder(get_recipe("minilm-l6").source), out, dirs_exist_ok=True)
    model = SentenceTransformer(str(out), backend="onnx", device="cpu")
    model.save_pretrained(str(out))
    export_dynamic_quantized_onnx_model(model, "avx512_vnni", str(out))
    return out


KINDS = {"transformers-js": transformers_js, "st5": st5}

if __name__ == "__main__":
    KINDS[sys.argv[1]](Path(sys.argv[2]))
