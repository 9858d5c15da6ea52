"""embed: pooling read from a sentence-transformers folder or the manifest; rows streamed to a .npy."""
from __future__ import annotations

import json

import numpy as np
import pytest

from padlens.errors import BadInput
from padlens.inspector.embed import embed
from padlens.inspector.stats.pooling import pool, pooling_config, read_st_folder, resolve_pooling
from tests.inspector.audit import toys

TEXTS = ["this is a sample sentence", "the cat sat on the mat", "a dog", "padding text is short",
         "what was the model", "it is long and it is short and it is a word"]


OLD_TYPES = {"Transformer": "sentence_transformers.models.Transformer",
             "Pooling": "sentence_transformers.models.Pooling", "Normalize": "sentence_transformers.models.Normalize",
             "Dense": "sentence_transformers.models.Dense"}
NEW_TYPES = {"Transformer": "sentence_transformers.base.modules.transformer.Transformer",
             "Pooling": "sentence_transformers.sentence_transformer.modules.pooling.Pooling",
             "Normalize": "sentence_transformers.sentence_transformer.modules.normalize.Normalize",
             "Dense": "sentence_transformers.base.modules.dense.Dense"}


def _modules_json(folder, kinds, types=OLD_TYPES):
    paths = {"Transformer": "", "Pooling": "1_Pooling", "Normalize": "2_Normalize", "Dense": "2_Dense"}
    modules = [{"idx": i, "name": str(i), "path": paths[k], "type": types[k]} for i, k in enumerate(kinds)]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "modules.json").write_text(json.dumps(modules))
    return folder


def _st_folder(folder, **modes):
    (folder / "1_Pooling").mkdir(parents=True)
    config = {"word_embedding_dimension": 8, "pooling_mode_cls_token": False,
              "pooling_mode_mean_tokens": False, "pooling_mode_max_tokens": False, **modes}
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(config))
    return _modules_json(folder, ["Transformer", "Pooling", "Normalize"])


def _st5_folder(folder, kinds=("Transformer", "Pooling", "Normalize"), **config):
    (folder / "1_Pooling").mkdir(parents=True)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"embedding_dimension": 8, **config}))
    return _modules_json(folder, list(kinds), NEW_TYPES)


def test_auto_reads_a_sentence_transformers_folder(tmp_path):
    folder = _st_folder(tmp_path, pooling_mode_cls_token=True)
    (folder / "onnx").mkdir()
    config = pooling_config(folder / "onnx" / "model.onnx", {"pooling": "mean", "normalize": False})
    assert (config.mode, config.normalize) == ("cls", True)
    assert config.source.endswith("modules.json")


def test_auto_falls_back_to_the_manifest_then_to_mean(tmp_path):
    assert pooling_config(tmp_path / "m.onnx", {"pooling": "max", "normalize": True}).mode == "max"
    default = pooling_config(tmp_path / "m.onnx", None)
    assert (default.mode, default.normalize, default.source) == ("mean", False, "default")


def test_several_legacy_modes_are_concatenated_in_sentence_transformers_order(tmp_path):
    _st_folder(tmp_path, pooling_mode_mean_tokens=True, pooling_mode_max_tokens=True)
    assert pooling_config(tmp_path / "model.onnx", None).mode == "max+mean"


def test_an_unknown_sentence_transformers_pooling_is_bad_input(tmp_path):
    _st5_folder(tmp_path, pooling_mode="sum")
    with pytest.raises(BadInput, match="asks for pooling sum"):
        pooling_config(tmp_path / "model.onnx", None)


@pytest.mark.parametrize("mode", ["mean", "cls", "max", "mean_sqrt_len_tokens", "weightedmean", "lasttoken"])
def test_sentence_transformers_5_type_names_and_pooling_mode_are_read(tmp_path, mode):
    _st5_folder(tmp_path, pooling_mode=mode, include_prompt=False)
    config = pooling_config(tmp_path / "onnx" / "model.onnx", None)
    assert (config.mode, config.normalize, config.include_prompt) == (mode, True, False)


def test_a_5x_list_of_modes_is_concatenated(tmp_path):
    _st5_folder(tmp_path, pooling_mode=["cls", "mean"])
    assert pooling_config(tmp_path / "model.onnx", None).mode == "cls+mean"


def test_max_seq_length_comes_from_sentence_bert_config(tmp_path):
    _st5_folder(tmp_path, pooling_mode="mean")
    (tmp_path / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 40}))
    assert pooling_config(tmp_path / "model.onnx", None).max_length == 40


def test_pooling_option_keeps_the_folders_normalize_without_a_pooling_module(tmp_path):
    _modules_json(tmp_path, ["Transformer", "Normalize"], NEW_TYPES)
    with pytest.raises(BadInput, match="has no Pooling module: pass pooling"):
        resolve_pooling(tmp_path / "onnx" / "model.onnx", None, "auto", None)
    config = resolve_pooling(tmp_path / "onnx" / "model.onnx", None, "mean", None)
    assert (config.mode, config.source, config.normalize) == ("mean", "option", True)
    assert config.normalize_source.endswith("modules.json")


def test_normalize_option_keeps_the_folders_pooling(tmp_path):
    _st5_folder(tmp_path, pooling_mode="lasttoken")
    config = resolve_pooling(tmp_path / "model.onnx", None, "auto", False)
    assert (config.mode, config.normalize, config.normalize_source) == ("lasttoken", False, "option")
    assert config.source.endswith("modules.json")


def test_a_dense_module_is_refused_by_auto_but_not_by_an_explicit_pooling(tmp_path):
    _st5_folder(tmp_path, kinds=("Transformer", "Pooling", "Dense", "Normalize"), pooling_mode="mean")
    with pytest.raises(BadInput, match="has Dense module\\(s\\) after the model"):
        resolve_pooling(tmp_path / "model.onnx", None, "auto", None)
    assert resolve_pooling(tmp_path / "model.onnx", None, "mean", None).normalize


def test_an_unknown_pooling_option_is_bad_input(tmp_path):
    with pytest.raises(BadInput, match="pooling must be one of"):
        resolve_pooling(tmp_path / "model.onnx", None, "sum", None)


def test_options_override_what_auto_reads(tmp_path):
    _st_folder(tmp_path, pooling_mode_mean_tokens=True)
    config = resolve_pooling(tmp_path / "model.onnx", None, "max", False)
    assert (config.mode, config.normalize) == ("max", False)


def _texts(tmp_path, texts=TEXTS):
    f = tmp_path / "texts.txt"
    f.write_text("\n".join(texts) + "\n")
    return f


def _expected(folder, texts, mode="mean"):
    from padlens.inspector.inputs.resolve import resolve_models
    from padlens.inspector.runtime.encoder import Encoder

    enc = Encoder.open(resolve_models([folder])[0])
    rows = []
    for t in texts:  # each text alone, unpadded
        batch = enc.encode([t], padding="longest")
        rows.append(pool(enc.run(batch).hidden[-1], batch.attention_mask, mode)[0])
    return np.array(rows)


@pytest.mark.parametrize("mode", ["mean", "cls", "max"])
def test_rows_match_each_text_pooled_alone(toy, tmp_path, mode):
    out = tmp_path / "e.npy"
    result = embed(toy("honest"), _texts(tmp_path), out, pooling=mode, normalize=False, batch_size=4)
    got = np.load(out)
    assert got.shape == (len(TEXTS), toys.H) and got.dtype == np.float32
    assert result.rows == len(TEXTS) and result.pooling == mode
    np.testing.assert_allclose(got, _expected(toy("honest"), TEXTS, mode), rtol=1e-5, atol=1e-6)


def test_the_manifest_asks_for_normalized_rows(tmp_path, tokenizer_dir):
    folder = toys.export_dir(tmp_path / "exp", tokenizer_dir,
                             {"fp32": toys.build("honest", toys.vocab_size(tokenizer_dir))})
    result = embed(folder, _texts(tmp_path), tmp_path / "e.npy")
    assert result.normalize and result.pooling_source == "manifest"
    np.testing.assert_allclose(np.linalg.norm(np.load(tmp_path / "e.npy"), axis=1), 1.0, rtol=1e-6)


def test_batch_size_does_not_change_the_rows(toy, tmp_path):
    f = _texts(tmp_path, TEXTS * 20)
    embed(toy("honest"), f, tmp_path / "a.npy", batch_size=1)
    embed(toy("honest"), f, tmp_path / "b.npy", batch_size=32)
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))


def test_an_empty_texts_file_is_bad_input_and_writes_nothing(toy, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    out = tmp_path / "e.npy"
    out.write_bytes(b"keep")
    with pytest.raises(BadInput, match="no texts"):
        embed(toy("honest"), empty, out)
    assert out.read_bytes() == b"keep"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_missing_output_folder_is_bad_input(toy, tmp_path):
    with pytest.raises(BadInput, match="does not exist"):
        embed(toy("honest"), _texts(tmp_path), tmp_path / "nope" / "e.npy")


def test_a_default_prompt_is_read_and_its_absence_from_the_rows_is_said(tmp_path, caplog):
    _st5_folder(tmp_path, pooling_mode="lasttoken")
    (tmp_path / "config_sentence_transformers.json").write_text(json.dumps(
        {"prompts": {"query": "Instruct: find\nQuery:", "document": ""}, "default_prompt_name": "query"}))
    assert read_st_folder(tmp_path).default_prompt == "Instruct: find\nQuery:"
    with caplog.at_level("WARNING"):
        resolve_pooling(tmp_path / "model.onnx", None, "auto", None)
    assert "prepends the default prompt" in caplog.text


def test_no_default_prompt_means_no_warning(tmp_path, caplog):
    _st5_folder(tmp_path, pooling_mode="mean")
    (tmp_path / "config_sentence_transformers.json").write_text(json.dumps(
        {"prompts": {"query": "", "document": ""}, "default_prompt_name": None}))
    assert read_st_folder(tmp_path).default_prompt is None
    with caplog.at_level("WARNING"):
        resolve_pooling(tmp_path / "model.onnx", None, "auto", None)
    assert "prompt" not in caplog.text

