"""A batch fixed at 1 by shape arithmetic no static check reads: found by one tiny run at open.

``dynamo-batch-one`` (tests/fixtures/styles.py) is the tiny BERT exported by the dynamo
exporter at batch 1, its inputs declared ``[batch, sequence]`` and every batch-1 Reshape
shape computed as ``Concat([1], Shape(x)[1:2], ...)``: two rows fail inside an Add, one row
runs, as a third-party e5-small file does. ``dynamo`` is the same weights with a dynamic batch.
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from padlens.inspector.inputs.resolve import resolve_models
from padlens.inspector.inputs.tokenize import load_tokenizer
from padlens.inspector.model.graph import load_encoder
from padlens.inspector.runtime.batch_probe import short_reason
from padlens.inspector.runtime.embed_model import EmbedModel
from padlens.inspector.runtime.encoder import Encoder
from tests.conftest import run_padlens

TEXTS = ["the cat sat on the mat", "a dog", "this is a sample sentence with some more words", "short text"]
NOTE = "the graph fixes the batch at 1 (two rows failed at open, one row ran: "


@pytest.fixture(scope="module")
def batch_one(zoo) -> Path:
    return zoo("dynamo-batch-one")


@pytest.fixture(scope="module")
def texts_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("probe-texts") / "texts.txt"
    path.write_text("\n".join(TEXTS) + "\n")
    return path


@pytest.fixture(scope="module")
def broken(batch_one, tmp_path_factory) -> Path:
    """``batch_one`` whose shape arithmetic says batch 5: one row fails as well as two."""
    out = tmp_path_factory.mktemp("broken")
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(batch_one / name, out / name)
    model = onnx.load(batch_one / "model.onnx")
    lead = next(t for t in model.graph.initializer if t.name == "batch_lead")
    lead.CopyFrom(numpy_helper.from_array(np.array([5], np.int64), "batch_lead"))
    onnx.save(model, out / "model.onnx")
    return out


def _plain_feeds(folder: Path, texts: list[str]) -> dict[str, np.ndarray]:
    batch = load_tokenizer(folder).encode(texts, max_length=64, padding="longest")
    return {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask,
            "token_type_ids": batch.token_type_ids}


def _open(folder: Path, **kw) -> Encoder:
    return Encoder.open(resolve_models([str(folder / "model.onnx")], str(folder))[0], **kw)


def test_two_rows_fail_in_onnxruntime_and_no_constant_fixes_the_batch(batch_one):
    session = ort.InferenceSession(str(batch_one / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [d for d in session.get_inputs()[0].shape] == ["batch", "sequence_length"]
    assert session.run(None, _plain_feeds(batch_one, TEXTS[:1]))[0].shape[0] == 1
    with pytest.raises(Exception, match="Add node"):  # noqa: B017  (ORT's own error types)
        session.run(None, _plain_feeds(batch_one, TEXTS[:2]))
    assert load_encoder(batch_one / "model.onnx").structure.fixed_batch is None  # the static check misses it


@pytest.mark.parametrize("check_exposure", [False, True])  # the probe on the instrumented or the plain session
def test_open_fixes_the_batch_at_one_with_its_evidence_in_one_line(batch_one, check_exposure):
    enc = _open(batch_one, stats=True, check_exposure=check_exposure)
    assert enc.exposure_delta == (0.0 if check_exposure else None)
    s = enc.graph.structure
    assert s.fixed_batch == 1 and enc.describe().fixed_batch == 1
    assert s.fixed_batch_evidence.startswith("two rows failed at open, one row ran: Add node ")
    assert "\n" not in s.fixed_batch_evidence and "ONNXRuntimeError" not in s.fixed_batch_evidence
    assert len(s.fixed_batch_evidence) < 250
    assert enc.notes == [f"the graph fixes the batch at 1 ({s.fixed_batch_evidence}): padlens runs 1 text per batch"]
    assert enc.stats_mode.startswith("numpy: the graph fixes its batch")  # split batches: no in-graph sums
    batch = enc.encode(TEXTS, max_length=16, padding="longest")
    together = enc.run(batch).hidden[-1]
    for row, text in enumerate(TEXTS):
        alone = enc.run(enc.encode([text], max_length=16, padding="longest")).hidden[-1][0]
        np.testing.assert_allclose(together[row, :len(alone)], alone, atol=1e-5)


def test_a_dynamic_batch_is_left_dynamic(zoo):
    folder = zoo("dynamo")
    assert _open(folder).graph.structure.fixed_batch is None
    assert _open(folder, stats=True).uses_stats
    ref = resolve_models([str(folder / "model.onnx")], str(folder))[0]
    assert EmbedModel(ref).graph.structure.fixed_batch is None


def test_the_reason_keeps_the_node_and_the_message_only():
    cause = RuntimeError("[ONNXRuntimeError] : 1 : FAIL : Non-zero status code returned while running Add node. "
                         "Name:'node_linear_1' Status Message: /onnxruntime_src/onnxruntime/core/providers/cpu/math/"
                         "element_wise_ops.h:563 void onnxruntime::BroadcastIterator::Init(ptrdiff_t, ptrdiff_t) "
                         "axis == 1 || axis == largest was false. Attempting to broadcast an axis by a dimension "
                         "other than 1. 4 by 8\n\nmore lines")
    exc = ValueError("onnxruntime failed running m on a batch of 2 texts x 4 tokens")
    exc.__cause__ = cause
    assert short_reason(exc) == ("Add node 'node_linear_1': Attempting to broadcast an axis by a dimension "
                                 "other than 1. 4 by 8")


def test_inspect_runs_one_text_at_a_time_says_so_once_and_measures_as_the_dynamic_model(
        batch_one, zoo, texts_file, tmp_path):
    got, want = tmp_path / "got.json", tmp_path / "want.json"
    proc = run_padlens("inspect", batch_one / "model.onnx", "--tokenizer", batch_one, "--texts", texts_file,
                       "--max-length", "16", "--json", got, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "[E:onnxruntime" not in proc.stderr and "Error:" not in proc.stderr
    assert proc.stdout.count(NOTE) == 1
    run = json.loads(got.read_text())["runs"][0]
    assert sum(NOTE in w for w in run["warnings"]) == 1 and run["encoder"]["fixed_batch"] == 1
    dynamic = zoo("dynamo")
    assert run_padlens("inspect", dynamic / "model.onnx", "--tokenizer", dynamic, "--texts", texts_file,
                       "--max-length", "16", "--json", want, cwd=tmp_path).returncode == 0
    reference = json.loads(want.read_text())["runs"][0]
    for a, b in zip(run["layers"], reference["layers"], strict=True):
        for key in ("pad_pad_cos", "pad_real_cos", "pad_norm", "real_norm"):
            assert math.isfinite(a[key]) and a[key] == pytest.approx(b[key], abs=1e-5)


def test_audit_reports_the_batch_checks_not_applicable(batch_one, texts_file, tmp_path, cli_run):
    code, out, err = cli_run("audit", batch_one / "model.onnx", "--tokenizer", batch_one, "--texts", texts_file,
                             "--max-length", "16", "--json", tmp_path / "a.json")
    assert code in (0, 1), err
    checks = {c["name"]: c for c in json.loads((tmp_path / "a.json").read_text())["checks"]}
    for name in ("batch_neighbour_invariance", "fully_masked_row"):
        assert checks[name]["applicable"] is False and "two rows failed at open, one row ran" in checks[name]["detail"]
    assert checks["padding_invariance"]["applicable"] and checks["padding_invariance"]["passed"]
    assert out.count("note: " + NOTE) == 1


def test_embed_rows_are_each_text_run_alone(batch_one, texts_file, tmp_path, cli_run):
    code, _, err = cli_run("embed", batch_one / "model.onnx", "--tokenizer", batch_one, "--texts", texts_file,
                           "-o", tmp_path / "e.npy", "--pooling", "mean")
    assert code == 0, err
    rows = np.load(tmp_path / "e.npy")
    session = ort.InferenceSession(str(batch_one / "model.onnx"), providers=["CPUExecutionProvider"])
    assert rows.shape[0] == len(TEXTS)
    for row, text in zip(rows, TEXTS):
        alone = session.run(None, _plain_feeds(batch_one, [text]))[0][0].mean(axis=0)
        assert float(row @ alone / np.linalg.norm(row) / np.linalg.norm(alone)) > 0.9999


@pytest.mark.parametrize("command", ["inspect", "audit", "embed"])
def test_a_file_that_fails_on_one_row_too_is_one_error_line(broken, texts_file, tmp_path, command):
    extra = ["-o", tmp_path / "e.npy"] if command == "embed" else ["--max-length", "16"]
    proc = run_padlens(command, broken / "model.onnx", "--tokenizer", broken, "--texts", texts_file, *extra,
                       cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "[E:onnxruntime" not in proc.stderr and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and errors[0].startswith("Error: onnxruntime failed running ")
    assert "two rows failed at open" not in proc.stderr
    assert load_encoder(broken / "model.onnx").structure.fixed_batch is None
