"""Outputs that would not fit in memory are refused up front, with a batch size that fits."""
from __future__ import annotations

import logging

import pytest

from padlens.errors import BadInput
from padlens.inspector.inputs.resolve import resolve_models
from padlens.inspector.inspect import inspect
from padlens.inspector.runtime import memory as memory_mod
from padlens.inspector.runtime.encoder import Encoder
from padlens.inspector.runtime.memory import output_bytes_per_text

log = logging.getLogger(__name__)

TEXTS = ["a short text", "this is a sample sentence", "the cat sat on the mat"] * 4


@pytest.fixture(scope="module")
def export(zoo):
    return zoo("padlens")


@pytest.fixture(scope="module")
def per_text(export) -> int:
    enc = Encoder.open(resolve_models([export])[0], stats=True)  # as inspect opens it
    return output_bytes_per_text(enc, 16)


def test_one_texts_outputs_are_estimated_from_layers_hidden_size_and_attention(export, per_text):
    enc = Encoder.open(resolve_models([export])[0])
    layers, hidden = enc.num_layers, enc.graph.layers.hidden_size
    states = (layers + 2) * 16 * hidden * 4
    one_map = max(1, hidden // 64) * 16 * 16 * 4
    assert len(enc.attention_outputs) == layers > 1
    assert output_bytes_per_text(enc, 16) == states + layers * one_map  # every map exposed, all alive
    assert per_text == states + one_map  # the statistics graph reads each map and frees it
    assert output_bytes_per_text(enc, 32) > 2 * per_text  # attention grows with T²


def test_a_batch_that_would_not_fit_is_refused_with_a_batch_size_that_fits(export, per_text, monkeypatch):
    available = per_text * 2 * 5 + 100  # room for 5 texts after the safety factor of 2
    monkeypatch.setattr(memory_mod, "available_memory", lambda: available)
    with pytest.raises(BadInput, match=r"for a batch of 8 at max length 16, .*: pass batch_size=5 or less$"):
        inspect([str(export)], texts=TEXTS, max_length=16, batch_size=8)
    result = inspect([str(export)], texts=TEXTS, max_length=16, batch_size=5)
    assert result.texts_count == len(TEXTS)


def test_when_not_even_one_text_fits_the_error_asks_for_a_smaller_max_length(export, per_text, monkeypatch):
    monkeypatch.setattr(memory_mod, "available_memory", lambda: per_text)
    with pytest.raises(BadInput, match="too little even for one text: pass a smaller max_length"):
        inspect([str(export)], texts=TEXTS, max_length=16, batch_size=1)


def test_unknown_available_memory_skips_the_check(export, monkeypatch):
    monkeypatch.setattr(memory_mod, "available_memory", lambda: None)
    assert inspect([str(export)], texts=TEXTS[:2], max_length=16).texts_count == 2


def test_available_memory_reads_a_positive_number_on_this_machine():
    value = memory_mod.available_memory()
    assert value is None or value > 0
