"""`padlens audit`: exit 0 when error-level checks pass, 1 when one fails, 2 on bad input."""
from __future__ import annotations

import json
import re
from xml.etree import ElementTree as ET

import pytest


@pytest.fixture(scope="module")
def toy_dirs(zoo, tmp_path_factory):
    from tests.inspector.audit import toys

    base = tmp_path_factory.mktemp("cli-toys")
    return {k: toys.make(k, base / k, zoo("padlens")) for k in ("honest", "leaky", "positional")}


def test_a_clean_model_exits_0_and_prints_a_verdict_per_check(cli_run, toy_dirs):
    code, out, err = cli_run("audit", str(toy_dirs["honest"]), "--text", "the cat sat")
    assert code == 0, err
    assert "PASS  padding_invariance" in out and "audit passed" in out


def test_a_leaking_model_exits_1_naming_the_worst_case(cli_run, toy_dirs):
    code, out, _ = cli_run("audit", str(toy_dirs["leaky"]), "--text", "the cat sat")
    assert code == 1
    assert "FAIL  padding_invariance" in out and "padded to" in out and "audit failed" in out


def test_a_failed_warning_still_exits_0(cli_run, toy_dirs):
    code, out, _ = cli_run("audit", str(toy_dirs["positional"]), "--text", "the cat sat")
    assert code == 0 and "WARN  left_padding" in out


def test_json_and_junit_are_written(cli_run, toy_dirs, tmp_path):
    code, _, _ = cli_run("audit", str(toy_dirs["leaky"]), "--text", "a dog",
                     "--json", str(tmp_path / "a.json"), "--junit", str(tmp_path / "a.xml"))
    assert code == 1
    data = json.loads((tmp_path / "a.json").read_text())
    assert data["passed"] is False and {c["name"] for c in data["checks"]} >= {"padding_invariance"}
    root = ET.parse(tmp_path / "a.xml").getroot()
    assert root.tag == "testsuites" and int(root.get("failures")) >= 1


@pytest.mark.parametrize("args, message", [
    (["--tolerance", "bogus=1"], "unknown tolerance"),
    (["--tolerance", "padding_invariance"], "NAME=VALUE"),
    (["--tolerance", "padding_invariance=x"], "not a number"),
])
def test_bad_tolerances_exit_2(cli_run, toy_dirs, args, message):
    code, _, err = cli_run("audit", str(toy_dirs["honest"]), *args)
    assert code == 2 and err.startswith("Error:") and message in err and "Traceback" not in err


def test_a_missing_model_exits_2(cli_run, tmp_path):
    code, _, err = cli_run("audit", str(tmp_path / "nope.onnx"))
    assert code == 2 and err.startswith("Error:")


def test_an_unwritable_json_path_exits_2_before_auditing(cli_run, toy_dirs, tmp_path):
    code, out, err = cli_run("audit", str(toy_dirs["honest"]), "--json", str(tmp_path / "no" / "a.json"))
    assert code == 2 and "does not exist" in err and out == ""


def test_help_has_examples(cli_run):
    code, out, _ = cli_run("audit", "--help")
    assert code == 0 and "Examples:" in out and "--tolerance" in out and "--junit" in out


def test_help_lists_every_check_of_the_registry_with_its_severity(cli_run):
    from padlens.inspector.audit import registry

    code, out, _ = cli_run("audit", "--help")
    assert code == 0
    for spec in registry.SPECS:
        assert re.search(rf"{spec.name}\s+{spec.severity}", out), spec.name


def test_details_follow_failures_and_warnings_only_unless_verbose(cli_run, toy_dirs):
    _, out, _ = cli_run("audit", str(toy_dirs["positional"]), "--text", "the cat sat")
    lines = out.splitlines()
    passed = lines.index(next(l for l in lines if l.startswith("  PASS  padding_invariance")))
    warned = lines.index(next(l for l in lines if l.startswith("  WARN  left_padding")))
    assert lines[passed + 1].startswith("  PASS") and "position" in lines[warned + 1]
    _, verbose, _ = cli_run("-v", "audit", str(toy_dirs["positional"]), "--text", "the cat sat")
    vlines = verbose.splitlines()
    at = vlines.index(lines[passed])
    assert vlines[at + 1].startswith("        worst of") and len(vlines) > len(lines)


def test_batch_size_1_makes_the_batch_checks_not_applicable(cli_run, toy_dirs, tmp_path):
    code, out, _ = cli_run("audit", str(toy_dirs["honest"]), "--text", "the cat sat", "--batch-size", "1",
                           "--json", tmp_path / "a.json")
    assert code == 0
    assert re.search(r"n/a\s+batch_neighbour_invariance\s+not applicable: batch size 1", out)
    [entry] = [c for c in json.loads((tmp_path / "a.json").read_text())["checks"]
               if c["name"] == "batch_neighbour_invariance"]
    assert entry["applicable"] is False and entry["passed"] is True and entry["value"] is None


def test_pad_to_longest_pads_the_variants_to_the_longest_text(cli_run, toy_dirs, tmp_path):
    texts = ["a dog", "the cat sat on the mat"]
    code, _, _ = cli_run("audit", str(toy_dirs["honest"]), "--text", texts[0], "--text", texts[1],
                         "--pad-to", "longest", "--json", tmp_path / "a.json")
    assert code == 0
    from padlens.inspector.inputs.tokenize import load_tokenizer

    longest = int(load_tokenizer(toy_dirs["honest"]).encode(texts, padding="longest").lengths.max())
    checks = {c["name"]: c for c in json.loads((tmp_path / "a.json").read_text())["checks"]}
    assert f"pad lengths +1, +8 and {longest} (right padding)" in checks["padding_invariance"]["detail"]
    assert f"padded to {longest} with random ids" in checks["mask_honoured"]["detail"]
