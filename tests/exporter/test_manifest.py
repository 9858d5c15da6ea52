"""padlens.json holds the keys the inspector reads, and the files it names exist."""
from __future__ import annotations

import json
import math

import pytest

from padlens.exporter import manifest as manifest_module

from .conftest import ARCHITECTURES, FILES, LAYERS

CONTRACT_KEYS = {
    "format", "padlens_version", "source", "recipe", "architecture", "num_layers", "hidden_size",
    "max_position_embeddings", "vocab_size", "pad_token_id", "pad_token_type_id", "padding_side",
    "pooling", "normalize", "tokenizer_files", "input_names", "output_names", "precisions",
    "validation", "versions", "backend",
}


def manifest(tiny, arch):
    return json.loads((tiny.export_dir(arch) / "padlens.json").read_text())


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_manifest_has_every_contract_key_with_the_model_facts(tiny, arch):
    doc = manifest(tiny, arch)
    assert CONTRACT_KEYS <= set(doc)
    assert doc["format"] == 1 and doc["architecture"] == arch and doc["recipe"] is None
    assert doc["num_layers"] == LAYERS and doc["hidden_size"] == 32
    assert doc["pad_token_type_id"] == 0 and doc["padding_side"] == "right"
    assert doc["output_names"] == ["last_hidden_state"] + [f"hidden_states.{i}" for i in range(LAYERS + 1)]
    assert doc["backend"] in ("optimum", "torch")
    made_by = ("optimum",) if doc["backend"] == "optimum" else ("onnxscript",)
    assert set(doc["versions"]) >= {"padlens", "optimum", "transformers", "torch", "onnx", "onnxruntime"}
    assert all(doc["versions"][k] for k in ("padlens", "transformers", "torch", "onnx", "onnxruntime", *made_by))


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_manifest_names_each_precision_file_with_its_size(tiny, arch):
    folder = tiny.export_dir(arch)
    precisions = manifest(tiny, arch)["precisions"]
    assert list(precisions) == list(FILES)
    for name, entry in precisions.items():
        assert entry["file"] == FILES[name]
        assert entry["bytes"] == (folder / entry["file"]).stat().st_size


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_tokenizer_files_are_copied_and_load_with_the_tokenizers_library(tiny, arch):
    from tokenizers import Tokenizer

    folder = tiny.export_dir(arch)
    doc = manifest(tiny, arch)
    assert {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"} <= set(doc["tokenizer_files"])
    assert all((folder / name).is_file() for name in doc["tokenizer_files"])
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    assert tok.token_to_id({0: "[PAD]", 1: "<pad>"}[doc["pad_token_id"]]) == doc["pad_token_id"]


def test_sentence_transformers_files_are_copied_and_set_pooling_and_normalize(tiny):
    doc = manifest(tiny, "bert")
    folder = tiny.export_dir("bert")
    for name in ("modules.json", "1_Pooling/config.json", "sentence_bert_config.json"):
        assert name in doc["tokenizer_files"] and (folder / name).is_file()
    assert (doc["pooling"], doc["normalize"]) == ("mean", True)


def test_a_plain_hugging_face_model_is_pooled_on_cls_without_normalising(tiny):
    doc = manifest(tiny, "distilbert")
    assert (doc["pooling"], doc["normalize"]) == ("cls", False)
    assert not (tiny.export_dir("distilbert") / "modules.json").exists()


def test_manifest_writes_nan_as_null(tmp_path):
    manifest_module.write(tmp_path, {"a": float("nan"), "b": [1.0, math.inf], "c": {"d": 2.5}})
    assert json.loads((tmp_path / "padlens.json").read_text()) == {"a": None, "b": [1.0, None], "c": {"d": 2.5}}
