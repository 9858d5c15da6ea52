"""probe()'s targets, controls and inputs on synthetic states where the answer is known."""
from __future__ import annotations

import json

import numpy as np
import pytest

from padlens.errors import BadInput
from padlens.inspector.probe.data import Collected, StateSet
from padlens.inspector.probe.run import (
    TARGETS,
    build_targets,
    class_target,
    fit_layers,
    read_inputs,
    read_labelled,
    split_texts,
)

N, PER, DIMS = 240, 3, 16


def _states(rng, length, content, first, topic, noise_layer: bool):
    """PER states per text; layer 1 carries every target linearly, layer 0 is noise."""
    text = np.repeat(np.arange(N), PER)
    position = rng.integers(0, 64, size=text.size)
    distance = np.abs(position - length[text])
    layers = [rng.normal(size=(text.size, DIMS)).astype(np.float32)]
    planted = rng.normal(scale=0.05, size=(text.size, DIMS))
    planted[:, 0] += length[text]
    planted[:, 1] += distance
    planted[:, 2:6] += content[text]
    planted[:, 6:10] += 3 * np.eye(4)[first[text]]
    planted[:, 10:12] += 3 * np.eye(2)[topic[text]]
    layers.append(planted.astype(np.float32))
    return StateSet(layers, text, position, distance)


@pytest.fixture(scope="module")
def planted():
    rng = np.random.default_rng(0)
    length = rng.integers(5, 40, size=N)
    content = rng.normal(size=(N, 4)) + 1.0
    first = rng.integers(0, 4, size=N)
    topic = rng.integers(0, 2, size=N)
    full = np.zeros((N, DIMS), dtype=np.float32)
    full[:, 2:6] = content
    data = Collected(_states(rng, length, content, first, topic, True),
                     _states(rng, length, content, first, topic, True),
                     [full, full], length, first + 1000, np.ones(N, dtype=bool), 40, ["h0", "h1"])
    labels = [["news", "sport"][t] for t in topic]
    targets = build_targets(data, lambda i: f"tok{i}", labels, "topic")
    return fit_layers(data, targets, split_texts(N, 0), seed=0)


@pytest.mark.slow  # probe fits every target
def test_every_target_is_probed_from_pads_and_real_tokens_at_every_layer(planted):
    names = [p.target for p in planted[0].probes]
    assert names == [t for t in [*TARGETS, "label:topic"] for _ in (0, 1)]
    assert [p.states for p in planted[0].probes] == ["pad", "real"] * 5
    assert all(p.applicable for layer in planted for p in layer.probes)


@pytest.mark.slow  # probe fits
def test_a_planted_signal_is_found_at_the_layer_that_carries_it(planted):
    layer = planted[1]
    for states in ("pad", "real"):
        assert layer.get("length", states).score > 0.95
        assert layer.get("distance", states).score > 0.95
        content = layer.get("content", states)
        assert content.score > content.baseline + 0.1
        for target in ("first_token", "label:topic"):
            probe = layer.get(target, states)
            assert probe.score > probe.baseline + 0.3, target


@pytest.mark.slow  # probe fits (the planted fixture)
def test_noise_states_read_nothing_beyond_the_control(planted):
    for p in planted[0].probes:
        if p.metric == "cosine":
            assert abs(p.score - p.baseline) < 0.05, p
        else:
            assert p.selectivity < 0.12, p


@pytest.mark.slow  # probe fits (the planted fixture)
def test_controls_stay_at_the_floor_even_where_the_signal_is_strong(planted):
    for layer in planted:
        for p in layer.probes:
            if p.metric == "r2":
                assert abs(p.control) <= 0.1, p
            elif p.metric == "accuracy":
                assert p.control <= p.baseline + 0.12, p
            else:
                assert abs(p.control - p.baseline) < 0.05, p


def test_the_first_token_classes_are_the_most_frequent_ones_with_two_texts_or_more():
    target = class_target("first_token", ["a"] * 5 + ["b"] * 3 + ["c"] * 2 + ["d"] + [None], top_k=2)
    assert target.classes == ["a", "b"]
    assert target.valid.tolist() == [True] * 8 + [False] * 4
    assert class_target("x", ["a", "b", "c", "d"]).classes == []


def test_a_probe_with_too_few_texts_says_why_instead_of_scoring():
    rng = np.random.default_rng(1)
    n = 6
    states = StateSet([rng.normal(size=(n, 4)).astype(np.float32)], np.arange(n), np.arange(n), np.arange(n))
    data = Collected(states, states, [rng.normal(size=(n, 4)).astype(np.float32)], np.arange(n) + 3,
                     np.zeros(n, dtype=np.int64), np.ones(n, dtype=bool), 4, ["h0"])
    layers = fit_layers(data, build_targets(data, str, None, None), split_texts(n, 0), seed=0)
    for p in layers[0].probes:
        assert not p.applicable and p.score is None
        assert "needs at least" in p.reason or "class" in p.reason


def test_the_split_is_by_text_disjoint_and_seeded():
    a, b = split_texts(100, 0), split_texts(100, 0)
    assert (a == b).all() and a.sum() == 30
    assert not (split_texts(100, 1) == a).all()


# ---------------------------------------------------------------- labels and inputs

def test_labels_follow_the_texts_the_reader_keeps(tmp_path):
    f = tmp_path / "t.jsonl"
    rows = [{"text": "a b", "topic": "x"}, {"text": "  ", "topic": "skipped"}, {"text": "c", "topic": 3},
            {"text": "d"}]
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    texts, labels = read_inputs(None, str(f), "topic", None)
    assert texts == ["a b", "c", "d"]
    assert labels == ["x", "3", None]


def test_csv_labels_are_read_by_column(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text("text,lang\nhello,en\nbonjour,fr\n")
    assert read_labelled(f, "lang") == (["hello", "bonjour"], ["en", "fr"])


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_texts_and_labels_come_from_one_read_of_the_file(tmp_path, monkeypatch, suffix):
    from padlens.inspector.inputs import texts as T

    f = tmp_path / f"t{suffix}"
    if suffix == ".jsonl":
        f.write_text("".join(json.dumps({"text": t, "lang": lang}) + "\n" for t, lang in
                             [("hello", "en"), ("", "xx"), ("bonjour", "fr"), ("hola", "es")]))
    else:
        f.write_text("text, lang\nhello,en\n,xx\nbonjour,fr\nhola,es\n")
    opened = []
    original = T._open
    monkeypatch.setattr(T, "_open", lambda path: opened.append(path) or original(path))
    assert read_inputs(None, str(f), "lang", 2) == (["hello", "bonjour"], ["en", "fr"])
    assert opened == [f]


@pytest.mark.parametrize("case, message", [
    ("missing-column", "no 'topic' field"),
    ("txt", "a .jsonl or .csv"),
    ("with-text", "a texts value has no label"),
    ("no-file", "texts_file=FILE"),
])
def test_bad_labels_are_refused_before_any_model_runs(tmp_path, case, message):
    f = tmp_path / ("t.txt" if case == "txt" else "t.jsonl")
    f.write_text('{"text": "a", "lang": "en"}\n')
    texts = ["extra"] if case == "with-text" else None
    with pytest.raises(BadInput, match=message):
        read_inputs(texts, None if case == "no-file" else str(f), "topic", None)
