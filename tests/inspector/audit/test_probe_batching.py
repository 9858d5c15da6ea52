"""The audit stacks variants only when a model's rows are shown independent of their batch,
and stacking changes no verdict, value or detail."""
from __future__ import annotations

import pytest

from padlens.inspector.audit import Probe, audit, running, tokenize
from padlens.inspector.audit import variants as P

TEXTS = ["this is a sample sentence", "the cat sat on the mat", "a dog", "padding text is short",
         "what was the model", "it is long and it is short and it is a word"]


def _runs(monkeypatch) -> list[int]:
    """Every Probe made from now on, in order (to read its ``batched`` and ``runs``)."""
    seen: list[Probe] = []
    original = Probe.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        seen.append(self)

    monkeypatch.setattr(Probe, "__init__", init)
    return seen


def _layout(folder, batch_size=None):
    from padlens.inspector.inputs.resolve import resolve_models
    from padlens.inspector.runtime.encoder import Encoder

    enc = Encoder.open(resolve_models([folder])[0])
    return enc, P.Layout(enc.tokenizer, tokenize(enc, TEXTS, 32), 32, batch_size=batch_size)


def _open(folder, batch_size=None):
    return Probe.open(*_layout(folder, batch_size))


def _never_stacked(monkeypatch):
    """Every probe opened from now on runs each variant alone (rows never measured independent)."""
    monkeypatch.setattr(running, "measure_independence", lambda runner, layout: running.Independence())


@pytest.mark.parametrize("kind", ["honest", "leaky", "nan", "positional", "ignores-mask"])
def test_stacked_variants_give_exactly_the_results_of_every_variant_run_alone(toy, monkeypatch, kind):
    probes = _runs(monkeypatch)
    stacked = audit([str(toy(kind))], texts=TEXTS, max_length=32).to_dict()
    _never_stacked(monkeypatch)
    alone = audit([str(toy(kind))], texts=TEXTS, max_length=32).to_dict()
    assert stacked == alone
    assert not probes[1].batched and probes[0].runs <= probes[1].runs + 1  # + the batch that tried
    if kind == "honest":  # the others may round differently in a batch: they run alone (exact)
        assert probes[0].batched and probes[0].runs < probes[1].runs / 2


@pytest.mark.parametrize("kind", ["batch-mix", "dynamic"])
def test_a_model_whose_rows_feel_their_batch_runs_every_variant_alone(toy, monkeypatch, kind):
    probes = _runs(monkeypatch)
    audit([str(toy(kind))], texts=TEXTS, max_length=32)
    assert not probes[0].batched


def test_the_graph_is_searched_for_dynamic_quantization_once_per_run(toy, monkeypatch):
    from padlens.inspector.audit import graph_checks as G

    calls = []
    find = G.find_dynamic_quantization
    monkeypatch.setattr(G, "find_dynamic_quantization", lambda model: calls.append(model) or find(model))
    probes = _runs(monkeypatch)
    result = audit([str(toy("dynamic"))], texts=TEXTS, max_length=32)
    assert len(calls) == len(probes) == 1 and not probes[0].batched  # the facts' answer decided it
    assert any(c.name == "dynamic_activation_quantization" and not c.passed for c in result.checks)


def test_rows_are_independent_for_an_honest_model_and_not_for_one_that_mixes_them(toy):
    honest, mixing = _open(toy("honest")), _open(toy("batch-mix"))
    assert honest.batched and honest.runner.stacked and honest._in_batch
    assert not mixing.batched and not mixing.runner.stacked and not mixing._in_batch
    assert mixing.runs == 1 + len(TEXTS)  # the batch, then each text alone: kept as its variant
    assert len(mixing._padded) + len(mixing._refs) == len(TEXTS)


def test_a_batch_size_keeps_the_neighbour_batches_as_asked(toy):
    probe = _open(toy("honest"), batch_size=4)
    assert not probe.batched and probe.runs == 0


def test_whether_variants_run_stacked_is_fixed_when_the_probe_is_opened(toy):
    """No flag set from outside: the runner is chosen once, and a probe cannot be re-stacked."""
    probe = Probe.open(*_layout(toy("honest")), stacking_allowed=False)
    assert not probe.batched and probe.runs == 0
    with pytest.raises(AttributeError):
        probe.batched = True
    with pytest.raises(AttributeError):
        probe.runner.stacked = True


def test_rows_built_from_the_one_tokenization_equal_the_tokenizer_s_batches(toy):
    _, layout = _layout(toy("honest"))
    for side in ("right", "left"):
        ours, theirs = layout.rows([0, 2, 5], 32, side), layout.encode([TEXTS[i] for i in (0, 2, 5)], 32, side)
        for name in ("input_ids", "attention_mask", "token_type_ids", "position_ids", "special_tokens_mask",
                     "lengths"):
            assert (getattr(ours, name) == getattr(theirs, name)).all(), name


def test_stacking_keeps_rows_in_order(toy):
    _, layout = _layout(toy("honest"))
    one, two = layout.rows([0], 32), layout.rows([3, 1], 32)
    both = P.stack([one, two])
    assert both.shape == (3, 32)
    assert (both.input_ids[1:] == two.input_ids).all() and (both.input_ids[0] == one.input_ids[0]).all()
