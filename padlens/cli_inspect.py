"""`padlens inspect`, and the input options audit and embed reuse (`input_options`)."""
from __future__ import annotations

import logging
from typing import Callable

import click

from padlens.cli_options import OutputTargets, count_texts_or_none, output_options, progress_bar
from padlens.errors import BadInput
from padlens.fsio import check_file_target
from padlens.inspector.options import check_counts  # noqa: F401  (the audit command imports it from here)

log = logging.getLogger(__name__)

PAD_TO = {"max-length": "max_length", "longest": "longest"}


def input_options(func: Callable) -> Callable:
    """MODEL... and the options that say what to feed it: shared by inspect, audit and embed.

    Pair with ``input_kwargs(**options)`` to get the library's keyword arguments.
    """
    options = [
        click.argument("models", metavar="MODEL...", nargs=-1, required=True),
        click.option("--tokenizer", metavar="PATH",
                     help="Tokenizer folder or tokenizer.json (needed for a bare .onnx; an export dir brings its own)."),
        click.option("--text", "texts", metavar="T", multiple=True, help="A text to feed (repeatable)."),
        click.option("--texts", "texts_file", metavar="FILE",
                     help="Texts file: .txt one per line, .jsonl with a 'text' field, .csv with a 'text' "
                          "column. Default: the sample corpus shipped with padlens."),
        click.option("--max-length", type=int, metavar="N",
                     help="Truncate to N tokens and, with --pad-to max-length, pad to N. "
                          "[default: 128, or the model's position embeddings if fewer]"),
        click.option("--padding-side", type=click.Choice(["auto", "right", "left"]), default="auto", show_default=True,
                     help="Where pads go. auto: the tokenizer config's padding_side, else left for a causal "
                          "(decoder) model, else right; the side used is reported."),
        click.option("--pad-to", type=click.Choice(list(PAD_TO)), default="max-length", show_default=True,
                     help="Pad every batch to --max-length, or to its longest text."),
        click.option("--provider", "providers", metavar="NAME", multiple=True, default=("cpu",), show_default=True,
                     help="ONNX Runtime execution provider: cpu, cuda, tensorrt or a full ORT name (repeatable)."),
        click.option("--allow-fallback", is_flag=True,
                     help="Warn, instead of failing, when ONNX Runtime drops a provider asked for."),
        click.option("--layers", metavar="NAME,NAME",
                     help="Name the hidden-state tensors yourself (embedding output first) when they cannot be located."),
        click.option("--batch-size", type=int, default=32, show_default=True, metavar="N"),
        click.option("--threads", type=int, metavar="N", help="ONNX Runtime intra-op threads (default: ORT's)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def input_kwargs(models, tokenizer, texts, texts_file, max_length, padding_side, pad_to, providers,
                 allow_fallback, layers, batch_size, threads) -> dict:
    """Turn ``input_options`` values into the keyword arguments of ``inspect()`` and friends."""
    check_counts(max_length=max_length, batch_size=batch_size, threads=threads)
    names = None
    if layers is not None:
        names = [n.strip() for n in layers.split(",")]
        if not all(names):
            raise BadInput(f"--layers needs comma-separated tensor names, got {layers!r}")
    return {"models": list(models), "texts": list(texts) or None, "texts_file": texts_file,
            "tokenizer": tokenizer, "max_length": max_length, "padding": PAD_TO[pad_to],
            "padding_side": padding_side, "providers": tuple(providers) or ("cpu",),
            "allow_fallback": allow_fallback, "batch_size": batch_size, "layers": names, "threads": threads}


def check_output_file(path: str | None, option: str = "--json") -> None:
    """Refuse an output path that cannot be written before any work is done.

    The message names the ``option`` the path came from, e.g. ``--json x: folder … does not exist``.
    """
    if path is not None:
        check_file_target(path, option)


@click.command("inspect")
@input_options
@click.option("--stats", type=click.Choice(["graph", "numpy"]), default="graph", show_default=True,
              help="Where the pad statistics are computed: graph (reductions added to the ONNX graph, only "
                   "small tensors leave ONNX Runtime) or numpy (float64 from the copied-out states, the reference).")
@output_options(json=True, html=True, junit=False)
@click.pass_context
def inspect_cmd(ctx: click.Context, outputs: OutputTargets, stats: str, **options) -> None:
    """Show what the [PAD] positions of each MODEL hold, layer by layer.

    MODEL is a padlens export dir (every precision in it) or any .onnx encoder. Several
    MODELs, precisions and --provider values run on the same batches and show side by side.

    \b
    Examples:
      padlens inspect out/minilm --text "this is a sample sentence"
      padlens inspect model.onnx --tokenizer tok/ --texts corpus.jsonl --json pads.json
      padlens inspect out/minilm --provider cpu --provider cuda --padding-side left
    """
    from padlens.inspector.inspect import inspect
    from padlens.inspector.table import render
    from padlens.timings import log_timings

    kwargs = input_kwargs(**options)
    with progress_bar(ctx, count_texts_or_none(kwargs["texts_file"])) as progress:
        result = inspect(**kwargs, progress=progress, stats=stats)
    log_timings(result)
    if outputs.html:
        from padlens.inspector.report import write_html

        write_html(outputs.html, inspect_result=result, title="padlens inspect")
    outputs.write_json(result.to_dict())
    click.echo(render(result), nl=False)


COMMANDS = [inspect_cmd]
