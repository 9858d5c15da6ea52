"""`padlens probe`: what one pad state reveals, layer by layer, against controls (thin over probe())."""
from __future__ import annotations

import click

from padlens.cli_options import OutputTargets, output_options, progress_bar, run_options
from padlens.errors import BadInput


@click.command("probe")
@run_options
@click.option("--labels", metavar="COLUMN",
              help="Also probe this column of the --texts .jsonl/.csv file (topic, language, ...).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the split, sampling and shuffles.")
@click.option("--per-text", type=int, default=4, show_default=True, metavar="N",
              help="Pad states and real-token states sampled per text.")
@click.option("--limit", type=int, metavar="N", help="Probe at most the first N texts.")
@output_options(json=True, html=True)
@click.pass_context
def probe_cmd(ctx: click.Context, labels: str | None, seed: int, per_text: int, limit: int | None,
              outputs: OutputTargets, models: list[str], texts: list[str] | None, options) -> None:
    """What can a linear probe read from ONE pad state of each MODEL, layer by layer?

    Per layer, ridge probes read the text's length, the pad's distance from the last real
    token, the text's content (its mean real-token state) and its first word from a single
    pad state, and the same from a single real token, on held-out texts. Each probe is
    compared with a control trained on shuffled targets (selectivity = score - control).
    Needs scikit-learn: pip install 'padlens[probe]'.

    \b
    Examples:
      padlens probe out/minilm
      padlens probe out/minilm --texts corpus.txt --max-length 64 --json probe.json
      padlens probe out/minilm --texts news.jsonl --labels topic --html probe.html
    """
    from padlens.inspector.probe.run import fitter, probe_with
    from padlens.inspector.probe.table import render

    for name, value in (("--per-text", per_text), ("--limit", limit)):
        if value is not None and value < 1:
            raise BadInput(f"{name} must be at least 1, got {value}")
    fitter()  # a missing scikit-learn is one Error line before any work
    with progress_bar(ctx, unit="steps") as bar:
        result = probe_with(models, options, texts, labels=labels, seed=seed, per_text=per_text, limit=limit,
                       progress=None if bar is None else _updater(bar))
    if outputs.html:
        from padlens.inspector.probe.plots import write_html

        write_html(outputs.html, result)
    outputs.write_json(result.to_dict())
    click.echo(render(result), nl=False)


def _updater(bar):
    """probe()'s ``progress(done, total)`` onto the bar (the total grows as runs open)."""

    def update(done: int, total: int) -> None:
        bar.total = total
        bar(done)

    return update


COMMANDS = [probe_cmd]
