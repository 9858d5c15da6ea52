"""The real all-MiniLM-L6-v2 (installed from PyPI, offline) through `padlens export minilm-l6`."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from .conftest import FILES

pytestmark = pytest.mark.slow
OUTPUTS = ["last_hidden_state"] + [f"hidden_states.{i}" for i in range(7)]


@pytest.fixture(scope="module")
def minilm(minilm_all):
    """`padlens export minilm-l6 -o DIR` in a subprocess: tests/conftest.py's one export per session."""
    return minilm_all.path, minilm_all.proc, minilm_all.manifest


def test_minilm_exports_four_variants_with_seven_layer_outputs_each(minilm):
    out, _, doc = minilm
    assert doc["recipe"] == "minilm-l6" and doc["num_layers"] == 6 and doc["hidden_size"] == 384
    for name, file in FILES.items():
        graph = onnx.load(str(out / file), load_external_data=False).graph
        assert [o.name for o in graph.output] == OUTPUTS, name


def test_minilm_last_layer_output_equals_last_hidden_state_in_every_variant(minilm):
    out, _, _ = minilm
    ids = np.array([[101, 2023, 2003, 1037, 7099, 6251, 102, 0, 0, 0]], dtype=np.int64)
    feed = {"input_ids": ids, "attention_mask": (ids != 0).astype(np.int64), "token_type_ids": np.zeros_like(ids)}
    for file in FILES.values():
        sess = ort.InferenceSession(str(out / file), providers=["CPUExecutionProvider"])
        last, final = sess.run(["last_hidden_state", "hidden_states.6"], feed)
        np.testing.assert_array_equal(last, final)


def test_minilm_fp32_is_within_1e_4_of_pytorch_on_real_tokens(minilm):
    fp32 = minilm[2]["validation"]["fp32"]
    assert len(fp32["layers"]) == 7
    assert max(layer["max_abs_real"] for layer in fp32["layers"]) <= 1e-4
    assert fp32["passed"]


def test_minilm_int8_static_keeps_pooled_cosine_above_0_9_on_held_out_texts(minilm):
    doc = minilm[2]
    static = doc["validation"]["int8-static"]
    assert static["pooled_cosine_heldout"] >= 0.9 and static["heldout_texts"] >= 20
    assert doc["calibration"]["texts"] >= 50


def test_minilm_manifest_reads_mean_pooling_and_normalize_from_sentence_transformers_files(minilm):
    out, _, doc = minilm
    assert (doc["pooling"], doc["normalize"], doc["pad_token_id"]) == ("mean", True, 0)
    assert {"tokenizer.json", "vocab.txt", "modules.json", "1_Pooling/config.json"} <= set(doc["tokenizer_files"])


def test_minilm_export_prints_progress_on_stderr_and_a_summary_on_stdout(minilm):
    _, proc, _ = minilm
    for step in ("exporting fp32…", "validating…", "converting fp16…", "quantizing int8-dynamic…",
                 "quantizing int8-static…"):
        assert step in proc.stderr
    assert "Warning" not in proc.stderr and "Traceback" not in proc.stderr
    assert "model.int8-static.onnx" in proc.stdout and "6 layers" in proc.stdout
