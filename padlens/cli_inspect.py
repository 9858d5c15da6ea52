"""`padlens inspect`, and the input options audit and embed reuse (`input_options`)."""
from __future__ import annotations

import contextlib
import logging
from typing import Callable, Iterator

import click

from padlens.cli_options import OutputTargets, count_texts_or_none, output_options, progress_bar
from padlens.errors import BadInput
from padlens.fsio import check_file_target
from padlens.inspector.inputs.options import check_counts  # noqa: F401  (the audit command imports it from here)

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
                     help="Texts file: .txt one per line, .jsonl with a 'text' field, .csv or .parquet with a "
                          "'text' column; or a folder or glob of them. Default: the sample corpus shipped "
                          "with padlens."),
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


ENGINE_KEYS = ("engine", "ray_address", "workers", "text_column")


def engine_options(func: Callable) -> Callable:
    """``--engine``, ``--ray-address``, ``--workers`` and ``--text-column``: where inspect and
    embed run, and which column holds the texts. Pair with ``engine_kwargs``."""
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


def engine_kwargs(ctx: click.Context, engine: str, ray_address: str | None, workers: int | None,
                  text_column: str | None) -> dict:
    """The library's keyword arguments for ``engine_options`` (Ray's progress bars unless -q)."""
    from padlens.cli_options import is_quiet
    from padlens.inspector.ray import check_engine

    check_engine(engine, ray_address, workers)
    return {"engine": engine, "ray_address": ray_address, "workers": workers, "text_column": text_column,
            "progress_bars": engine == "ray" and not is_quiet(ctx)}


@contextlib.contextmanager
def engine_progress(ctx: click.Context, engine: dict, texts_file: str | None) -> Iterator:
    """The tqdm bar in-process; with --engine ray, Ray Data draws its own (no callback)."""
    if engine["engine"] == "ray":
        yield None
        return
    with progress_bar(ctx, count_texts_or_none(texts_file)) as progress:
        yield progress


def check_output_file(path: str | None, option: str = "--json") -> None:
    """Refuse an output path that cannot be written before any work is done.

    The message names the ``option`` the path came from, e.g. ``--json x: folder … does not exist``.
    """
    if path is not None:
        check_file_target(path, option)


@click.command("inspect")
@input_options
@engine_options
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
      padlens inspect out/minilm --texts corpus.parquet --engine ray --json pads.json
      padlens inspect out/minilm --texts 'shards/*.jsonl' --engine ray --ray-address auto --workers 8
    """
    from padlens.inspector.inspect import inspect
    from padlens.inspector.report.table import render
    from padlens.timings import log_timings

    engine = engine_kwargs(ctx, **{key: options.pop(key) for key in ENGINE_KEYS})
    kwargs = input_kwargs(**options)
    with engine_progress(ctx, engine, kwargs["texts_file"]) as progress:
        result = inspect(**kwargs, **engine, progress=progress, stats=stats)
    log_timings(result)
    if outputs.html:
        from padlens.inspector.report.html import write_html

        write_html(outputs.html, inspect_result=result, title="padlens inspect")
    outputs.write_json(result.to_dict())
    click.echo(render(result), nl=False)


COMMANDS = [inspect_cmd]
