"""The study's sentences are derived from its numbers: change a number, the sentence changes."""
from __future__ import annotations

import copy

import pytest

from padlens.inspector.study import words
from padlens.inspector.study.results import BatchOrder, ClusterRow, LayerGeometry, ModelStudy


def _probe(target, states, score, control, metric="r2"):
    return {"target": target, "states": states, "metric": metric, "score": score, "control": control,
            "selectivity": score - control, "selectivity_ci": [score - control - 0.05, score - control + 0.05],
            "reason": ""}


def _layer(index, length, content, first):
    return {"index": index, "probes": [
        _probe("length", "pad", length, 0.0), _probe("length", "real", 0.5, 0.0),
        _probe("content", "pad", content, 0.3, "cosine"), _probe("content", "real", 0.9, 0.3, "cosine"),
        _probe("first_token", "pad", first, 0.2, "accuracy"), _probe("first_token", "real", 0.4, 0.2, "accuracy")]}


@pytest.fixture
def one() -> ModelStudy:
    """A 3-layer model whose pads read the length from layer 1 on, not the content; a fixture, not a finding."""
    geometry = [LayerGeometry(0, 0.82, 0.03, 0.99, 1.0, 1.0), LayerGeometry(1, 0.88, 0.10, 0.97, 1.0, 1.0),
                LayerGeometry(2, 0.92, 0.19, 0.96, 1.0, 1.0)]
    probe = {"layers": [_layer(0, 0.01, 0.31, 0.21), _layer(1, 0.94, 0.35, 0.25), _layer(2, 0.90, 0.40, 0.30)]}
    clusters = [ClusterRow("a", "m/fp32, masked mean", "m/fp32", "", 0.91),
                ClusterRow("b", "m/fp32, mean with pads", "m/fp32", "m/fp32, masked mean", 0.70, 0.75, 0.12,
                           0.55, 5, 0.80, 0.50)]
    orders = [BatchOrder("m/fp32", 1.0, True)]
    return ModelStudy("m", "m/fp32", "fp32", ["m/fp32"], "mean", "manifest", "right", 128, 150, geometry,
                      {}, 0.6, probe, clusters, orders)


def test_length_is_read_from_the_first_layer_where_every_later_layer_reads_it(one):
    said = words.target_sentence(one, "length")
    assert said.startswith("From layer 1 on, one pad state reads the text's length: R² 0.94")
    assert "better than one real token does (0.50)" in said
    one.probe["layers"][1]["probes"][0].update(score=0.05, selectivity=0.05)
    assert words.target_sentence(one, "length").startswith("At the last layer (layer 2) only")


def test_a_probe_no_better_than_its_control_is_said_so_with_its_best_layer(one):
    said = words.target_sentence(one, "content")
    assert said.startswith("At no layer does one pad state read the text's content")
    assert "best: cosine 0.40 vs control 0.30 at layer 2" in said
    one.probe["layers"][2]["probes"][2].update(score=0.75, selectivity=0.45,
                                               selectivity_ci=[0.4, 0.5])
    assert words.target_sentence(one, "content").startswith("At the last layer (layer 2) only, one pad state reads")


def test_geometry_sentence_follows_the_cosines(one):
    assert words.geometry_sentence(one).startswith("Pads look alike and unlike the words: pad–pad cosine 0.82")
    changed = copy.deepcopy(one)
    changed.geometry[-1].pad_real_cos = 0.5
    assert words.geometry_sentence(changed).startswith("Pads resemble each other more than the words")
    changed.geometry[-1].pad_anchor_cos = 0.4
    assert "drift away from the pad next to the text (anchor cosine 0.40)" in words.geometry_sentence(changed)


def test_layer_zero_sanity_fails_when_a_pad_reads_its_text_before_attention(one):
    assert words.sanity_sentence(one).startswith("Sanity check passed")
    one.probe["layers"][0]["probes"][0].update(score=0.8, selectivity=0.8, selectivity_ci=[0.7, 0.9])
    said = words.sanity_sentence(one)
    assert said.startswith("Sanity check FAILED") and "the text's length" in said


def test_cluster_sentences_quote_the_moved_share_and_both_aris(one):
    said = words.cluster_sentences(one)
    assert said[0] == ("Masked mean pooling (the reference) recovers the topics: ARI 0.91 against the topic labels.")
    assert said[1].startswith("Leaving the pads in the mean (the common mistake) moves 12% of the texts")
    assert "lowers the ARI against the topics to 0.70 (reference 0.91)" in said[1]
    one.clusters[1].moved, one.clusters[1].ari_reference = 0.0, 1.0
    assert "changes no cluster (ARI 1.00 against the reference) although it moves the embeddings (least cosine " \
           "0.500)" in words.cluster_sentences(one)[1]
    one.clusters[0].ari_topics = 0.4
    assert words.cluster_sentences(one)[0].startswith("Masked mean pooling (the reference) does not recover")


def test_a_file_that_moves_with_batch_order_gets_its_own_sentence(one):
    assert "Every file embeds the corpus the same in another batch order" in words.order_sentence(one)
    one.orders.append(BatchOrder("m/int8-dynamic", 0.985, False))
    one.clusters.append(ClusterRow("e", "m/int8-dynamic, other order", "m/int8-dynamic", "x", 0.8, 0.96, 0.02))
    said = words.order_sentence(one)
    assert said == ("m/int8-dynamic embeds differently in another batch order (least cosine 0.9850): k-means moves "
                    "2.0% of the texts (ARI 0.96 against its own clusters in the first order).")
