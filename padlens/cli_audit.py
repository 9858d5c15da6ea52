"""CLI command `audit`: padding leaks, as a CI gate."""
from __future__ import annotations

import click

from padlens.cli_options import OutputTargets, output_options, progress_bar, retune, run_options

#: what the shared input options mean for the audit (it builds its own padded variants)
AUDIT_OPTION_HELP = {
    "pad_to": {"help": "Pad the audited variants to --max-length, or to the longest audited text."},
    "batch_size": {"default": None, "show_default": False,
                   "help": "Rows of each batch_neighbour_invariance batch: the text, a short and a long "
                           "neighbour, then other texts. 1: texts run alone (batch checks not applicable). "
                           "[default: 3]"},
}


class ChecksCommand(click.Command):
    """``audit``, its epilog the check registry's list, read when help is shown (every other
    command's start does not import the audit's checks)."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from padlens.inspector.audit import registry

        self.epilog = registry.help_text()
        super().format_epilog(ctx, formatter)


def render(result, verbose: bool = False) -> None:
    """Echo the terminal verdict (``padlens.inspector.audit.render``)."""
    from padlens.inspector.audit.render import render_text

    click.echo(render_text(result, verbose))


@retune(AUDIT_OPTION_HELP)
@click.command("audit", cls=ChecksCommand)
@run_options
@output_options(json=True, html=True, junit=True)
@click.option("--tolerance", "tolerances", multiple=True, metavar="NAME=VALUE",
              help="Override a threshold, e.g. padding_invariance=0.9999 or padding_invariance.delta=0.01.")
@click.pass_context
def audit_command(ctx, outputs: OutputTargets, tolerances, models, texts, options):
    """Does padding leak into real tokens? Checks per model, precision and provider.

    Exit 0 when every error-level check passes, 1 when one fails, 2 on bad input.
    One line per check; details for failures and warnings (-v: for every check).
    Checks are listed below; reference_drift compares each run with the fp32 CPU run.

    \b
    Examples:
      padlens audit out/minilm                           # every precision of an export
      padlens audit model.onnx --tokenizer tok/ --junit audit.xml
      padlens audit out/minilm --provider cpu --provider cuda --json audit.json
      padlens audit model.int8.onnx --tolerance padding_invariance=0.999
    """
    from padlens.inspector.audit.run import audit_with
    from padlens.inspector.audit.tolerances import parse_tolerances

    overrides = parse_tolerances(tolerances)
    with progress_bar(ctx, len(models) * len(options.providers), "runs") as progress:
        result = audit_with(models, options, texts, tolerances=overrides, progress=progress)
    render(result, verbose=bool((ctx.obj or {}).get("verbose")))
    if outputs.html:
        from padlens.inspector.report.html import write_html

        write_html(outputs.html, audit_result=result, title="padlens audit")
    outputs.write_json(result.to_dict())
    outputs.write_junit(result.to_junit())
    return 0 if result.passed else 1


COMMANDS = [audit_command]
