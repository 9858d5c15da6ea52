"""Tiny encoders for `padlens quantize`: the zoo's BERT, ModernBERT and Qwen3 styles, and one with external data."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

#: zoo style -> what it stands for
STYLES = {"torchscript": "post-LN BERT", "modernbert-optimum": "pre-LN ModernBERT", "qwen3-optimum": "RMSNorm Qwen3"}


def digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (to prove a source folder was not touched)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def user_copy(zoo, tmp_path):
    """``user_copy(style)`` -> a fresh copy of the zoo's folder (model.onnx + tokenizer) to quantize."""
    def make(style: str) -> Path:
        folder = tmp_path / style
        shutil.copytree(zoo(style), folder)
        return folder

    return make


@pytest.fixture
def external_bert(zoo, tmp_path) -> Path:
    """The zoo's BERT with every weight in model.onnx.data beside it, and its tokenizer."""
    import onnx

    from padlens.inspector.model.expose import save_model

    folder = tmp_path / "external"
    shutil.copytree(zoo("torchscript"), folder, ignore=shutil.ignore_patterns("*.onnx"))
    save_model(onnx.load(str(zoo("torchscript") / "model.onnx")), folder / "model.onnx", external_over=0)
    assert (folder / "model.onnx.data").is_file()
    return folder
