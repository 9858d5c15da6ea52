"""`padlens inspect`, and the engine options embed reuses (`engine_options`)."""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import click

from padlens.cli_options import (
    OutputTargets,
    count_texts_or_none,
    is_quiet,
    output_options,
    progress_bar,
    run_options,
)
from padlens.fsio import check_file_target
from padlens.progress import will_draw


def engine_options(func: Callable) -> Callable:
    """``--engine``, ``--ray-address``, ``--workers`` and ``--text-column``: where inspect and
    embed run, and which column holds the texts. Under ``run_options`` they are read into the one
    ``RunOptions`` the command receives (``options.engine``, ``options.text_column``)."""
    options = [
        click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                     help="local: this process. ray: Ray Data actors on a local Ray or a cluster, "
                          "the same results (pip install 'padlens[ray]')."),
        click.option("--ray-address", metavar="ADDR",
                     help="With --engine ray: 'auto' joins the cluster this node belongs to, HOST:PORT "
                          "another. [default: start a local Ray sized to this machine]"),
        click.option("--workers", type=int, metavar="N",
                     help="With --engine ray: actors, each with one ONNX Runtime session. "
                          "[default: one per GPU with --provider cuda, else one per 4 CPUs]"),
        click.option("--text-column", metavar="NAME",
                     help="The Parquet or CSV column, or JSONL field, holding the texts. [default: text]"),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@contextlib.contextmanager
def engine_progress(ctx: click.Context, options) -> Iterator:
    """The tqdm bar in-process; with --engine ray, Ray Data draws its own (no callback)."""
    if options.engine.on_ray:
        yield None
        return
    total = count_texts_or_none(options.texts_file) if will_draw(is_quiet(ctx)) else None
    with progress_bar(ctx, total) as progress:
        yield progress


def check_output_file(path: str | None, option: str = "--json") -> None:
    """Refuse an output path that cannot be written before any work is done.

    The message names the ``option`` the path came from, e.g. ``--json x: folder … does not exist``.
    """
    if path is not None:
        check_file_target(path, option)


@click.command("inspect")
@run_options
@engine_options
@click.option("--stats", type=click.Choice(["graph", "numpy"]), default="graph", show_default=True,
              help="Where the pad statistics are computed: graph (reductions added to the ONNX graph, only "
                   "small tensors leave ONNX Runtime) or numpy (float64 from the copied-out states, the reference).")
@output_options(json=True, html=True, junit=False)
@click.pass_context
def inspect_cmd(ctx: click.Context, outputs: OutputTargets, models: list[str], texts: list[str] | None,
                options, stats: str) -> None:
    """Show what the [PAD] positions of each MODEL hold, layer by layer.

    MODEL is a padlens export dir (every precision in it) or any .onnx encoder. Several
    MODELs, precisions and --provider values run on the same batches and show side by side.

    \b
    Examples:
      padlens inspect out/minilm --text "this is a sample sentence"
      padlens inspect model.onnx --tokenizer tok/ --texts corpus.jsonl --json pads.json
      padlens inspect out/minilm --provider cpu --provider cuda --padding-side left
      padlens inspect out/minilm --texts corpus.parquet --engine ray --json pads.json
      padlens inspect out/minilm --texts 'shards/*.jsonl' --engine ray --ray-address auto --workers 8
    """
    from padlens.inspector.inspect import run_inspect
    from padlens.inspector.report.table import render
    from padlens.timings import log_timings

    with engine_progress(ctx, options) as progress:
        result = run_inspect(models, options, texts, stats=stats, progress=progress)
    log_timings(result)
    if outputs.html:
        from padlens.inspector.report.html import write_html

        write_html(outputs.html, inspect_result=result, title="padlens inspect")
    outputs.write_json(result.to_dict())
    click.echo(render(result), nl=False)


COMMANDS = [inspect_cmd]
