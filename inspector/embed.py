"""`padlens embed`: sentence embeddings from any ONNX encoder, streamed to a .npy, no PyTorch."""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np

from padlens.errors import BadInput, Param
from padlens.fsio import atomic_path
from padlens.inspector.inputs.lengths import choose_max_length
from padlens.inspector.inputs.options import EngineOptions, RunOptions
from padlens.inspector.inputs.texts import batches_of
from padlens.inspector.report.jsonable import to_jsonable
from padlens.inspector.runtime.embed_model import EmbedModel, pick_ref
from padlens.inspector.stats.pooling import SENTENCE_EMBEDDING, PoolingConfig, resolve_pooling

if TYPE_CHECKING:
    from padlens.inspector.inputs.tokenize import Batch

log = logging.getLogger(__name__)

#: embed's length when none is asked for and neither the model's folder nor its tokenizer says
FALLBACK_MAX_LENGTH = 512
#: embed tokenizes this many batches of texts at once and sorts them by length (its window)
WINDOW_BATCHES = 64


@dataclass
class EmbedResult:
    """What `embed` wrote.

    Attributes:
        path: the .npy file (float32 [rows, dim]).
        rows: number of texts embedded.
        dim: embedding width.
        model: the model's label.
        pooling: the pooling used.
        normalize: whether rows are L2-normalised.
        pooling_source: where the pooling came from.
        max_length: tokens kept per text.
        tokens: real tokens of every text (special tokens included; after truncation).
        tokens_fed: tokens fed to the model, pads included (batches are padded to their longest).
        normalize_source: where ``normalize`` came from (a modules.json, ``manifest``,
            ``default`` or ``option``), independently of the pooling's source.
    """

    path: Path
    rows: int
    dim: int
    model: str
    pooling: str
    normalize: bool
    pooling_source: str
    max_length: int
    tokens: int | None = None
    tokens_fed: int | None = None
    normalize_source: str = ""

    def to_dict(self) -> dict:
        """Plain JSON values (the path as a string)."""
        return to_jsonable(self)


# --------------------------------------------------------------------------- the model


def pooling_for(ref, runner: EmbedModel, pooling: str, normalize: bool | None) -> PoolingConfig:
    """How to pool ``runner``'s output (``resolve_pooling``): under ``auto``, a graph that pools
    by itself has its ``sentence_embedding`` used as it is (``normalize`` still applies)."""
    if runner.pooled:
        log.info("%s: the graph outputs %s already pooled: using it as it is", runner.label, SENTENCE_EMBEDDING)
    return resolve_pooling(ref.path, ref.manifest, pooling, normalize, graph_pooled=runner.pooled)


def embed_length(limit: int | None, config: PoolingConfig, runner: EmbedModel) -> int:
    """``--max-length``, else the model's own: its folder's max_seq_length, its tokenizer's
    model_max_length, else FALLBACK_MAX_LENGTH; always within its position embeddings."""
    own = next((int(c) for c in (config.max_length, runner.tokenizer.model_max_length) if c),
               FALLBACK_MAX_LENGTH)
    return choose_max_length(limit, [runner], default=own)


# --------------------------------------------------------------------------- streaming


def _take_rows(window: Batch, rows: np.ndarray) -> Batch:
    """Rows ``rows`` of a right-padded ``window``, cut to the longest of them."""
    width = max(int(window.lengths[rows].max()), 1)
    cut = {name: getattr(window, name)[rows, :width] for name in
           ("input_ids", "attention_mask", "token_type_ids", "position_ids", "special_tokens_mask")}
    return replace(window, lengths=window.lengths[rows], **cut)


def sorted_batches(window: Batch, batch_size: int) -> Iterator[tuple[np.ndarray, Batch]]:
    """The window's rows longest first, ``batch_size`` at a time, each batch padded only to its
    own longest row; with the window positions of its rows (to write them back in input order)."""
    order = np.argsort(-window.lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        yield rows, _take_rows(window, rows)


def _embed_batch(runner: EmbedModel, batch: Batch, config: PoolingConfig) -> np.ndarray:
    return runner.embed(batch, config.mode, config.normalize)


def _write_rows(runner: EmbedModel, texts_file, tmp: Path, total: int, config: PoolingConfig,
                max_length: int, batch_size: int, progress=None,
                text_column: str | None = None) -> tuple[int, int, int]:
    """Embed the texts of ``texts_file`` into a memory-mapped .npy at ``tmp``: (dim, real tokens,
    tokens fed). A window of WINDOW_BATCHES batches is tokenized at once and run in batches of
    similar length (little padding); rows go back to their input positions."""
    from numpy.lib.format import open_memmap

    from padlens.inspector.inputs.texts import iter_texts

    out, done, real, fed = None, 0, 0, 0
    for chunk in batches_of(iter_texts(texts_file, text_column), batch_size * WINDOW_BATCHES):
        if done + len(chunk) > total:
            raise BadInput(f"{texts_file} changed while it was read (more than {total} texts)")
        window = runner.tokenizer.encode(chunk, max_length=max_length, padding="longest", side="right")
        written = 0
        for rows, batch in sorted_batches(window, batch_size):
            emb = _embed_batch(runner, batch, config)
            if out is None:
                out = open_memmap(tmp, mode="w+", dtype=np.float32, shape=(total, emb.shape[1]))
            out[done + rows] = emb
            real, fed, written = real + int(batch.lengths.sum()), fed + batch.input_ids.size, written + len(rows)
            if progress is not None:
                progress(done + written)
        done += len(chunk)
    if out is None or done != total:
        raise BadInput(f"{texts_file} changed while it was read ({done} of {total} texts)")
    dim = int(out.shape[1])
    out.flush()
    del out
    return dim, real, fed


def embed(model, texts_file, out, *, text_column: str | None = None, tokenizer: str | None = None,
          max_length: int | None = None, batch_size: int = 32, providers: Sequence[str] = ("cpu",),
          threads: int | None = None, allow_fallback: bool = False, engine: str = "local",
          ray_address: str | None = None, workers: int | None = None, progress_bars: bool = False,
          pooling: str = "auto", normalize: bool | None = None, keep_text: bool = False,
          progress=None) -> EmbedResult:
    """Embed every text of ``texts_file`` with ``model`` into ``out`` (float32 .npy, one row per text).

    Streams: a counting pass sizes a memory-mapped .npy beside ``out``, then windows of
    ``batch_size`` × WINDOW_BATCHES texts are tokenized, sorted by length, run in batches of
    ``batch_size`` padded to their own longest text, and written back at their input
    positions; the file is renamed onto ``out`` only when complete. Memory holds one window's
    token ids and one batch's states, whatever the file's size. ``progress`` is called with the
    number of texts written after each batch. ``text_column`` names the Parquet/CSV column
    or JSONL field. ``engine="ray"`` embeds on Ray Data actors (the same vectors): ``out``
    ending in .npy is gathered as here, anything else becomes a Parquet dataset folder
    (``keep_text`` adds the texts); see ``padlens.inspector.ray.embed_job``. Every option after
    ``out`` is a keyword, the shared ones in the same order as ``inspect``, ``probe`` and ``audit``;
    they are checked once, into one frozen ``RunOptions`` (``embed_with`` takes one).
    """
    options = RunOptions(max_length=max_length, padding="longest", padding_side="right", batch_size=batch_size,
                         providers=providers, threads=threads, allow_fallback=allow_fallback, tokenizer=tokenizer,
                         texts_file=str(texts_file), text_column=text_column,
                         engine=EngineOptions(engine, ray_address, workers, progress_bars))
    return embed_with(model, options, out, pooling, normalize, keep_text=keep_text, progress=progress)


def embed_with(model, options: RunOptions, out, pooling: str = "auto", normalize: bool | None = None,
               keep_text: bool = False, progress=None) -> EmbedResult:
    """``embed()`` with its options already checked (``RunOptions``: the texts file and column, tokenizer,
    lengths, providers, engine), in this process or on Ray."""
    from padlens.inspector.inputs.resolve import resolve_models
    from padlens.inspector.inputs.texts import count_texts

    if options.engine.on_ray:
        from padlens.inspector.ray.embed_job import embed_ray

        return embed_ray(model, options, out, pooling, normalize, keep_text=keep_text, progress=progress)
    if keep_text:
        raise BadInput(Param("keep_text"), " needs ", Param("engine", "ray"), " (it writes a Parquet dataset)")
    texts_file, text_column = options.texts_file, options.text_column
    ref = pick_ref(resolve_models([model], options.tokenizer))
    total = count_texts(texts_file, text_column)
    if total == 0:
        raise BadInput(f"no texts: {texts_file} is empty")
    from padlens.inspector.runtime.session import SessionOptions

    runner = EmbedModel(ref, SessionOptions.of(options), graph_pooling=pooling == "auto")
    config = pooling_for(ref, runner, pooling, normalize)
    limit = embed_length(options.max_length, config, runner)
    log.info("%s: %d texts, %s pooling (%s), normalize %s, max length %d", ref.label, total,
             config.mode, config.source, config.normalize, limit)
    with atomic_path(out) as tmp:
        dim, real, fed = _write_rows(runner, texts_file, tmp, total, config, limit, options.batch_size, progress,
                                     text_column)
    log.info("%s: fed %d tokens for %d real ones (%.3f×; batches sorted by length within windows of %d texts)",
             ref.label, fed, real, fed / max(real, 1), options.batch_size * WINDOW_BATCHES)
    return EmbedResult(Path(out), total, dim, ref.label, config.mode, config.normalize,
                       config.source, limit, real, fed, config.normalize_source)
