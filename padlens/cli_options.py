"""Options every command shares: the input options (``run_options``), ``--json/--html/--junit`` targets and the
progress bar. (The library's errors name their parameters as data; ``cli.flag_namer`` says them as flags.)"""
from __future__ import annotations

import contextlib
import functools
import json as jsonlib
import logging
from dataclasses import dataclass
from typing import Callable, Iterator

import click

from padlens.errors import BadInput
from padlens.fsio import atomic_write, check_file_target

log = logging.getLogger(__name__)

PAD_TO = {"max-length": "max_length", "longest": "longest"}
"""``--pad-to`` values and the library's ``padding`` names."""

_HELP = {
    "json": "Also write the results as JSON to FILE.",
    "html": "Also write a self-contained HTML report with plots to FILE (needs padlens[report]).",
    "junit": "Also write JUnit XML (one testcase per check) to FILE.",
}


@dataclass(frozen=True)
class OutputTargets:
    """Where a command writes its results besides the terminal (None: not asked for).

    Attributes:
        json: the ``--json`` file.
        html: the ``--html`` file.
        junit: the ``--junit`` file.
    """

    json: str | None = None
    html: str | None = None
    junit: str | None = None

    def check(self) -> None:
        """Refuse a target that cannot be written, and a missing report extra, before any work."""
        for option in ("json", "html", "junit"):
            path = getattr(self, option)
            if path is not None:
                check_file_target(path, f"--{option}")
        if self.html is not None:
            from padlens.inspector.report.html import check_available

            check_available()

    def write_json(self, doc: dict) -> None:
        """Write ``doc`` to the ``--json`` file, atomically (nothing when not asked)."""
        if self.json is not None:
            atomic_write(self.json, jsonlib.dumps(doc, indent=2, allow_nan=False) + "\n")
            log.info("wrote %s", self.json)

    def write_junit(self, xml: str) -> None:
        """Write ``xml`` to the ``--junit`` file, atomically (nothing when not asked)."""
        if self.junit is not None:
            atomic_write(self.junit, xml)
            log.info("wrote %s", self.junit)


def output_options(json: bool = True, html: bool = True, junit: bool = False) -> Callable:
    """Add the chosen ``--json/--html/--junit FILE`` options to a command.

    The command receives one ``outputs: OutputTargets`` argument, already checked
    (every target writable, the report extra present for ``--html``) before it runs.
    """
    chosen = [name for name, wanted in (("json", json), ("html", html), ("junit", junit)) if wanted]

    def decorate(func: Callable) -> Callable:
        @functools.wraps(func)
        def command(*args, **kwargs):
            outputs = OutputTargets(**{name: kwargs.pop(f"{name}_file", None) for name in chosen})
            outputs.check()
            return func(*args, outputs=outputs, **kwargs)

        for name in reversed(chosen):
            command = click.option(f"--{name}", f"{name}_file", metavar="FILE", help=_HELP[name])(command)
        return command

    return decorate


#: the input options a corpus command (``run_options(corpus=True)``: embed) leaves out: its texts come
#: from one file and its batches are padded to their longest text, on the right
NOT_FOR_CORPUS = ("texts", "padding_side", "pad_to", "layers")


def _input_options(one_model: bool = False, corpus: bool = False) -> list:
    """MODEL... (or one MODEL) and the options that say what to feed it and how to run it."""
    options = {
        "models": click.argument("model", metavar="MODEL") if one_model else
        click.argument("models", metavar="MODEL...", nargs=-1, required=True),
        "tokenizer": click.option(
            "--tokenizer", metavar="PATH",
            help="Tokenizer folder or tokenizer.json (needed for a bare .onnx; an export dir brings its own)."),
        "texts": click.option("--text", "texts", metavar="T", multiple=True, help="A text to feed (repeatable)."),
        "texts_file": click.option(
            "--texts", "texts_file", metavar="FILE", required=corpus,
            help="Texts file: .txt one per line, .jsonl with a 'text' field, .csv or .parquet with a "
                 "'text' column; or a folder or glob of them. Default: the sample corpus shipped with padlens."),
        "max_length": click.option(
            "--max-length", type=int, metavar="N",
            help="Truncate to N tokens and, with --pad-to max-length, pad to N. "
                 "[default: 128, or the model's position embeddings if fewer]"),
        "padding_side": click.option(
            "--padding-side", type=click.Choice(["auto", "right", "left"]), default="auto", show_default=True,
            help="Where pads go. auto: the tokenizer config's padding_side, else left for a causal "
                 "(decoder) model, else right; the side used is reported."),
        "pad_to": click.option("--pad-to", type=click.Choice(list(PAD_TO)), default="max-length", show_default=True,
                               help="Pad every batch to --max-length, or to its longest text."),
        "providers": click.option(
            "--provider", "providers", metavar="NAME", multiple=True, default=("cpu",), show_default=True,
            help="ONNX Runtime execution provider: cpu, cuda, tensorrt or a full ORT name (repeatable)."),
        "allow_fallback": click.option("--allow-fallback", is_flag=True,
                                       help="Warn, instead of failing, when ONNX Runtime drops a provider asked for."),
        "layers": click.option(
            "--layers", metavar="NAME,NAME",
            help="Name the hidden-state tensors yourself (embedding output first) when they cannot be located."),
        "batch_size": click.option("--batch-size", type=int, default=32, show_default=True, metavar="N"),
        "threads": click.option("--threads", type=int, metavar="N", help="ONNX Runtime intra-op threads (default: ORT's)."),
    }
    return [option for name, option in options.items() if not (corpus and name in NOT_FOR_CORPUS)]


def parse_layers(layers: str | None) -> list[str] | None:
    """``--layers a,b,c`` as a list of tensor names (None when not given)."""
    if layers is None:
        return None
    names = [n.strip() for n in layers.split(",")]
    if not all(names):
        raise BadInput(f"--layers needs comma-separated tensor names, got {layers!r}")
    return names


def run_options(func: Callable | None = None, *, one_model: bool = False, corpus: bool = False) -> Callable:
    """MODEL... and the input options inspect, audit, probe and embed share, as ONE ``RunOptions``.

    The command receives ``models`` (a list), ``texts`` (the ``--text`` values, or None) and
    ``options``: a ``padlens.inspector.inputs.options.RunOptions``, checked once when it is built
    (``--text-column`` and the engine options, where a command has them (``cli_inspect.engine_options``),
    are read into it: ``options.engine``, Ray's progress bars unless ``-q``).
    ``one_model``: one MODEL, received as ``model``. ``corpus`` (embed): the texts come from a required
    ``--texts FILE`` and batches are padded to their longest text on the right, so the options in
    ``NOT_FOR_CORPUS`` are left out and no ``texts`` is passed. ``@run_options`` or ``@run_options(...)``.
    """
    if func is None:
        return functools.partial(run_options, one_model=one_model, corpus=corpus)

    @functools.wraps(func)
    def command(*args, tokenizer, texts_file, max_length, providers, allow_fallback, batch_size, threads, **kwargs):
        from padlens.inspector.inputs.options import LOCAL, EngineOptions, RunOptions

        given = {name: kwargs.pop(name, None) for name in NOT_FOR_CORPUS}
        engine = kwargs.pop("engine", None)
        engine = LOCAL if engine is None else EngineOptions(
            engine, kwargs.pop("ray_address", None), kwargs.pop("workers", None),
            progress_bars=engine == "ray" and not is_quiet(click.get_current_context(silent=True)))
        padding = ("longest", "right") if corpus else (PAD_TO[given["pad_to"]], given["padding_side"])
        options = RunOptions(max_length=max_length, padding=padding[0], padding_side=padding[1],
                             batch_size=batch_size, providers=tuple(providers) or ("cpu",), threads=threads,
                             allow_fallback=allow_fallback, tokenizer=tokenizer, texts_file=texts_file,
                             text_column=kwargs.pop("text_column", None), layers=parse_layers(given["layers"]),
                             engine=engine)
        if not one_model:
            kwargs["models"] = list(kwargs["models"])
        if not corpus:
            kwargs["texts"] = list(given["texts"]) or None
        return func(*args, options=options, **kwargs)

    for option in reversed(_input_options(one_model, corpus)):
        command = option(command)
    return command


def retune(meanings: dict[str, dict]) -> Callable[[click.Command], click.Command]:
    """A command decorator giving the shared options a command's own meaning: ``meanings`` maps a
    parameter's name to the attributes (help, default, show_default ...) set on it."""
    def decorate(command: click.Command) -> click.Command:
        for param in command.params:
            for attr, value in meanings.get(param.name, {}).items():
                setattr(param, attr, value)
        return command

    return decorate


def is_quiet(ctx: click.Context | None) -> bool:
    """True under ``padlens -q``."""
    return bool(ctx is not None and (ctx.obj or {}).get("quiet"))


@contextlib.contextmanager
def progress_bar(ctx: click.Context | None, total: int | None = None,
                 unit: str = "texts") -> Iterator[Callable[[int], None] | None]:
    """The library's ``progress`` callback as a tqdm bar on stderr: None with ``-q`` or
    without a terminal; the bar is cleared when the block ends, whatever happens in it."""
    from padlens import progress

    with progress.progress_bar(is_quiet(ctx), total, unit) as bar:
        yield bar


def count_texts_or_none(texts_file: str | None) -> int | None:
    """The number of texts in ``texts_file`` for a bar's total (None when unknown or unreadable:
    the command reports a bad file itself)."""
    if texts_file is None:
        return None
    from padlens.inspector.inputs.texts import count_texts

    try:
        return count_texts(texts_file)
    except BadInput:
        return None
