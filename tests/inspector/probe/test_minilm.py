"""The issue's sanity on the real all-MiniLM-L6-v2: layer-0 pads know position, not the text; controls stay at the floor."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def minilm_probe(minilm_export):
    from padlens.inspector.probe.run import probe

    # the README's run: the built-in corpus (400 texts, 120 held out), max length 128, seed 0
    return probe([str(minilm_export)], max_length=128)


def test_layer_0_pads_read_position_but_not_length_content_or_first_word(minilm_probe):
    layer0 = minilm_probe.runs[0].layers[0]
    length = layer0.get("length", "pad")
    assert abs(length.score - length.control) <= 0.05 and length.score <= 0.05
    content = layer0.get("content", "pad")
    assert abs(content.score - content.baseline) <= 0.02
    first = layer0.get("first_token", "pad")
    assert abs(first.score - first.baseline) <= 0.05
    assert layer0.get("distance", "pad").score >= 0.6


def test_every_control_stays_at_the_floor(minilm_probe):
    for layer in minilm_probe.runs[0].layers:
        for p in layer.probes:
            if p.metric == "r2":
                assert abs(p.control) <= 0.05, (layer.index, p)
            else:  # accuracy against the majority, cosine against the mean vector
                assert abs(p.control - p.baseline) <= 0.05, (layer.index, p)


def test_deeper_pads_know_the_length_and_content_the_embeddings_did_not(minilm_probe):
    layers = minilm_probe.runs[0].layers[1:]
    assert max(layer.get("length", "pad").selectivity for layer in layers) > 0.5
    assert max(layer.get("content", "pad").selectivity for layer in layers) > 0.05
