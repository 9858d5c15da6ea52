"""A corpus as a Ray Data datasource: shards of texts, each text with its global index.

Texts are numbered in input order (files in sorted order, rows in file order, blank texts
skipped exactly as in-process). A counting pass on the driver fixes every file's number of
texts, so each read task knows its global range; shards are whole in-process batches, so
the workers see the very batches ``inspect()`` and ``embed()`` see in-process.
"""
from __future__ import annotations

import functools
import itertools
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
from ray.data import Datasource, ReadTask
from ray.data.block import BlockMetadata

from padlens.errors import BadInput
from padlens.inspector.inputs import texts as T

log = logging.getLogger(__name__)

SHARDS_PER_WORKER = 4  # at least this many read tasks per actor: balance, and cheap retries
MAX_BATCHES_PER_SHARD = 16


@dataclass(frozen=True)
class FilePart:
    """Texts ``[start, stop)`` of one file, numbered within that file.

    Attributes:
        path: the file. start, stop: its texts to read.
        group: Parquet only: the row group to start reading at; group_start: texts before it.
    """

    path: str
    start: int
    stop: int
    group: int = 0
    group_start: int = 0


@dataclass
class CorpusPlan:
    """Every file of a corpus and how many texts it holds (the counting pass).

    Attributes:
        source: the file, folder or glob given. text_column: the column/field read (None: "text").
        files: the files in reading order. counts: texts per file.
        groups: Parquet files: texts per row group.
    """

    source: str
    text_column: str | None
    files: list[str]
    counts: list[int]
    groups: dict[str, list[int]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return int(sum(self.counts))

    def parts(self, start: int, stop: int) -> list[FilePart]:
        """The file parts that hold global texts ``[start, stop)``."""
        out, offset = [], 0
        for path, count in zip(self.files, self.counts):
            lo, hi = max(start, offset), min(stop, offset + count)
            if lo < hi:
                out.append(self._part(path, lo - offset, hi - offset))
            offset += count
        return out

    def _part(self, path: str, start: int, stop: int) -> FilePart:
        groups = self.groups.get(path)
        if not groups:
            return FilePart(path, start, stop)
        before = np.cumsum([0, *groups])
        group = int(np.searchsorted(before, start, side="right") - 1)
        group = min(group, len(groups) - 1)
        return FilePart(path, start, stop, group, int(before[group]))


def plan_corpus(source: str, text_column: str | None = None) -> CorpusPlan:
    """Count the texts of every file of ``source`` (validating them as in-process reading does)."""
    files = T.corpus_files(source)
    plan = CorpusPlan(str(source), text_column, [str(f) for f in files], [])
    for f in files:
        if f.suffix.lower() in T.PARQUET_SUFFIXES:
            plan.groups[str(f)] = T.parquet_group_texts(f, text_column or "text")
            plan.counts.append(sum(plan.groups[str(f)]))
        else:
            plan.counts.append(sum(1 for _ in T.iter_file_texts(f, text_column)))
    if plan.total == 0:
        raise BadInput(f"no texts: {source} is empty")
    log.info("%s: %d texts in %d file(s)", source, plan.total, len(files))
    return plan


def shard_size(total: int, unit: int, workers: int, max_units: int = MAX_BATCHES_PER_SHARD) -> int:
    """Texts per read task: whole units (in-process batches, or embed's windows), about
    SHARDS_PER_WORKER tasks per actor at least, at most ``max_units`` units."""
    units = math.ceil(total / unit)
    per = math.ceil(units / (max(1, workers) * SHARDS_PER_WORKER))
    return unit * max(1, min(max_units, per))


def _part_texts(part: FilePart, column: str | None) -> list[str]:
    p = Path(part.path)
    if p.suffix.lower() in T.PARQUET_SUFFIXES:
        handle = T.open_parquet(p, column or "text")
        stream = T.non_blank(T.iter_parquet(p, column or "text", range(part.group, handle.num_row_groups),
                                             handle), p)
        return list(itertools.islice(stream, part.start - part.group_start, part.stop - part.group_start))
    return list(itertools.islice(T.iter_file_texts(p, column), part.start, part.stop))


def read_shard(start: int, stop: int, parts: list[FilePart], column: str | None) -> list[pa.Table]:
    """One block: global texts ``[start, stop)`` as columns ``index`` (int64) and ``text``."""
    texts = [text for part in parts for text in _part_texts(part, column)]
    if len(texts) != stop - start:
        raise BadInput(f"{parts[0].path} changed while it was read ({len(texts)} of {stop - start} texts)")
    return [pa.table({"index": pa.array(np.arange(start, stop, dtype=np.int64)),
                      "text": pa.array(texts, pa.string())})]


class CorpusDatasource(Datasource):
    """Ray Data reads the corpus shard by shard; each row carries its global ``index``."""

    def __init__(self, plan: CorpusPlan, size: int):
        super().__init__()
        self.plan, self.size = plan, int(size)

    def get_name(self) -> str:
        return "PadlensCorpus"

    def estimate_inmemory_data_size(self) -> int | None:
        return None

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                       data_context=None) -> list[ReadTask]:
        tasks = []
        for start in range(0, self.plan.total, self.size):
            stop = min(start + self.size, self.plan.total)
            parts = self.plan.parts(start, stop)
            meta = BlockMetadata(num_rows=stop - start, size_bytes=None, exec_stats=None,
                                 input_files=tuple(dict.fromkeys(p.path for p in parts)))
            tasks.append(ReadTask(functools.partial(read_shard, start, stop, parts, self.plan.text_column), meta))
        return tasks


def corpus_dataset(plan: CorpusPlan, size: int, read_cpus: float):
    """The corpus as a Ray Dataset of ``{index, text}`` rows, one block per shard."""
    import ray.data

    shards = math.ceil(plan.total / size)  # as many blocks as shards: Ray must not split one
    return ray.data.read_datasource(CorpusDatasource(plan, size), num_cpus=read_cpus, override_num_blocks=shards)


def chunk_bounds(index: np.ndarray, batch_size: int, total: int) -> list[tuple[int, int]]:
    """Row ranges of ``index`` that are whole in-process batches (texts ``k·B … k·B + B − 1``).

    A batch split across two blocks would change what padding to the longest sees: it is
    refused (RuntimeError), never measured.
    """
    index = np.asarray(index)
    if len(index) == 0:
        return []
    cuts = (np.flatnonzero(np.diff(index // int(batch_size))) + 1).tolist()
    bounds = list(zip([0, *cuts], [*cuts, len(index)]))
    for lo, hi in bounds:
        first, last = int(index[lo]), int(index[hi - 1])
        whole = hi - lo == batch_size or (last == total - 1 and hi - lo == total - first)
        if first % batch_size or not whole or last - first != hi - lo - 1:
            raise RuntimeError(f"texts {first}..{last} are not one whole batch of {batch_size}")
    return bounds
