"""inspect(): run encoders side by side on the same padded batches and measure their pads."""
from __future__ import annotations

import itertools
import time
from typing import Callable, Iterable, Iterator, Sequence

from padlens.errors import BadInput, Param
from padlens.inspector.inputs.options import EngineOptions, RunOptions
from padlens.inspector.inputs.resolve import resolve_models
from padlens.inspector.inputs.texts import batches_of, default_corpus, iter_texts, read_texts
from padlens.inspector.results import (  # noqa: F401  (the results are imported from here too)
    Fault,
    InspectResult,
    InspectSettings,
    LayerMetrics,
    PoolingDamage,
    RunResult,
)
from padlens.inspector.stats import measures
from padlens.inspector.steps import (  # noqa: F401  (the public steps, re-exported with their constants)
    DEFAULT_MAX_LENGTH,
    MAX_FAULTS,
    SIMILARITY_TEXTS,
    VERIFY_ROWS,
    Run,
    choose_max_length,
    finish,
    measure,
    measure_chunk,
    new_run,
    open_encoders,
    plan_batches,
    resolve_side,
    settle,
    tokenizer_groups,
)

ATTENTION_FIELDS = tuple(f"attn_{name}" for name in measures.ATTENTION_METRICS)
STATS = ("graph", "numpy")  # where the pad statistics are computed (``inspect(stats=...)``)


def check_stats(stats: str) -> None:
    """BadInput unless ``stats`` is one of STATS."""
    if stats not in STATS:
        raise BadInput(f"stats must be one of {', '.join(STATS)}, got {stats!r}")


# ---------------------------------------------------------------- texts

def text_source(texts: Iterable[str] | None, texts_file: str | None,
                text_column: str | None = None) -> Iterator[str]:
    """The texts to measure, streamed: ``texts`` first, then the file's; by default the corpus.

    A file (or an iterator passed as ``texts``) is read lazily, never held whole; blank
    texts are skipped. An empty list of texts is a BadInput, not the corpus.
    """
    if isinstance(texts, (list, tuple)):
        if not texts and texts_file is None:
            raise BadInput("no texts given")
        texts = read_texts(list(texts), None) if texts else []
    if texts_file is not None:
        return itertools.chain(texts or [], iter_texts(texts_file, text_column))  # checks the file exists now
    if texts is None:
        return iter(default_corpus())
    return (t for t in texts if t.strip())


def _first_chunk(chunks: Iterator[list[str]], texts_file: str | None) -> list[str]:
    first = next(chunks, None)
    if first is None:
        raise BadInput(f"no texts: {texts_file} is empty" if texts_file else "no texts given")
    return first


# ---------------------------------------------------------------- runs

def _stream(runs: list[Run], chunks: Iterable[list[str]], length: int, padding: str, side: str,
            progress: Callable[[int], None] | None) -> tuple[int, float]:
    """Feed every chunk, tokenized once per tokenizer, to every run: (texts done, seconds tokenizing).
    Each batch's sums are added on the metrics thread while the next batch runs (``measure``'s ``defer``)."""
    count, tokenize_s = 0, 0.0
    for index, chunk in enumerate(chunks):
        tokenize_s += measure_chunk(runs, chunk, length, padding, side, first=index == 0, defer=True)
        count += len(chunk)
        if progress is not None:
            progress(count)
    for run in runs:
        settle(run)
    return count, tokenize_s


def inspect(
    models: list[str],
    texts: list[str] | Iterable[str] | None = None,
    *,
    texts_file: str | None = None,
    text_column: str | None = None,
    tokenizer: str | None = None,
    max_length: int | None = None,
    padding: str = "max_length",
    padding_side: str = "auto",
    batch_size: int = 32,
    providers: Sequence[str] = ("cpu",),
    threads: int | None = None,
    allow_fallback: bool = False,
    layers: list[str] | None = None,
    engine: str = "local",
    ray_address: str | None = None,
    workers: int | None = None,
    progress_bars: bool = False,
    stats: str = "graph",
    progress: Callable[[int], None] | None = None,
) -> InspectResult:
    """Measure what the pad positions of each model hold, every model on the same batches.

    Every (model file × provider) is a run. Texts stream from ``texts`` then ``texts_file``
    (or the bundled corpus) in batches of ``batch_size``; each batch is tokenized once per
    tokenizer and fed to every run, so memory does not grow with the number of texts.
    ``max_length`` None means 128, or fewer when a model has fewer position embeddings.
    ``padding_side`` ``auto``: the tokenizer config's, else left for a causal model, else right.
    ``progress`` is called with the number of texts done after each batch.
    ``stats``: ``graph`` computes the pad statistics inside the ONNX Runtime session where the
    graph allows it (``padlens.inspector.stats.ingraph``; else numpy, with the reason in the run's
    ``encoder.stats``), ``numpy`` from the copied-out states (the float64 reference path).
    ``text_column`` names the Parquet/CSV column or JSONL field holding the texts.
    ``engine="ray"`` measures on Ray Data actors (``ray_address``: None starts a local Ray,
    "auto" joins a cluster; ``workers``; ``progress_bars``: Ray's own) with the same result.
    Every option after ``texts`` is a keyword, the shared ones in the same order as ``embed``, ``probe``
    and ``audit``. They are checked once, into one frozen ``RunOptions`` (holding ``EngineOptions``)
    that travels whole to the Ray actors (``run_inspect`` takes one).
    """
    engine_options = EngineOptions(engine, ray_address, workers, progress_bars)
    options = RunOptions(max_length=max_length, padding=padding, padding_side=padding_side, batch_size=batch_size,
                         providers=providers, threads=threads, allow_fallback=allow_fallback, tokenizer=tokenizer,
                         texts_file=texts_file, text_column=text_column, layers=layers, engine=engine_options)
    return run_inspect(models, options, texts, stats=stats, progress=progress)


def run_inspect(models: list[str], options: RunOptions, texts: list[str] | Iterable[str] | None = None,
                stats: str = "graph", progress: Callable[[int], None] | None = None) -> InspectResult:
    """``inspect()`` with its options already checked (``RunOptions``), in this process or on Ray
    (``options.engine``)."""
    check_stats(stats)
    if options.engine.on_ray:
        from padlens.inspector.ray.inspect_job import inspect_ray

        if texts is not None:
            raise BadInput(Param("engine", "ray"), " reads a corpus: pass ", Param("texts_file", meta="FILE"),
                           ", FOLDER or GLOB, not ", Param("texts"))
        return inspect_ray(models, options, stats=stats, progress=progress)
    return inspect_with(models, options, texts, stats=stats, progress=progress)


def inspect_with(models: list[str], options: RunOptions, texts: list[str] | Iterable[str] | None = None,
                 stats: str = "graph", progress: Callable[[int], None] | None = None) -> InspectResult:
    """``inspect()`` in this process with its options already checked (``RunOptions``)."""
    started = time.perf_counter()
    check_stats(stats)
    chunks = batches_of(text_source(texts, options.texts_file, options.text_column), options.batch_size)
    first = _first_chunk(chunks, options.texts_file)
    opened = open_encoders(resolve_models(models, options.tokenizer), options.providers,
                           {**options.encoder_options, "stats": stats == "graph"})
    length, side, side_source = plan_batches(options.max_length, options.padding_side,
                                             [enc for _, _, enc, _ in opened], options.batch_size)
    runs = [new_run(*item, length, side, options.padding) for item in opened]
    count, tokenize_s = _stream(runs, itertools.chain([first], chunks), length, options.padding, side, progress)
    settings = InspectSettings.of(options, stats, side_source, timings={
        "tokenize": round(tokenize_s, 4), "total": round(time.perf_counter() - started, 4)})
    return InspectResult([finish(run) for run in runs], count, length, side, settings)
