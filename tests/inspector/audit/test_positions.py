"""Position ids follow the mask: what padlens feeds, and position_ids_follow_mask's verdicts."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from padlens.inspector.audit import audit
from padlens.inspector.inputs.resolve import resolve_models
from padlens.inspector.inputs.tokenize import arange_positions, mask_positions
from padlens.inspector.runtime.encoder import Encoder
from tests.inspector.audit import causal_toys

TEXTS = ["the cat sat on the mat", "a dog", "this is a sample sentence with more words in it"]


@pytest.fixture(scope="module")
def ctoy(zoo, tmp_path_factory):
    base, cache = tmp_path_factory.mktemp("ctoys"), {}

    def make(kind: str) -> Path:
        if kind not in cache:
            cache[kind] = causal_toys.make(kind, base / kind, zoo("padlens"))
        return cache[kind]

    return make


def run_audit(folder: Path, side: str, **kw):
    result = audit([str(folder / "model.onnx")], texts=TEXTS, tokenizer=str(folder), max_length=16,
                   padding_side=side, **kw)
    return result, {c.name: c for c in result.checks}


@pytest.mark.parametrize("mask, want", [
    ([1, 1, 1, 0, 0], [0, 1, 2, 2, 2]),     # right: arange on real tokens, pads repeat the last
    ([0, 0, 1, 1, 1], [0, 0, 0, 1, 2]),     # left: real tokens still 0..n-1
    ([0, 0, 0, 0, 0], [0, 0, 0, 0, 0]),     # fully masked: clipped at 0
    ([1, 1, 1, 1, 1], [0, 1, 2, 3, 4]),
])
def test_position_ids_are_the_running_count_of_real_tokens_minus_one(mask, want):
    assert mask_positions(np.array([mask])).tolist() == [want]
    assert arange_positions(np.array([mask])).tolist() == [[0, 1, 2, 3, 4]]


def _reference_batch(enc: Encoder, ref) -> object:
    mask = ref["attention_mask"]
    template = enc.tokenizer.encode(["x"], max_length=mask.shape[1])
    return replace(template, input_ids=ref["input_ids"], attention_mask=mask, token_type_ids=np.zeros_like(mask),
                   position_ids=mask_positions(mask), special_tokens_mask=np.zeros_like(mask),
                   lengths=mask.sum(1), side="left")


@pytest.mark.parametrize("style", ["qwen3-optimum", "qwen3-dynamo"])
def test_qwen3_fed_positions_from_the_mask_matches_pytorch_on_left_padding(zoo, style):
    folder = zoo(style)
    ref = np.load(folder / "reference.npz")
    enc = Encoder.open(resolve_models([str(folder / "model.onnx")], str(folder))[0])
    batch = _reference_batch(enc, ref)
    feeds = enc.feeds(batch)
    position_input = next(s.name for s in enc.graph.inputs if s.role == "position_ids")
    np.testing.assert_array_equal(feeds[position_input], ref["position_ids"])  # what HF's generate() feeds
    got = enc.run(batch).hidden[-1]
    real = ref["attention_mask"].astype(bool)
    np.testing.assert_allclose(got[real], ref["last_hidden_state"][real], atol=1e-4)


@pytest.mark.parametrize("side, passed", [("left", False), ("right", True)])
def test_arange_positions_break_an_absolute_position_decoder_only_on_the_left(ctoy, side, passed):
    _, checks = run_audit(ctoy("causal"), side)
    c = checks["position_ids_follow_mask"]
    assert c.applicable and c.severity == "warning" and c.passed is passed
    assert (c.value > 0.99999) is passed
    assert ("shifts every real token's position" in c.detail) is not passed


def test_arange_positions_do_not_move_a_rotary_decoder(zoo):
    # Qwen3's rotary positions are relative: a common shift of every real position cancels
    _, checks = run_audit(zoo("qwen3-optimum"), "left")
    c = checks["position_ids_follow_mask"]
    assert c.passed and c.value > 0.99999 and "relative (rotary)" in c.detail


@pytest.mark.parametrize("side, passed", [("left", False), ("right", True)])
def test_random_pad_ids_shift_positions_counted_from_ids_only_on_the_left(ctoy, side, passed):
    _, checks = run_audit(ctoy("ids-positions"), side)
    c = checks["position_ids_follow_mask"]
    assert c.applicable and c.passed is passed
    assert "counts positions from input_ids != 0" in c.detail
    if not passed:
        assert "The mask is not at fault" in c.detail


def test_xlmr_left_padding_blames_positions_from_ids_not_the_mask(zoo):
    result, checks = run_audit(zoo("xlmr-offset"), "left")
    mask = checks["mask_honoured"]
    assert mask.passed and "measured right-padded" in mask.detail and "ignored" not in mask.detail
    positions = checks["position_ids_follow_mask"]
    assert not positions.passed and positions.severity == "warning"
    assert "input_ids != 1" in positions.detail
    assert result.passed  # a warning, not an error: padlens itself feeds pad ids under the pads


def test_xlmr_right_padding_warns_about_the_other_side_with_the_true_cause(zoo):
    _, checks = run_audit(zoo("xlmr-offset"), "right")
    assert checks["position_ids_follow_mask"].passed
    other = checks["mask_honoured_other_side"]
    assert not other.passed and "counts positions from input_ids != 1" in other.detail
    assert "ignores the attention mask" not in other.detail


def test_graphs_without_positions_to_follow_say_why_the_check_does_not_apply(toy):
    _, checks = run_audit(toy("honest"), "right")
    c = checks["position_ids_follow_mask"]
    assert not c.applicable and "takes no position_ids" in c.detail
