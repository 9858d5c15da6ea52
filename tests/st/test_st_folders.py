"""A sentence-transformers folder as MODEL: one run per ONNX file, named by its file, its
precision read from the graph; its tokenizer and pooling found in the folder."""
from __future__ import annotations

import pytest

from padlens.inspector.inputs.resolve import resolve_models
from padlens.inspector.stats.pooling import pooling_config

#: the encoder folder's ONNX files (tests/st/build.py) and the precision each graph holds
ENCODER_FILES = {"model": "fp32", "model_O3": "fp32", "model_fp16": "fp16", "model_qdq": "int8-static",
                 "model_qint8_avx512_vnni": "int8-dynamic"}
TEXTS = ["the cat sat on the mat", "a dog", "this is a sample sentence with some words in it",
         "padding text is short", "what was the model doing when the pad token was there"]


def test_every_onnx_file_of_a_5x_folder_is_a_run_named_by_its_file(st_models):
    folder = st_models["encoder"]
    refs = resolve_models([folder])
    assert [r.label for r in refs] == [f"encoder/onnx/{stem}" for stem in sorted(ENCODER_FILES)]
    assert [r.path for r in refs] == [folder / "onnx" / f"{stem}.onnx" for stem in sorted(ENCODER_FILES)]
    assert all(r.tokenizer_path == folder and r.manifest is None for r in refs)  # onnx/ -> its parent
    assert {r.precision for r in refs} == {"unknown"}  # the graph decides, when it is opened


def test_an_older_folder_runs_its_onnx_file_at_the_top(st_models):
    folder = st_models["legacy"]
    (ref,) = resolve_models([folder])
    assert (ref.label, ref.path, ref.tokenizer_path) == ("legacy/model", folder / "model.onnx", folder)
    config = pooling_config(ref.path, None)
    assert (config.mode, config.normalize, config.max_length) == ("mean_sqrt_len_tokens", False, 40)


def test_the_decoders_folder_says_lasttoken_and_normalize(st_models):
    config = pooling_config(st_models["decoder"] / "onnx" / "model.onnx", None)
    assert (config.mode, config.normalize) == ("lasttoken", True)


def test_a_file_in_onnx_finds_the_tokenizer_in_the_folder_above(st_models):
    folder = st_models["encoder"]
    (ref,) = resolve_models([folder / "onnx" / "model_O3.onnx"])
    assert (ref.tokenizer_path, ref.label) == (folder, "encoder/onnx/model_O3")


def test_inspect_runs_each_file_with_the_precision_its_graph_holds(st_models):
    from padlens.inspector.inspect import inspect

    result = inspect([str(st_models["encoder"])], texts=TEXTS, max_length=32, padding_side="right")
    assert {r.label: r.precision for r in result.runs} == {f"encoder/onnx/{k}": v for k, v in ENCODER_FILES.items()}
    assert all(len(r.layers) == 3 for r in result.runs)  # embeddings + 2 blocks, in every file


@pytest.fixture(scope="module")
def audited(st_models):
    from padlens.inspector.audit import audit

    return audit([str(st_models["encoder"])], texts=TEXTS, max_length=32, padding_side="right")


def _verdict(audited, stem: str, check: str) -> bool:
    (found,) = [c for c in audited.checks if c.model == f"encoder/onnx/{stem}" and c.name == check]
    return found.passed


def test_the_dynamic_int8_file_fails_the_padding_audit(audited):
    assert not _verdict(audited, "model_qint8_avx512_vnni", "padding_invariance")
    assert not _verdict(audited, "model_qint8_avx512_vnni", "batch_neighbour_invariance")
    assert not audited.passed


@pytest.mark.parametrize("stem", ["model", "model_O3", "model_fp16", "model_qdq"])
def test_the_other_files_are_padding_invariant(audited, stem):
    assert _verdict(audited, stem, "padding_invariance")
    assert _verdict(audited, stem, "batch_neighbour_invariance")


def test_a_very_old_folder_keeps_its_tokenizer_and_config_in_the_token_module(st_models, tmp_path):
    """sentence-transformers 0.x/1.x: modules.json's first module lives in 0_Transformer/."""
    import json
    import shutil

    folder = tmp_path / "old"
    shutil.copytree(st_models["legacy"], folder)
    module = folder / "0_Transformer"
    module.mkdir()
    moved = ["sentence_bert_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]
    for name in moved:
        shutil.move(str(folder / name), str(module / name))
    modules = json.loads((folder / "modules.json").read_text())
    modules[0]["path"] = "0_Transformer"
    (folder / "modules.json").write_text(json.dumps(modules))
    (ref,) = resolve_models([folder])
    assert ref.tokenizer_path == module
    assert pooling_config(ref.path, None).max_length == 40


def test_a_folder_with_onnx_files_in_onnx_and_no_modules_json_uses_its_own_tokenizer(tmp_path):
    """transformers.js / Optimum layouts: onnx/model.onnx, onnx/model_quantized.onnx, tokenizer on top."""
    (tmp_path / "onnx").mkdir()
    for name in ("model.onnx", "model_quantized.onnx"):
        (tmp_path / "onnx" / name).write_bytes(b"onnx")
    (tmp_path / "tokenizer.json").write_text("{}")
    refs = resolve_models([tmp_path])
    assert [r.label for r in refs] == [f"{tmp_path.name}/onnx/model", f"{tmp_path.name}/onnx/model_quantized"]
    assert all(r.tokenizer_path == tmp_path for r in refs)


def test_a_sentence_transformers_folder_without_onnx_says_how_to_make_one(tmp_path):
    from padlens.errors import BadInput

    (tmp_path / "modules.json").write_text("[]")
    with pytest.raises(BadInput, match=r"no \.onnx file: .*backend=\"onnx\"\)\.save_pretrained\(path\) writes onnx/model\.onnx"):
        resolve_models([tmp_path])
