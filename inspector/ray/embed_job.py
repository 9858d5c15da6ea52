"""``embed(..., engine="ray")``: sentence embeddings by an actor pool, written as a Parquet dataset.

Each actor opens the model once (``runtime.embed_model.EmbedModel``); each block of texts (whole in-process
windows of ``WINDOW_BATCHES`` batches) is tokenized, sorted by length, run and pooled exactly
as in-process, so the vectors are the same bits. The output is a folder of Parquet files, one row per text: ``index`` (int64, the
text's position in the input), ``embedding`` (fixed-size list of float32) and, with
``keep_text``, ``text``. Files are named ``part-<first index>.parquet`` and hold
consecutive texts, so reading the folder with pyarrow or pandas gives input order (Ray Data
keeps it with ``preserve_order``; anything else can sort by ``index``).
A ``.npy`` target gathers the rows on the driver into a memory-mapped array instead.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from padlens.errors import BadInput, Param
from padlens.inspector.inputs.options import RunOptions

log = logging.getLogger(__name__)

META_FILE = "_padlens.json"  # readers skip files starting with "_"
ACTOR_RETRIES = 3


@dataclass(frozen=True)
class EmbedJob:
    """What every actor needs (plain, picklable values).

    Attributes:
        ref: the model.
        options: the caller's ``RunOptions``, whole: providers, allow_fallback, threads (the actor's share
            when not asked for), batch_size; batches are padded to their longest text, as in-process.
        mode, normalize: the pooling resolved on the driver. max_length: the length resolved there.
        total: texts in the corpus. keep_text: add a ``text`` column.
    """

    ref: object
    options: RunOptions
    mode: str
    normalize: bool
    max_length: int
    total: int
    keep_text: bool = False


class EmbedWorker:
    """A Ray Data actor holding one ONNX Runtime session; ``__call__`` embeds a block."""

    def __init__(self, job: EmbedJob):
        from padlens.inspector.runtime.embed_model import EmbedModel
        from padlens.inspector.runtime.session import SessionOptions
        from padlens.inspector.stats.pooling import GRAPH_POOLING

        self.job = job
        self.runner = EmbedModel(job.ref, SessionOptions.of(job.options), graph_pooling=job.mode == GRAPH_POOLING)

    def __call__(self, block: dict):
        import pyarrow as pa

        from padlens.inspector.embed import WINDOW_BATCHES
        from padlens.inspector.ray.corpus import chunk_bounds

        job = self.job
        index = np.asarray(block["index"], dtype=np.int64)
        texts = [str(t) for t in block["text"]]
        emb = None
        for lo, hi in chunk_bounds(index, job.options.batch_size * WINDOW_BATCHES, job.total):
            for rows, vectors in self._window(texts[lo:hi]):
                if emb is None:
                    emb = np.empty((len(index), vectors.shape[1]), np.float32)
                emb[lo + rows] = vectors
        columns = {"index": pa.array(index),
                   "embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb.ravel()), emb.shape[1])}
        if job.keep_text:
            columns["text"] = pa.array(texts, pa.string())
        return pa.table(columns)

    def _window(self, texts: list[str]):
        """As in-process: a window tokenized at once, run longest first in batches of batch_size,
        each padded to its own longest text; yields (rows of the window, their vectors)."""
        from padlens.inspector.embed import sorted_batches

        job = self.job
        window = self.runner.tokenizer.encode(texts, max_length=job.max_length, padding="longest", side="right")
        for rows, batch in sorted_batches(window, job.options.batch_size):
            yield rows, self.runner.embed(batch, job.mode, job.normalize).astype(np.float32)


def embed_ray(model, options: RunOptions, out, pooling: str = "auto", normalize: bool | None = None,
              keep_text: bool = False, progress: Callable[[int], None] | None = None):
    """``embed()`` on Ray Data, ``options`` checked once by the caller (``RunOptions``, its ``engine`` says
    where) and passed whole to every actor. ``out`` ending in ``.npy``: the same array as in-process;
    anything else: a Parquet dataset folder (see the module docstring), written beside ``out`` and
    renamed onto it only when complete."""
    from padlens.inspector import embed as E
    from padlens.inspector.inputs.resolve import resolve_models
    from padlens.inspector.ray.cluster import require_ray
    from padlens.inspector.runtime.embed_model import EmbedModel, pick_ref

    require_ray()
    from padlens.inspector.ray.corpus import plan_corpus

    to_npy = str(out).lower().endswith(".npy")
    target = _check_target(out, to_npy, keep_text)
    ref = pick_ref(resolve_models([model], options.tokenizer))
    plan = plan_corpus(options.texts_file, options.text_column)
    local = EmbedModel.without_session(ref, graph_pooling=pooling == "auto")
    config = E.pooling_for(ref, local, pooling, normalize)
    limit = E.embed_length(options.max_length, config, local)
    job = EmbedJob(ref, options, config.mode, config.normalize, limit, plan.total, keep_text and not to_npy)
    log.info("%s: %d texts, %s pooling (%s), normalize %s, max length %d, on Ray", ref.label, plan.total,
             config.mode, config.source, config.normalize, limit)
    dim = _run(job, plan, target, to_npy, progress,
               {"model": ref.label, "pooling": config.mode, "normalize": config.normalize, "max_length": limit})
    return E.EmbedResult(target, plan.total, dim, ref.label, config.mode, config.normalize, config.source, limit,
                         normalize_source=config.normalize_source)


def _check_target(out, to_npy: bool, keep_text: bool) -> Path:
    from padlens.fsio import check_file_target

    if to_npy:
        if keep_text:
            raise BadInput(Param("keep_text"), " needs a Parquet output folder (", Param("out", meta="DIR"),
                           "), not a .npy file")
        return check_file_target(out, Param("out", meta=str(out)))
    target = Path(out)
    if target.is_dir() and any(target.iterdir()) and not (target / META_FILE).is_file():
        raise BadInput(Param("out", meta=str(target)),
                       " is a folder that is not empty (and not a padlens embeddings dataset)")
    return target


def _run(job: EmbedJob, plan, target: Path, to_npy: bool, progress, meta: dict) -> int:
    from padlens.inspector.embed import WINDOW_BATCHES
    from padlens.inspector.ray import cluster as R
    from padlens.inspector.ray.corpus import corpus_dataset, shard_size

    options, engine = job.options, job.options.engine
    gpu = R.uses_gpu(options.providers)
    with R.ray_cluster(engine.ray_address, progress=engine.progress_bars) as cluster:
        workers = R.choose_workers(cluster, gpu, engine.workers, options.threads)
        cpus, threads = R.worker_cpus(cluster, workers, options.threads) if not gpu else (1.0, options.threads)
        job = dataclasses.replace(job, options=dataclasses.replace(options, threads=threads))
        unit = options.batch_size * WINDOW_BATCHES  # blocks of whole windows: the batches in-process makes
        reads = corpus_dataset(plan, shard_size(plan.total, unit, workers, max_units=2), R.READ_CPUS)
        ds = R.map_actors(reads, EmbedWorker, job, workers, cpus, gpu, ACTOR_RETRIES)
        if to_npy:
            return _gather_npy(ds, target, plan.total, progress)
        return _write_dataset(ds, target, plan.total, {**meta, "rows": plan.total, "workers": workers})


def _gather_npy(ds, target: Path, total: int, progress) -> int:
    """Write every block's rows at their indices into a memory-mapped .npy, renamed when complete."""
    from numpy.lib.format import open_memmap

    from padlens.fsio import atomic_path

    with atomic_path(target) as tmp:
        out, done = None, 0
        for table in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            index, emb = _arrays(table)
            if out is None:
                out = open_memmap(tmp, mode="w+", dtype=np.float32, shape=(total, emb.shape[1]))
            out[index] = emb
            done += len(index)
            if progress is not None:
                progress(done)
        if out is None or done != total:
            raise BadInput(f"the Ray job returned {done} of {total} embeddings")
        dim = int(out.shape[1])
        out.flush()
        del out
    return dim


def _arrays(table) -> tuple[np.ndarray, np.ndarray]:
    column = table.column("embedding").combine_chunks()
    dim = column.type.list_size
    return (table.column("index").to_numpy(),
            column.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim))


def _write_dataset(ds, target: Path, total: int, meta: dict) -> int:
    """Ray writes the Parquet files (in order) into a folder beside ``target``; once every row
    is there and the files tile 0..total-1 in order, the folder is renamed onto ``target``."""
    from ray.data import DataContext

    from padlens.fsio import atomic_dir
    from padlens.inspector.ray.cluster import READ_CPUS

    context = DataContext.get_current()
    ordered = context.execution_options.preserve_order
    context.execution_options.preserve_order = True
    try:
        with atomic_dir(target, force=True) as tmp:
            started = time.perf_counter()
            ds.write_parquet(str(tmp), ray_remote_args={"num_cpus": READ_CPUS})
            dim = _order_files(tmp, total)
            meta = {**meta, "dim": dim, "seconds": round(time.perf_counter() - started, 3),
                    "columns": ["index", "embedding"] + (["text"] if "text" in _columns(tmp) else [])}
            (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    finally:
        context.execution_options.preserve_order = ordered
    return dim


def _columns(folder: Path) -> list[str]:
    import pyarrow.parquet as pq

    first = sorted(folder.glob("part-*.parquet"))[0]
    return pq.read_schema(first).names


def _order_files(folder: Path, total: int) -> int:
    """Rename Ray's files ``part-<first index>.parquet`` after checking each holds consecutive
    texts and together they hold 0..total-1 exactly once; returns the embedding width."""
    import pyarrow.parquet as pq

    spans, dim = [], 0
    for path in folder.glob("*.parquet"):
        index = pq.read_table(path, columns=["index"]).column("index").to_numpy()
        if len(index) == 0:
            path.unlink()
            continue
        if not np.array_equal(index, np.arange(index[0], index[0] + len(index))):
            raise RuntimeError(f"Ray wrote {path.name} out of order")  # a bug, not bad input
        spans.append((int(index[0]), len(index), path))
        dim = pq.read_schema(path).field("embedding").type.list_size
    spans.sort(key=lambda s: s[0])
    expected = 0
    for first, n, _ in spans:
        if first != expected:
            raise RuntimeError(f"the Parquet files do not tile the texts: {first} found, {expected} expected")
        expected += n
    if expected != total:
        raise BadInput(f"the Ray job wrote {expected} of {total} embeddings")
    for first, _, path in spans:
        path.rename(folder / f"part-{first:012d}.parquet")
    return int(dim)
