"""The audit as one call for other packages: named checks on one model, no reaching into the run's parts.

``padlens quantize`` verifies its copy with it (``exporter/quantize/verify.py``); whatever the audit's
internals become (probes, facts, the run context), this signature stays.
"""
from __future__ import annotations

from collections.abc import Sequence


def check_model(ref, texts: Sequence[str], checks: Sequence[str], threads: int | None = None) -> list:
    """The audit's ``checks`` (registry names) on the model ``ref`` (a resolved ModelRef) over ``texts``,
    on CPU with default settings (its own padding side, width 128 or its positions): one CheckResult
    per name, in order (not applicable with the reason when a check cannot say anything)."""
    from padlens.errors import BadInput
    from padlens.inspector.audit import registry
    from padlens.inspector.audit.facts import RunContext
    from padlens.inspector.audit.run import Settings, open_run, run_check
    from padlens.inspector.runtime.encoder import Encoder
    from padlens.inspector.runtime.session import SessionOptions

    known = {spec.name for spec in registry.SPECS}
    unknown = [name for name in checks if name not in known]
    if unknown:
        raise BadInput(f"unknown audit checks {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    encoder = Encoder.open(ref, SessionOptions(threads=threads, mem_pattern=False), attention=False)
    probe, facts = open_run(encoder, list(texts), Settings())
    ctx = RunContext(probe, facts, ref.label, {}, 0)
    return [run_check(registry.spec(name), ctx) for name in checks]
