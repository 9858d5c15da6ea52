"""NaN or Inf in a model's outputs is a named failure (layer and text), never averaged into a metric."""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest

from padlens.inspector.audit import audit
from padlens.inspector.inspect import Fault, inspect
from tests.hardening import tiny
from tests.hardening.conftest import padlens

log = logging.getLogger(__name__)

POISON = "cat"
CLEAN = ["a short text", "this is a sample sentence", "the dog sat on the mat"]
POISONED = "the cat sat"


@pytest.fixture(scope="module")
def nan_model(zoo, tmp_path_factory) -> Path:
    """Layer 1 = Log(embedding): NaN on every text holding "cat" (its embedding row is negative)."""
    src = zoo("padlens")
    vocab = json.loads((src / "tokenizer.json").read_text())["model"]["vocab"]
    folder = tmp_path_factory.mktemp("nan")
    tiny.copy_tokenizer(src, folder)
    tiny.nan_rows(folder / "model.onnx", max(vocab.values()) + 1, vocab[POISON])
    return folder


def test_inspect_names_the_layer_and_the_text_that_produced_nan(nan_model):
    result = inspect([str(nan_model)], texts=[CLEAN[0], POISONED, *CLEAN[1:]], max_length=16)
    run = result.runs[0]
    assert run.faults == [Fault(layer=1, tensor="hidden_states.1", text_index=1, text=POISONED)]
    assert result.to_dict()["runs"][0]["faults"] == [
        {"layer": 1, "tensor": "hidden_states.1", "text_index": 1, "text": POISONED}]
    assert "layer 1 (hidden_states.1): NaN/Inf in the states of text 2 'the cat sat'" in run.warnings


def test_nan_states_are_left_out_of_every_metric_not_averaged_in(nan_model):
    # the float64 path for both (a batch with NaN states is always measured from them; the
    # in-graph path agrees within 1e-6, tests/inspector/stats/test_ingraph.py)
    poisoned = inspect([str(nan_model)], texts=[CLEAN[0], POISONED, *CLEAN[1:]], max_length=16, stats="numpy").runs[0]
    clean = inspect([str(nan_model)], texts=CLEAN, max_length=16, stats="numpy").runs[0]
    layer = poisoned.layers[1]
    assert (layer.sequences, layer.failed) == (4, 1)
    assert poisoned.layers[0].failed == 0
    for name in ("pad_pad_cos", "pad_real_cos", "pad_norm", "real_norm"):
        got, want = getattr(layer, name), getattr(clean.layers[1], name)
        assert math.isfinite(got) and got == pytest.approx(want, rel=1e-9), name


def test_inspect_json_carries_the_faults_and_stays_valid_json(nan_model, tmp_path):
    target = tmp_path / "pads.json"
    proc = padlens("inspect", nan_model, "--text", POISONED, "--text", CLEAN[0], "--max-length", "16",
                   "--json", target, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(target.read_text())  # strict: NaN would not be valid JSON
    assert data["runs"][0]["faults"] == [{"layer": 1, "tensor": "hidden_states.1", "text_index": 0,
                                          "text": POISONED}]
    assert "NaN/Inf in the states of text 1 'the cat sat'" in proc.stdout


def test_audit_fails_a_check_naming_the_layer_and_the_text_with_nan(nan_model):
    result = audit([str(nan_model)], texts=[CLEAN[0], POISONED], max_length=16)
    failed = [c for c in result.checks if not c.passed and c.severity == "error"]
    assert failed and not result.passed
    named = [c for c in failed if "layer 1" in c.detail and POISONED in c.detail]
    assert named, [c.detail for c in failed]
    assert all(c.value is None or not np.isnan(c.value) for c in result.checks)
