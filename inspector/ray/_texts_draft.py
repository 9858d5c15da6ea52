"""DRAFT (moves into inspector/texts.py after 20:50): folders, globs and Parquet."""
from __future__ import annotations

import glob
import itertools
import logging
import os
from pathlib import Path
from typing import Iterator

from padlens.errors import BadInput, MissingExtra
from padlens.inspector.texts import MAX_TEXT_CHARS, _check_file, _iter_csv, _iter_jsonl, _iter_txt, _non_blank

log = logging.getLogger(__name__)

_TEXT_FIELD = "text"
PARQUET_SUFFIXES = (".parquet", ".pq")
LINE_SUFFIXES = (".txt", ".jsonl", ".csv")
CORPUS_SUFFIXES = LINE_SUFFIXES + PARQUET_SUFFIXES
_GLOB_CHARS = "*?["
PARQUET_BATCH = 4096  # rows read at a time from a Parquet row group


def corpus_files(source: str | os.PathLike) -> list[Path]:
    """The files of a corpus, in reading order.

    ``source`` is a file; a folder (every ``.txt``/``.jsonl``/``.csv``/``.parquet`` file
    under it, recursively, hidden and ``_``-prefixed ones left out, sorted by path); or a
    glob pattern (its matching files, sorted by path; ``**`` recurses).
    """
    text = os.fspath(source)
    p = Path(text)
    if not p.exists() and any(c in text for c in _GLOB_CHARS):
        files = sorted(Path(m) for m in glob.glob(text, recursive=True) if Path(m).is_file())
        if not files:
            raise BadInput(f"no files match {text}")
        return files
    if p.is_dir() and p.suffix.lower() not in LINE_SUFFIXES:
        files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in CORPUS_SUFFIXES
                       and not any(part.startswith((".", "_")) for part in f.relative_to(p).parts))
        if not files:
            raise BadInput(f"no texts: folder {p} holds no {', '.join(CORPUS_SUFFIXES)} files")
        return files
    return [_check_file(p)]


def iter_corpus(source: str | os.PathLike, text_column: str | None = None) -> Iterator[str]:
    """Stream the texts of a file, folder or glob (see ``corpus_files``), file after file."""
    files = corpus_files(source)
    if len(files) == 1:
        return iter_file_texts(files[0], text_column)
    return itertools.chain.from_iterable(iter_file_texts(f, text_column) for f in files)


def iter_file_texts(p: Path, text_column: str | None = None) -> Iterator[str]:
    suffix = p.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        return _non_blank(iter_parquet(p, text_column or _TEXT_FIELD), p)
    if suffix == ".jsonl":
        return _non_blank(_iter_jsonl(p), p)
    if suffix == ".csv":
        return _non_blank(_iter_csv(p), p)
    return _iter_txt(p)


def _pyarrow_parquet():
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingExtra("reading Parquet needs pyarrow: pip install pyarrow "
                           "(it comes with pip install 'padlens[ray]')") from None
    return pq


def open_parquet(p: Path, column: str = _TEXT_FIELD):
    """A ``pyarrow.parquet.ParquetFile`` whose ``column`` holds strings, or BadInput."""
    pq = _pyarrow_parquet()
    import pyarrow as pa

    try:
        handle = pq.ParquetFile(p)
    except (OSError, pa.ArrowException) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BadInput(f"{p} is not a readable Parquet file: {first}") from None
    schema = handle.schema_arrow
    if column not in schema.names:
        found = ", ".join(repr(n) for n in schema.names) or "none"
        raise BadInput(f'no "{column}" column in {p} (columns found: {found}): pass --text-column')
    kind = schema.field(column).type
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise BadInput(f'column "{column}" of {p} holds {kind}, not strings')
    return handle


def parquet_group_texts(p: Path, column: str = _TEXT_FIELD) -> list[int]:
    """Texts (non-blank values) in each row group of ``p``: where a reader may start."""
    handle = open_parquet(p, column)
    return [sum(1 for text in iter_parquet(p, column, range(g, g + 1), handle) if text.strip())
            for g in range(handle.num_row_groups)]


def iter_parquet(p: Path, column: str = _TEXT_FIELD, groups: range | None = None,
                 handle=None) -> Iterator[str]:
    """Stream ``column`` of ``p`` (the row ``groups`` given, default all); nulls come as ""."""
    handle = handle if handle is not None else open_parquet(p, column)
    groups = range(handle.num_row_groups) if groups is None else groups
    if not len(groups):
        return
    row = sum(handle.metadata.row_group(g).num_rows for g in range(groups.start))
    for batch in handle.iter_batches(batch_size=PARQUET_BATCH, row_groups=list(groups), columns=[column]):
        for value in batch.column(0).to_pylist():
            row += 1
            if value is not None and len(value) > MAX_TEXT_CHARS:
                raise BadInput(f"text too long: {p} row {row} has over {MAX_TEXT_CHARS:,} characters")
            yield value or ""
