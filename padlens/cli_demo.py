"""The `padlens demo` command."""
from __future__ import annotations

import click

from padlens.cli_options import is_quiet


@click.command("demo")
@click.option("-o", "--output", "out_dir", default="padlens-demo", show_default=True,
              type=click.Path(file_okay=False), help="Folder for the export, JSON and report.")
@click.option("--force", is_flag=True, help="Export again even if an earlier demo export is there.")
@click.pass_context
def demo(ctx: click.Context, out_dir: str, force: bool) -> None:
    """The whole job on the embedded default model (all-MiniLM-L6-v2, offline).

    \b
    Exports minilm-l6 in fp32, fp16, int8-dynamic and int8-static with every layer
    exposed, inspects the pad states of "this is a sample sentence" padded to 128,
    audits the four precisions for padding leaks, writes a report, and probes what one
    pad state of the fp32 model reveals per layer (needs scikit-learn).

    \b
    Example:
      padlens demo -o padlens-demo
    """
    from padlens.demo import QUESTION_TEXT, run_demo

    quiet = is_quiet(ctx)
    say = (lambda m: None) if quiet else (lambda m: click.echo(m, err=True))
    result = run_demo(out_dir, force=force, say=say, progress=not quiet)
    if result.question is not None:
        from padlens.inspector.report.table import render as render_table

        click.echo(f'What the pads of "{QUESTION_TEXT}" hold, padded to 128:')
        click.echo(render_table(result.question))
    if result.audit is not None:
        from padlens.cli_audit import render as render_audit

        click.echo("Does padding leak into real tokens? (padlens audit)")
        render_audit(result.audit)
    if getattr(result, "probe", None) is not None:
        from padlens.inspector.probe.table import summary

        click.echo("What does one pad state reveal? (padlens probe, fp32: score (control) per layer)")
        for line in summary(result.probe.runs[0]):
            click.echo(line)
        click.echo("")
    click.echo(f"padlens demo wrote {result.out_dir}/")
    for path in result.files:
        click.echo(f"  {path}")


COMMANDS = [demo]
