"""The check registry: one description per check feeds --help, the docs/audit.md table, the JSON and the runner."""
from __future__ import annotations

import re
import subprocess
import sys

from padlens.inspector.audit import registry
from padlens.inspector.audit import tolerances as tl
from padlens.inspector.audit.run import RUN_CHECKS
from tests.conftest import ROOT

AUDIT_PAGE = ROOT / "docs" / "audit.md"


def test_the_audit_pages_check_table_is_the_registrys_markdown():
    text = AUDIT_PAGE.read_text(encoding="utf-8")
    found = re.search(r"<!-- audit-checks:[^\n]*-->\n(.*?)<!-- /audit-checks -->", text, re.DOTALL)
    assert found, "docs/audit.md lost its generated audit-check table markers"
    assert found.group(1) == registry.markdown()


def test_the_generator_prints_the_table():
    proc = subprocess.run([sys.executable, "-m", "padlens.inspector.audit.registry", "--markdown"],
                          capture_output=True, text=True, check=True)
    assert proc.stdout == registry.markdown()
    assert all(f"| `{s.name}` | {s.severity} |" in proc.stdout for s in registry.SPECS)


def test_every_single_run_check_has_a_function_and_drift_is_the_only_other():
    single = {s.name for s in registry.SPECS if s.family != registry.DRIFT}
    assert set(RUN_CHECKS) == single
    assert registry.names(registry.DRIFT) == ("reference_drift",)


def test_tolerance_names_come_from_the_registry():
    invariance = registry.names(registry.INVARIANCE)
    assert invariance, "the registry lost its invariance checks"
    for name in invariance:  # each registered invariance check takes a cosine and a delta tolerance
        assert tl.validate({name: 0.9, f"{name}.delta": 0.5}) == {name: 0.9, f"{name}.delta": 0.5}
    for name in tl.known_names():  # and no tolerance names a check the registry does not have
        assert name.split(".")[0] in registry.names(), name
    assert "mask_honoured_other_side.delta" in tl.known_names()
    assert not any(n.startswith("mask_path_quantized") for n in tl.known_names())


def test_results_take_their_severity_from_the_registry(toy):
    from padlens.inspector.audit import audit

    result = audit([str(toy("honest"))], texts=["a dog", "the cat sat on the mat"])
    assert {c.name for c in result.checks} == set(registry.names()) - {"reference_drift"}
    assert all(c.severity == registry.spec(c.name).severity for c in result.checks)
    assert [c.name for c in result.checks] == [n for n in registry.ORDER if n != "reference_drift"]
