"""CLI command `audit`: padding leaks, as a CI gate."""
from __future__ import annotations

import json
import logging

import click

from padlens.cli_inspect import check_output_file, input_kwargs, input_options

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- audit


def _mark(check) -> str:
    if check.passed:
        return "PASS"
    return "FAIL" if check.severity == "error" else "WARN"


def _value(check) -> str:
    from padlens.inspector.audit import fmt_cos

    if check.value is None:
        return "not measured"
    if check.name in ("dynamic_activation_quantization", "mask_path_quantized"):
        return f"{int(check.value)} found"
    return f"{fmt_cos(check.value)} (min {check.threshold:g})"


def render(result) -> None:
    """Terminal verdict: per model, one line per check; failed and warned checks say why."""
    for model in result.models:
        checks = [c for c in result.checks if c.model == model]
        failed = [c for c in checks if not c.passed and c.severity == "error"]
        click.echo(f"{model}: {'FAIL' if failed else 'PASS'}")
        for c in checks:
            click.echo(f"  {_mark(c)}  {c.name:<32} {_value(c)}")
            if not c.passed:
                click.echo(f"        {c.detail}")
    failures = result.failures
    if failures:
        names = ", ".join(f"{c.model} {c.name}" for c in failures[:4])
        more = f" and {len(failures) - 4} more" if len(failures) > 4 else ""
        click.echo(f"audit failed: {len(failures)} error-level check(s) failed: {names}{more}")
    else:
        click.echo("audit passed: every error-level check passed")


@click.command("audit")
@input_options
@click.option("--json", "json_path", metavar="FILE", help="Write the results as JSON.")
@click.option("--junit", "junit_path", metavar="FILE", help="Write JUnit XML (one testcase per check).")
@click.option("--tolerance", "tolerances", multiple=True, metavar="NAME=VALUE",
              help="Override a threshold, e.g. padding_invariance=0.9999 or padding_invariance.delta=0.01.")
@click.option("--html", "html_path", metavar="FILE",
              help="Write a self-contained HTML report with the verdicts and plots (needs padlens[report]).")
@click.pass_context
def audit_command(ctx, json_path, junit_path, html_path, tolerances, **opts):
    """Does padding leak into real tokens? Checks per model, precision and provider.

    Exit 0 when every error-level check passes, 1 when one fails, 2 on bad input.
    Checks: padding_invariance, batch_neighbour_invariance, mask_honoured,
    fully_masked_row, left_padding (warning), dynamic_activation_quantization (warning),
    mask_path_quantized, reference_drift (against the fp32 CPU run).

    \b
    Examples:
      padlens audit out/minilm                           # every precision of an export
      padlens audit model.onnx --tokenizer tok/ --junit audit.xml
      padlens audit out/minilm --provider cpu --provider cuda --json audit.json
      padlens audit model.int8.onnx --tolerance padding_invariance=0.999
    """
    from padlens.fsio import atomic_write
    from padlens.inspector.audit import audit
    from padlens.inspector.tolerances import parse_tolerances

    overrides = parse_tolerances(tolerances)
    check_output_file(json_path, "--json")
    check_output_file(junit_path, "--junit")
    check_output_file(html_path, "--html")
    if html_path:
        from padlens.inspector.report import check_available

        check_available()
    kwargs = input_kwargs(**opts)
    for unused in ("padding", "batch_size"):  # the audit builds its own padded batches
        kwargs.pop(unused, None)
    models = kwargs.pop("models")
    with _bar(ctx, len(models) * len(kwargs["providers"]), "runs") as progress:
        result = audit(models, tolerances=overrides, progress=progress, **kwargs)
    render(result)
    if html_path:
        from padlens.inspector.report import write_html

        write_html(html_path, audit_result=result, title="padlens audit")
    if json_path:
        atomic_write(json_path, json.dumps(result.to_dict(), indent=2) + "\n")
    if junit_path:
        atomic_write(junit_path, result.to_junit())
    return 0 if result.passed else 1


# --------------------------------------------------------------------------- embed


def _bar(ctx, total: int | None, unit: str):
    """The progress bar for this command (a no-op context when -q or not a terminal)."""
    import contextlib

    from padlens.progress import progress_for

    bar = progress_for(bool((ctx.obj or {}).get("quiet")), total, unit)
    if bar is None:
        return contextlib.nullcontext(None)
    return bar


COMMANDS = [audit_command]
