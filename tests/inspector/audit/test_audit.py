"""The audit's runtime checks: each has a toy built to fail it and one built to pass it."""
from __future__ import annotations

import json
from xml.etree import ElementTree as ET

import pytest

from padlens.errors import BadInput
from padlens.inspector.audit import AuditResult, CheckResult, Layout, Probe, audit, tokenize
from padlens.inspector.audit.running import Runner
from tests.inspector.audit import toys

TEXTS = ["this is a sample sentence", "the cat sat on the mat", "a dog", "padding text is short"]


def _audit(path, **kw):
    return audit([str(path)], texts=TEXTS, **kw)


def _check(result, name):
    [found] = [c for c in result.checks if c.name == name]
    return found


@pytest.mark.parametrize("name, failing, passing", [
    ("padding_invariance", "leaky", "honest"),
    ("batch_neighbour_invariance", "batch-mix", "honest"),
    ("mask_honoured", "leaky", "honest"),
    ("mask_honoured", "ignores-mask", "honest"),
    ("fully_masked_row", "nan", "honest"),
    ("left_padding", "positional", "honest"),
    ("dynamic_activation_quantization", "dynamic", "honest-matmul"),
    ("mask_path_quantized", "qdq-mask", "qdq-activation"),
    ("padding_invariance", "dynamic", "qdq-activation"),
])
def test_each_check_fails_the_model_built_to_fail_it_and_passes_the_other(toy, name, failing, passing):
    assert not _check(_audit(toy(failing)), name).passed
    assert _check(_audit(toy(passing)), name).passed


def test_a_float32_tiny_bert_passes_every_error_level_check(zoo):
    result = _audit(zoo("padlens"))
    assert result.passed, [c.detail for c in result.failures]
    for name in ("padding_invariance", "batch_neighbour_invariance", "mask_honoured", "fully_masked_row"):
        assert _check(result, name).value > 0.99999


def test_severity_decides_the_verdict(toy):
    warned = _audit(toy("positional"))            # left_padding fails: a warning only
    assert warned.passed and not _check(warned, "left_padding").passed
    assert _check(warned, "left_padding").severity == "warning"
    assert not _audit(toy("qdq-mask")).passed     # mask_path_quantized is an error


def test_nan_fails_naming_the_layer_and_the_text(toy):
    c = _check(_audit(toy("nan")), "fully_masked_row")
    assert "NaN/Inf at layer 1" in c.detail and "text " in c.detail and c.value == -1.0


def test_details_name_the_worst_case_and_the_likely_cause(toy):
    c = _check(_audit(toy("leaky")), "padding_invariance")
    assert "padded to" in c.detail and "layer" in c.detail and "Likely cause" in c.detail
    d = _check(_audit(toy("dynamic")), "padding_invariance")
    assert "DynamicQuantizeLinear" in d.detail
    m = _check(_audit(toy("ignores-mask")), "mask_honoured")
    assert "ignored" in m.detail


def test_left_padding_detail_explains_absolute_positions(toy):
    assert "position" in _check(_audit(toy("positional")), "left_padding").detail


def test_reference_drift_compares_each_variant_with_fp32(tmp_path, tokenizer_dir):
    base = toys.build("honest", toys.vocab_size(tokenizer_dir))
    same = toys.export_dir(tmp_path / "same", tokenizer_dir, {"fp32": base, "fp16": base})
    worse = toys.export_dir(tmp_path / "worse", tokenizer_dir,
                            {"fp32": base, "fp16": toys.perturbed(base, 0.5)})
    ok = [c for c in _audit(same).checks if c.name == "reference_drift"]
    bad = [c for c in _audit(worse).checks if c.name == "reference_drift"]
    assert [c.model for c in ok] == ["same/fp16"] and ok[0].passed
    assert not bad[0].passed and "worse/fp32" in bad[0].detail and "pads" in bad[0].detail
    assert "pads n/a" not in bad[0].detail  # compared runs keep their pads' states


def test_a_single_model_has_no_reference_drift(toy):
    assert not [c for c in _audit(toy("honest")).checks if c.name == "reference_drift"]


def test_references_are_computed_once_per_text(toy):
    from padlens.inspector.inputs.resolve import resolve_models
    from padlens.inspector.runtime.encoder import Encoder

    enc = Encoder.open(resolve_models([toy("honest")])[0])
    probe = Probe(Layout(enc.tokenizer, tokenize(enc, TEXTS, 32), 32), Runner(enc))
    for _ in range(3):
        probe.reference(0)
        probe.padded(0, 32)
    assert probe.runs == 2


def test_to_dict_has_exactly_the_contract_keys(toy):
    d = _audit(toy("honest")).to_dict()
    assert set(d) == {"passed", "checks", "runs"}  # runs: how each was fed (padding side and why)
    assert all(set(c) == {"model", "name", "severity", "passed", "value", "threshold", "detail", "applicable",
                          "node"} for c in d["checks"])  # node: where a failed check's leak enters
    json.dumps(d, allow_nan=False)


def test_junit_is_well_formed_and_fails_only_error_checks():
    result = AuditResult(False, [
        CheckResult("m <1>", "padding_invariance", "error", False, 0.9, 0.99, 'leak & "quote"'),
        CheckResult("m <1>", "left_padding", "warning", False, 0.3, 0.99, "positions"),
        CheckResult("m <1>", "mask_honoured", "error", True, 1.0, 0.99, "ok"),
    ])
    root = ET.fromstring(result.to_junit())
    assert root.tag == "testsuites" and root.get("failures") == "1"
    [suite] = root
    assert suite.get("name") == "m <1>" and suite.get("tests") == "3"
    failures = suite.findall("testcase/failure")
    assert len(failures) == 1 and failures[0].get("message") == 'leak & "quote"'
    assert "WARNING" in suite.find("testcase[@name='left_padding']/system-out").text


def test_unknown_tolerance_is_bad_input(toy):
    with pytest.raises(BadInput, match="unknown tolerance"):
        _audit(toy("honest"), tolerances={"padding": 0.9})


def test_a_tolerance_override_changes_the_verdict(toy):
    relaxed = _audit(toy("dynamic"), tolerances={"padding_invariance": 0.5,
                                                 "padding_invariance.delta": 10})
    assert _check(relaxed, "padding_invariance").passed
    assert _check(relaxed, "padding_invariance").threshold == 0.5


def test_a_fused_graph_that_turns_the_mask_into_lengths_fails_the_other_padding_side(zoo):
    """ORT's EmbedLayerNormalization mask index assumes right padding: left padding leaks."""
    fused = _check(_audit(zoo("ort-fused")), "mask_honoured_other_side")
    assert not fused.passed and fused.severity == "warning"
    assert "left-padded" in fused.detail and "EmbedLayerNormalization" in fused.detail
    plain = _check(_audit(zoo("padlens")), "mask_honoured_other_side")
    assert plain.passed and plain.value > 0.99999


def test_batch_size_sets_the_rows_of_each_neighbour_batch(toy, monkeypatch):
    from padlens.inspector.audit.cache import Probe as P

    rows = []
    batch_rows = P.batch_rows
    monkeypatch.setattr(P, "batch_rows",
                        lambda self, batch, r: rows.append(len(batch.lengths)) or batch_rows(self, batch, r))
    c = _check(_audit(toy("batch-mix"), batch_size=5), "batch_neighbour_invariance")
    assert not c.passed and "in a batch of 5" in c.detail
    assert rows.count(5) == len(TEXTS)
    assert "between a" in _check(_audit(toy("batch-mix")), "batch_neighbour_invariance").detail


def test_batch_size_1_leaves_no_batch_neighbour_to_check(toy):
    result = _audit(toy("batch-mix"), batch_size=1)
    for name in ("batch_neighbour_invariance", "fully_masked_row"):
        c = _check(result, name)
        assert not c.applicable and c.passed and c.value is None and c.mark == "n/a"
        assert c.detail.startswith("not applicable: batch size 1")
    assert _check(result, "padding_invariance").applicable
    [suite] = ET.fromstring(result.to_junit())
    skipped = sum(not c.applicable for c in result.checks)  # the batch checks, and the toy has no positions
    assert skipped >= 2 and suite.get("skipped") == str(skipped) and len(suite.findall("testcase/skipped")) == skipped


def test_texts_that_fill_the_padded_width_make_the_pad_checks_not_applicable(toy):
    same = ["the cat sat", "the dog sat"]                    # as many tokens each: nothing to pad
    result = audit([str(toy("leaky"))], texts=same, padding="longest")
    for name in ("padding_invariance", "mask_honoured", "left_padding", "mask_honoured_other_side"):
        c = _check(result, name)
        assert not c.applicable and c.passed and "no pads" in c.detail
        assert c.to_dict()["applicable"] is False and c.to_dict()["value"] is None
    assert _check(_audit(toy("leaky")), "padding_invariance").applicable


@pytest.mark.parametrize("kw, message", [({"batch_size": 0}, "^batch_size must be at least 1"),
                                         ({"padding": "widest"}, "padding must be one of"),
                                         ({"padding_side": "up"}, "padding side")])
def test_bad_probe_settings_are_bad_input(toy, kw, message):
    with pytest.raises(BadInput, match=message):
        _audit(toy("honest"), **kw)


def test_facts_are_gathered_once_frozen_and_the_check_order_does_not_matter(toy):
    import dataclasses

    from padlens.inspector.audit import registry
    from padlens.inspector.audit.facts import RunContext
    from padlens.inspector.audit.run import Settings, open_run, run_check
    from padlens.inspector.inputs.resolve import resolve_models
    from padlens.inspector.runtime.encoder import Encoder

    enc = Encoder.open(resolve_models([toy("ignores-mask")])[0])
    results = []
    for specs in (registry.SPECS[:-1], registry.SPECS[-2::-1]):
        probe, facts = open_run(enc, TEXTS, Settings())
        ctx = RunContext(probe, facts, "m", {})
        results.append({s.name: run_check(s, ctx) for s in specs})
    assert results[0] == results[1]
    assert ctx.facts.mask_ignored
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.facts.mask_effect = 1.0


def test_the_terminal_text_has_one_line_per_check_and_details_for_failures_only(toy):
    from padlens.inspector.audit.render import render_text

    result = _audit(toy("leaky"))
    text = render_text(result).splitlines()
    failed = [c for c in result.checks if c.mark in ("FAIL", "WARN")]
    assert len(text) == 1 + len(result.checks) + len(failed) + 1
    assert sum(line.startswith("        ") for line in text) == len(failed)
    verbose = render_text(result, verbose=True).splitlines()
    applicable = [c for c in result.checks if c.applicable]
    assert len(verbose) == 1 + len(result.checks) + len(applicable) + 1
    assert text[-1].startswith("audit failed")


@pytest.mark.parametrize("passed", [True, False])
def test_a_result_is_true_exactly_when_it_passed(passed):
    check = CheckResult("m", "padding_invariance", "error", passed, 0.9, 0.99, "detail")
    assert bool(check) is passed
    assert bool(AuditResult(passed, [check])) is passed  # `if audit(...)` means "it passed"
    assert bool(AuditResult(passed, [])) is passed
