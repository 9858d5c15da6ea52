"""The audit as terminal text: per model one line per check; details for failures and warnings."""
from __future__ import annotations

from padlens.inspector.audit.registry import GRAPH, TOKENIZER, spec
from padlens.inspector.audit.results import AuditResult, CheckResult
from padlens.inspector.inputs.tokenize import side_words
from padlens.inspector.report.fmt import fmt_cos

NAME_W = 32


def value_text(check: CheckResult) -> str:
    """The measured value as people read it: ``3 found``, ``1 - 3.9e-07 (min 0.99999)``."""
    if not check.applicable:
        return check.detail
    if check.value is None:
        return "not measured"
    if spec(check.name).family == GRAPH:
        return f"{int(check.value)} found"
    if spec(check.name).family == TOKENIZER:
        return f"{check.value:g} (limit {check.threshold:g})"
    return f"{fmt_cos(check.value, precise=True)} (min {check.threshold:g})"


def check_lines(check: CheckResult, verbose: bool = False) -> list[str]:
    """One line for the check; its detail below when it failed or warned (always with ``verbose``)."""
    lines = [f"  {check.mark:<4}  {check.name:<{NAME_W}} {value_text(check)}"]
    if check.applicable and (verbose or not check.passed):
        lines.append(f"        {check.detail}")
    return lines


def summary(result: AuditResult) -> str:
    """The audit's last line: passed, or which error-level checks failed."""
    failures = result.failures
    if not failures:
        return "audit passed: every error-level check passed"
    names = ", ".join(f"{c.model} {c.name}" for c in failures[:4])
    more = f" and {len(failures) - 4} more" if len(failures) > 4 else ""
    return f"audit failed: {len(failures)} error-level check(s) failed: {names}{more}"


def render_text(result: AuditResult, verbose: bool = False) -> str:
    """The terminal verdict: per model its verdict, then one line per check, then the summary."""
    lines = []
    for model in result.models:
        checks = [c for c in result.checks if c.model == model]
        fed = next((r for r in result.runs if r.model == model), None)
        how = "" if fed is None else f", {side_words(fed.padding_side, fed.padding_side_source)}"
        lines.append(f"{model}: {'FAIL' if any(c.mark == 'FAIL' for c in checks) else 'PASS'}{how}")
        lines += [f"  note: {note}" for note in (fed.notes if fed is not None else ())]
        for c in checks:
            lines += check_lines(c, verbose)
    lines.append(summary(result))
    return "\n".join(lines)
