"""Decoder (causal) embedders: detected at load, padded on their side, checks that say what applies."""
from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from padlens.inspector.audit import audit
from padlens.inspector.audit import tolerances as tl
from padlens.inspector.audit.compare import cosines
from padlens.inspector.audit.pooling_checks import naive_index
from padlens.inspector.inputs.resolve import resolve_models
from padlens.inspector.inputs.tokenize import choose_side, load_tokenizer, mask_positions
from padlens.inspector.model.graph import load_encoder
from padlens.inspector.model.structure import causal_in_config
from padlens.inspector.runtime.encoder import Encoder
from tests.conftest import run_padlens
from tests.inspector.audit import causal_toys

TEXTS = ["the cat sat on the mat", "a dog", "this is a sample sentence with more words in it"]


@pytest.fixture(scope="module")
def ctoy(zoo, tmp_path_factory):
    base, cache = tmp_path_factory.mktemp("ctoys"), {}

    def make(kind: str, padding_side: str | None = None) -> Path:
        key = (kind, padding_side)
        if key not in cache:
            cache[key] = causal_toys.make(kind, base / f"{kind}-{padding_side}", zoo("padlens"), padding_side)
        return cache[key]

    return make


def run_audit(folder: Path, side: str = "auto"):
    result = audit([str(folder / "model.onnx")], texts=TEXTS, tokenizer=str(folder), max_length=16,
                   padding_side=side)
    return result, {c.name: c for c in result.checks}


# --------------------------------------------------------------------------- detection


@pytest.mark.parametrize("style, causal", [
    ("qwen3-optimum", True), ("qwen3-dynamo", True), ("qwen3-ort-fused", True), ("qwen3-rmsnorm-op", True),
    ("llama-optimum", True),
    ("modernbert-optimum", False),  # its sliding window compares |i - j|: a band, not a triangle
    ("modernbert-dynamo", False), ("modernbert-ort-fused", False),
    ("torchscript", False), ("dynamo", False), ("position-ids", False), ("roberta", False),
])
def test_causal_attention_is_read_from_the_graph(zoo, style, causal):
    structure = load_encoder(zoo(style) / "model.onnx").structure
    assert structure.causal is causal
    assert bool(structure.causal_evidence) is causal


def test_a_trilu_mask_makes_the_toy_causal(ctoy):
    assert "Trilu" in load_encoder(ctoy("causal") / "model.onnx").structure.causal_evidence


@pytest.mark.parametrize("config, causal", [
    ({"model_type": "qwen3"}, True), ({"architectures": ["MistralForCausalLM"]}, True),
    ({"is_decoder": True, "model_type": "bert"}, True), ({"model_type": "bert"}, False), ({}, False),
])
def test_causal_is_read_from_the_config_beside_the_model(toy, tmp_path, config, causal):
    folder = tmp_path / "onnx"
    folder.mkdir()
    shutil.copy(toy("honest") / "model.onnx", folder / "model.onnx")
    (tmp_path / "config.json").write_text(json.dumps(config))  # above onnx/, as ST folders keep it
    assert bool(causal_in_config(folder / "model.onnx")) is causal
    assert load_encoder(folder / "model.onnx").causal is causal


# --------------------------------------------------------------------------- padding side


@pytest.mark.parametrize("asked, config_side, causal, want", [
    ("auto", None, True, ("left", "causal")),
    ("auto", None, False, ("right", "default")),
    ("auto", "right", True, ("right", "tokenizer_config")),
    ("auto", "left", False, ("left", "tokenizer_config")),
    ("right", "left", True, ("right", "option")),
])
def test_the_padding_side_comes_from_the_option_then_the_tokenizer_then_the_model(
        ctoy, asked, config_side, causal, want):
    tokenizer = load_tokenizer(ctoy("causal", config_side))
    assert choose_side(asked, tokenizer, causal) == want


def test_audit_says_which_side_it_padded_on_and_why(ctoy, tmp_path):
    folder = ctoy("causal")
    proc = run_padlens("audit", folder / "model.onnx", "--tokenizer", folder, "--text", TEXTS[0], "--text",
                       TEXTS[1], "--max-length", "16", "--json", tmp_path / "a.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "left padding (auto: causal model)" in proc.stdout.splitlines()[0]
    runs = json.loads((tmp_path / "a.json").read_text())["runs"]
    assert runs[0]["padding_side"] == "left" and runs[0]["padding_side_source"] == "causal"
    assert "Trilu" in runs[0]["causal"]


def test_inspect_pads_a_causal_model_on_the_left_by_default_and_says_so(ctoy, tmp_path):
    folder = ctoy("causal")
    proc = run_padlens("inspect", folder / "model.onnx", "--tokenizer", folder, "--text", TEXTS[1],
                       "--max-length", "8", "--json", tmp_path / "i.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "left padding (auto: causal model)" in proc.stdout
    data = json.loads((tmp_path / "i.json").read_text())
    assert data["padding_side"] == "left" and data["settings"]["padding_side_source"] == "causal"
    assert data["runs"][0]["encoder"]["causal"] is True
    forced = run_padlens("inspect", folder / "model.onnx", "--tokenizer", folder, "--text", TEXTS[1],
                         "--max-length", "8", "--padding-side", "right", cwd=tmp_path)
    assert forced.returncode == 0 and ", right padding\n" in forced.stdout.splitlines()[0] + "\n"


# --------------------------------------------------------------------------- checks


def test_the_all_ones_mask_probe_does_not_apply_to_a_causal_model_padded_on_the_right(ctoy):
    result, checks = run_audit(ctoy("causal"), "right")
    c = checks["mask_honoured"]
    assert c.passed and "not applicable — a causal model padded on the right" in c.detail
    assert result.passed


def test_the_all_ones_mask_probe_still_applies_on_the_left(ctoy):
    _, checks = run_audit(ctoy("causal"), "left")
    c = checks["mask_honoured"]
    assert c.passed and "the mask is used" in c.detail


@pytest.mark.parametrize("side, passed", [("left", False), ("right", True)])
def test_last_token_pooling_flags_the_naive_index_only_on_the_left(ctoy, side, passed):
    _, checks = run_audit(ctoy("causal"), side)
    c = checks["last_token_pooling"]
    assert c.applicable and c.severity == "warning" and c.passed is passed
    assert "left padding: min pooled cos" in c.detail and "right padding: min pooled cos" in c.detail
    assert (c.value >= tl.INVARIANCE_COS["fp32"]) is passed


def test_last_token_pooling_does_not_apply_to_a_mean_pooled_encoder(toy):
    _, checks = run_audit(toy("honest"), "right")
    assert not checks["last_token_pooling"].applicable


@pytest.mark.parametrize("style", ["qwen3-optimum", "qwen3-dynamo"])
def test_the_naive_index_damage_matches_pytorch(zoo, style):
    """cos(state at sum(mask) - 1, state at the last real token) on the left-padded row: the
    check's arithmetic on padlens's states equals the same on PyTorch's hidden states."""
    folder = zoo(style)
    ref = np.load(folder / "reference.npz")
    mask = ref["attention_mask"]
    n, width = int(mask[1].sum()), mask.shape[1]
    naive, last = naive_index(n, width, "left")
    assert naive == n - 1 and last == width - 1
    torch_cos = float(cosines(ref["last_hidden_state"][1, naive], ref["last_hidden_state"][1, last])[0])
    enc = Encoder.open(resolve_models([str(folder / "model.onnx")], str(folder))[0])
    template = enc.tokenizer.encode(["x"], max_length=width)
    batch = replace(template, input_ids=ref["input_ids"], attention_mask=mask, token_type_ids=np.zeros_like(mask),
                    position_ids=mask_positions(mask), special_tokens_mask=np.zeros_like(mask),
                    lengths=mask.sum(1), side="left")
    states = enc.run(batch).hidden[-1][1].astype(np.float64)
    assert float(cosines(states[naive], states[last])[0]) == pytest.approx(torch_cos, abs=1e-5)
    assert torch_cos < 0.99  # the naive index really picks another token


@pytest.mark.parametrize("style", ["qwen3-optimum", "qwen3-dynamo"])
def test_a_tiny_qwen3_passes_every_error_check_on_both_sides(zoo, style):
    for side in ("left", "right"):
        result, checks = run_audit(zoo(style), side)
        assert result.passed, [c.detail for c in result.failures]
        assert checks["last_token_pooling"].passed is (side == "right")
        assert not math.isnan(checks["padding_invariance"].value)
