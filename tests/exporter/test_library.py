"""The exporter library without torch: bad input, texts, pooling and per-layer deltas."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from padlens.errors import BadInput, MissingExtra
from padlens.exporter import deps, export, normalize_precisions, read_texts, texts, validate


def test_importing_the_exporter_imports_neither_torch_nor_optimum_nor_transformers():
    code = ("import sys, padlens.exporter, padlens.cli_export; "
            "print([m for m in ('torch', 'optimum', 'transformers') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("source,message", [
    ("no-such-recipe", "unknown recipe or path"),
    ("/definitely/not/here", "unknown recipe or path"),
])
def test_unknown_recipe_or_path_is_bad_input(tmp_path, source, message):
    with pytest.raises(BadInput, match=message):
        export(source, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_folder_without_config_json_is_not_a_hugging_face_model(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(BadInput, match="not a Hugging Face model"):
        export(str(tmp_path), tmp_path / "out")


def test_an_unsupported_architecture_names_the_supported_ones(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(BadInput, match="'gpt2'") as err:
        export(str(tmp_path), tmp_path / "out")
    for family in ("bert", "distilbert", "electra", "modernbert", "mpnet", "qwen2", "qwen3", "roberta",
                   "xlm-roberta"):
        assert family in str(err.value).split("supported:")[1].split(";")[0].replace(",", " ").split()
    assert "with --backend torch also nomic_bert" in str(err.value)


def test_a_non_empty_output_folder_is_refused_without_force(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(BadInput, match="not empty"):
        export("minilm-l6", tmp_path / "out")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["keep.txt"]


def test_empty_calibration_texts_and_unknown_precisions_are_bad_input(tmp_path):
    with pytest.raises(BadInput, match="calibration texts are empty"):
        export("minilm-l6", tmp_path / "out", calibration_texts=["", "  "])
    with pytest.raises(BadInput, match="unknown precision 'int4'"):
        export("minilm-l6", tmp_path / "out", precisions=["int4"])
    assert list(tmp_path.iterdir()) == []


def test_missing_export_extra_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setattr(deps, "find_spec", lambda name: None if name == "torch" else object())
    with pytest.raises(MissingExtra, match=r"pip install 'padlens\[export\]'"):
        export("minilm-l6", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_precisions_come_back_in_canonical_order_and_default_to_all_four():
    assert normalize_precisions(None) == ["fp32", "fp16", "int8-dynamic", "int8-static"]
    assert normalize_precisions(["int8-static", "fp32", "fp32"]) == ["fp32", "int8-static"]


def test_read_texts_skips_blank_lines_and_refuses_missing_or_empty_files(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("one\n\n  two  \n")
    assert read_texts(None, path) == ["one", "two"]
    path.write_text("\n \n")
    with pytest.raises(BadInput, match="is empty"):
        read_texts(None, path)
    with pytest.raises(BadInput, match="not found"):
        read_texts(None, tmp_path / "missing.txt")


def test_calibration_and_held_out_texts_never_overlap():
    calibration, heldout = texts.calibration_split(None)
    assert calibration and heldout and not set(calibration) & set(heldout)
    mine = texts.sample_corpus()[:5]
    calibration, heldout = texts.calibration_split(mine)
    assert calibration == mine and heldout and not set(mine) & set(heldout)


@pytest.mark.parametrize("pooling,expected", [
    ("mean", [[2.0, 0.0]]),
    ("cls", [[1.0, 0.0]]),
    ("max", [[3.0, 0.0]]),
    ("lasttoken", [[3.0, 0.0]]),
])
def test_pooling_ignores_pad_positions(pooling, expected):
    hidden = np.array([[[1.0, 0.0], [3.0, 0.0], [100.0, 50.0]]])
    mask = np.array([[1, 1, 0]])
    np.testing.assert_allclose(validate.pool(hidden, mask, pooling, normalize=False), expected)
    np.testing.assert_allclose(np.linalg.norm(validate.pool(hidden, mask, pooling)), 1.0)


def test_validation_pools_and_positions_left_padded_rows_as_the_inspector_does():
    from padlens.inspector.stats.pooling import mask_positions, pool

    hidden = np.array([[[100.0, 50.0], [1.0, 0.0], [3.0, 0.0]], [[1.0, 0.0], [3.0, 0.0], [5.0, 0.0]]])
    mask = np.array([[0, 1, 1], [1, 1, 1]])
    for mode in ("lasttoken", "cls", "mean"):
        np.testing.assert_array_equal(validate.pool(hidden, mask, mode, normalize=False), pool(hidden, mask, mode))
    np.testing.assert_array_equal(validate.pool(hidden, mask, "lasttoken", normalize=False), [[3.0, 0.0], [5.0, 0.0]])
    assert mask_positions(mask).tolist() == [[0, 0, 1], [0, 1, 2]]


def test_layer_deltas_split_real_and_pad_positions():
    ref = [np.zeros((1, 3, 2)), np.ones((1, 3, 2))]
    outputs = {"hidden_states.0": np.array([[[0.5, 0], [0, 0], [0, -2.0]]]),
               "hidden_states.1": np.ones((1, 3, 2))}
    deltas = validate.layer_deltas(outputs, ref, np.array([[1, 1, 0]]))
    assert [(d.index, d.tensor, d.max_abs_real, d.max_abs_pad) for d in deltas] == [
        (0, "hidden_states.0", 0.5, 2.0), (1, "hidden_states.1", 0.0, 0.0)]


def test_a_nan_layer_counts_as_a_failure():
    outputs = {"hidden_states.0": np.array([[[np.nan, 0.0]]])}
    (delta,) = validate.layer_deltas(outputs, [np.zeros((1, 1, 2))], np.array([[1]]))
    assert np.isnan(delta.max_abs_real) and not delta.max_abs_real <= validate.FP32_TOLERANCE
