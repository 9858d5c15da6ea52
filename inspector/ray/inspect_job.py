"""``inspect(..., engine="ray")``: the same InspectResult, measured by an actor pool.

Each actor opens every (model × provider) run once. Each block of texts (whole in-process
batches, see ``corpus``) is measured into fresh accumulators (``PadStats``,
``AttentionStats``, ``TextStats``), pickled, and merged on the driver: sums merge exactly,
whatever the order; the capped per-text vectors are merged in text order, so the first
``TEXT_CAP`` texts are the ones in-process keeps.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import logging
import pickle
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from padlens.inspector import steps
from padlens.inspector.inputs.options import RunOptions
from padlens.inspector.results import InspectResult, InspectSettings
from padlens.inspector.stats import accumulators as acc

log = logging.getLogger(__name__)

ACTOR_RETRIES = 3


@dataclass(frozen=True)
class InspectJob:
    """What every actor needs to measure a block (plain, picklable values).

    Attributes:
        refs: the models; the runs are every (ref × provider), refs outermost, as in-process.
        options: the caller's ``RunOptions``, whole (``threads``: the actor's share when not asked for).
        stats: ``graph`` or ``numpy``, as in-process.
        max_length, padding_side: the length and side planned on the driver for every run.
        total: texts in the corpus (to check batches are whole).
        vector_limit: texts (by global index) whose pooled vectors are sent back; None: all.
    """

    refs: tuple
    options: RunOptions
    stats: str
    max_length: int
    padding_side: str
    total: int
    vector_limit: int | None = acc.TEXT_CAP

    @property
    def encoder_options(self) -> dict:
        """``Encoder.open``'s keywords on an actor, the statistics where ``stats`` says."""
        return {**self.options.encoder_options, "stats": self.stats == "graph"}


class InspectWorker:
    """A Ray Data actor: every run's encoder, opened once; ``__call__`` measures a block."""

    def __init__(self, job: InspectJob):
        self.job = job
        self.opened = steps.open_encoders(list(job.refs), job.options.providers, job.encoder_options)

    def __call__(self, block: dict) -> dict:
        job = self.job
        index = np.asarray(block["index"], dtype=np.int64)
        texts = [str(t) for t in block["text"]]
        start = int(index[0])
        runs = [steps.new_run(ref, provider, enc, load_s, job.max_length, job.padding_side, job.options.padding)
                for ref, provider, enc, load_s in self.opened]
        for lo, hi in _chunks(index, job):
            first = int(index[lo])
            steps.measure_chunk(runs, texts[lo:hi], job.max_length, job.options.padding, job.padding_side,
                                first=first == 0,
                                before=functools.partial(_limit_vectors, first=first, n=hi - lo, limit=job.vector_limit))
        payload = pickle.dumps([_part(run, start) for run in runs], protocol=pickle.HIGHEST_PROTOCOL)
        return {"start": np.array([start], np.int64), "texts": np.array([len(index)], np.int64),
                "payload": np.array([payload], dtype=object)}


def _chunks(index: np.ndarray, job: InspectJob) -> list[tuple[int, int]]:
    from padlens.inspector.ray.corpus import chunk_bounds

    return chunk_bounds(index, job.options.batch_size, job.total)


def _limit_vectors(run: steps.Run, first: int, n: int, limit: int | None) -> None:
    """Keep the pooled vectors of this batch's texts below ``limit`` (and every text's sums)."""
    texts = run.texts
    room = n if limit is None else max(0, min(n, limit - first))
    texts.cap = texts.kept + room


def _part(run: steps.Run, start: int) -> dict:
    """One block's accumulators of one run; the first block also brings what only it knows."""
    faults = [dataclasses.replace(f, text_index=start + f.text_index) for f in run.faults]
    part = {"pads": run.pads, "attention": run.attention, "texts": run.texts, "faults": faults,
            "n_texts": run.n_texts, "n_tokens": run.n_tokens, "n_pad_tokens": run.n_pad_tokens,
            "timings": {k: v for k, v in run.timings.items() if k != "load"}}
    if start == 0:
        part.update(exposure=run.exposure, describe=run.encoder.describe(), warnings=list(run.warnings),
                    load=run.timings["load"])
    return part


# ---------------------------------------------------------------- driver side

class _Described:
    """Stands in for the driver's Encoder in ``steps.finish``: the graph, and the
    description the actor that measured the first batch gave."""

    def __init__(self, graph, description: dict):
        self.graph, self._description = graph, description

    def describe(self):
        return copy.deepcopy(self._description)


@dataclass
class RunMerge:
    """A run's accumulators on the driver, merged from every block's part.

    Attributes:
        run: the ``steps.Run`` being filled (its encoder is a local description).
        vectors: block start -> TextStats holding only that block's kept vectors, pruned to
            the blocks that can still be among the first ``TEXT_CAP`` texts.
    """

    run: steps.Run
    vectors: dict[int, acc.TextStats] = field(default_factory=dict)
    first: dict | None = None
    faults: list[tuple[int, int, dict]] = field(default_factory=list)

    def add(self, start: int, part: dict) -> None:
        run = self.run
        for mine, other in zip(run.pads, part["pads"]):
            mine.merge(other)
        for mine, other in zip(run.attention, part["attention"]):
            if mine is not None and other is not None:
                mine.merge(other)
        texts: acc.TextStats = part["texts"]
        run.texts.merge(dataclasses.replace(texts, kept=0, masked=[], unmasked=[], pad=[]))
        if texts.kept:
            self.vectors[start] = acc.TextStats(cap=texts.kept, kept=texts.kept, masked=texts.masked,
                                              unmasked=texts.unmasked, pad=texts.pad)
            self._prune()
        ordered = self.faults + [(start, i, f) for i, f in enumerate(part["faults"])]
        self.faults = sorted(ordered, key=lambda item: item[:2])[: steps.MAX_FAULTS]
        run.n_texts += part["n_texts"]
        run.n_tokens += part["n_tokens"]
        run.n_pad_tokens += part["n_pad_tokens"]
        for key, value in part["timings"].items():
            run.timings[key] = run.timings.get(key, 0.0) + value
        if start == 0:
            self.first = part

    def _prune(self) -> None:
        kept = 0
        for start in sorted(self.vectors):
            if kept >= self.run.texts.cap:
                del self.vectors[start]
            else:
                kept += self.vectors[start].kept

    def finish_vectors(self) -> bool:
        """Put the kept vectors in text order; False when texts that failed left the
        sample short (the job must be run again sending every vector)."""
        self.run.faults = [fault for _, _, fault in self.faults]
        texts = self.run.texts
        for start in sorted(self.vectors):
            texts.merge(self.vectors[start])
        return texts.kept >= min(texts.cap, texts.texts - texts.failed)


def _driver_runs(refs, providers: list[str], graphs: dict, length: int) -> list[RunMerge]:
    merges = []
    for ref in refs:
        graph = graphs[ref.path]
        for provider in providers:
            run = steps.empty_run(ref, provider, _Described(graph, {}), len(graph.layers.hidden), length)
            merges.append(RunMerge(run))
    return merges


def _describe_run(merge: RunMerge) -> None:
    """Fill what only the actor that measured the first batch knows (description, exposure)."""
    first, run = merge.first, merge.run
    if first is None:  # pragma: no cover - the block holding text 0 is always measured
        raise RuntimeError("no result for the first batch came back from the Ray workers")
    run.encoder = _Described(run.encoder.graph, first["describe"])
    run.exposure, run.warnings = first["exposure"], list(first["warnings"])
    run.timings["load"] = first["load"]


def inspect_ray(models: list[str], options: RunOptions, stats: str = "graph",
                progress: Callable[[int], None] | None = None) -> InspectResult:
    """``inspect()`` on Ray Data: the same result, measured by ``options.engine.workers`` actors, with
    ``options`` checked once by the caller (``RunOptions``), passed whole to every actor.

    ``options.texts_file`` is a .txt/.jsonl/.csv/.parquet file, a folder or a glob of them;
    ``options.engine.ray_address`` None starts a local Ray sized to this machine, "auto" joins the
    running cluster.
    """
    from padlens.errors import BadInput, Param
    from padlens.inspector.inputs.resolve import resolve_models
    from padlens.inspector.ray.cluster import require_ray
    from padlens.inspector.runtime.encoder import Encoder

    require_ray()
    from padlens.inspector.ray import corpus as C

    started = time.perf_counter()
    if options.texts_file is None:
        raise BadInput(Param("engine", "ray"), " reads a corpus: pass ", Param("texts_file", meta="FILE"),
                       ", FOLDER or GLOB")
    plan = C.plan_corpus(options.texts_file, options.text_column)
    refs = resolve_models(models, options.tokenizer)
    local = [Encoder.without_session(ref, options.layer_list) for ref in refs]
    length, side, side_source = steps.plan_batches(options.max_length, options.padding_side, local, options.batch_size)
    job = InspectJob(tuple(refs), options, stats, length, side, plan.total, acc.TEXT_CAP)
    graphs = {enc.ref.path: enc.graph for enc in local}
    merges, info = _run_job(job, plan, graphs, progress)
    settings = InspectSettings.of(options, stats, side_source, engine="ray", ray=info,
                                  timings={"total": round(time.perf_counter() - started, 4)})
    return InspectResult([steps.finish(m.run) for m in merges], plan.total, length, side, settings)


def _run_job(job: InspectJob, plan, graphs: dict, progress) -> tuple[list[RunMerge], dict]:
    """Run the job on Ray (again, sending every vector, when failed texts left a sample short)."""
    from padlens.inspector.ray.cluster import ray_cluster

    engine = job.options.engine
    with ray_cluster(engine.ray_address, progress=engine.progress_bars) as cluster:
        while True:
            merges, info = _stream(job, plan, graphs, cluster, progress)
            if all(m.finish_vectors() for m in merges) or job.vector_limit is None:
                break
            log.warning("texts that failed among the first %d: measuring again to keep the same sample",
                        job.vector_limit)
            job = dataclasses.replace(job, vector_limit=None)
    for merge in merges:
        _describe_run(merge)
    return merges, info


def _stream(job: InspectJob, plan, graphs: dict, cluster, progress) -> tuple[list[RunMerge], dict]:
    from padlens.inspector.ray import cluster as R
    from padlens.inspector.ray.corpus import corpus_dataset, shard_size

    options = job.options
    gpu = R.uses_gpu(options.providers)
    workers = R.choose_workers(cluster, gpu, options.engine.workers, options.threads)
    cpus, actor_threads = R.worker_cpus(cluster, workers, options.threads) if not gpu else (1.0, options.threads)
    job = dataclasses.replace(job, options=dataclasses.replace(options, threads=actor_threads))
    size = shard_size(plan.total, options.batch_size, workers)
    ds = R.map_actors(corpus_dataset(plan, size, R.READ_CPUS), InspectWorker, job, workers, cpus, gpu, ACTOR_RETRIES)
    merges = _driver_runs(job.refs, options.providers, graphs, job.max_length)
    done = 0
    for row in ds.iter_rows():
        parts = pickle.loads(row["payload"])
        for merge, part in zip(merges, parts):
            merge.add(int(row["start"]), part)
        done += int(row["texts"])
        if progress is not None:
            progress(done)
    info = {"address": cluster.address, "workers": workers, "worker_cpus": cpus,
            "worker_threads": actor_threads, "shard_texts": size}
    return merges, info
