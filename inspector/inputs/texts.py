"""Reading text input: the built-in corpus, --text values, .txt/.jsonl/.csv/.parquet files,
folders and globs of them, streamed."""
from __future__ import annotations

import csv
import glob
import itertools
import json
import logging
import os
from importlib.resources import files
from pathlib import Path
from typing import IO, Iterable, Iterator, Sequence

from padlens.errors import BadInput, MissingExtra, Param

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 1_000_000
"""Longest line (and so longest text) accepted from a file, in characters."""

# A UTF-8 character is at most 4 bytes, so a line of MAX_TEXT_CHARS characters fits in
# this many bytes; reading a line never buffers more than this.
_MAX_LINE_BYTES = 4 * MAX_TEXT_CHARS + 2

_TEXT_FIELD = "text"
LINE_SUFFIXES = (".txt", ".jsonl", ".csv")
ROW_SUFFIXES = (".jsonl", ".csv")
"""Files whose texts come with other fields (``iter_file_rows``)."""
PARQUET_SUFFIXES = (".parquet", ".pq")
CORPUS_SUFFIXES = LINE_SUFFIXES + PARQUET_SUFFIXES
"""What a folder corpus is made of (other files in it are ignored)."""
_GLOB_CHARS = "*?["
_PARQUET_BATCH = 4096  # rows read at a time from a Parquet row group


def default_corpus() -> list[str]:
    """Return the non-blank lines of the bundled sample corpus (``data/corpus.txt``)."""
    resource = files("padlens.inspector") / "data" / "corpus.txt"
    content = resource.read_text(encoding="utf-8-sig")
    return [line for line in content.splitlines() if line.strip()]


def iter_texts(path: str | os.PathLike, text_column: str | None = None) -> Iterator[str]:
    """Stream the texts of ``path`` one at a time, never holding the whole file.

    ``.jsonl``: one JSON object per line with a string ``text`` field. ``.csv``: a
    ``text`` column (other columns are ignored). ``.parquet``: a string ``text`` column
    (needs pyarrow). ``text_column`` names another field/column. Anything else is plain
    text, one text per line. Blank lines and blank texts (and Parquet nulls) are skipped;
    plain-text lines are stripped. ``path`` may also be a folder or a glob: see
    :func:`corpus_files`. A missing file is refused at once; problems inside a file raise
    :class:`BadInput` naming the file and line when the stream reaches them.
    """
    paths = corpus_files(path)
    if len(paths) == 1:
        return iter_file_texts(paths[0], text_column)
    return itertools.chain.from_iterable(iter_file_texts(p, text_column) for p in paths)


def iter_file_texts(p: Path, text_column: str | None = None) -> Iterator[str]:
    """The texts of one corpus file (see :func:`iter_texts`)."""
    suffix = p.suffix.lower()
    field = text_column or _TEXT_FIELD
    if suffix in PARQUET_SUFFIXES:
        return non_blank(iter_parquet(p, field), p)
    if suffix in ROW_SUFFIXES:
        return (text for text, _ in _rows(p, field))
    if suffix != ".txt":
        log.debug("treating %s as plain text, one text per line", p)
    return _iter_txt(p)


def iter_file_rows(p: Path, text_column: str | None = None) -> Iterator[tuple[str, dict]]:
    """Each text of a .jsonl or .csv file with its whole row (the JSON object; the CSV row,
    column names stripped): the texts :func:`iter_file_texts` yields, with the same errors,
    and each text's other fields (labels) from the same one read."""
    rows = _rows(p, text_column or _TEXT_FIELD)
    if p.suffix.lower() == ".jsonl":
        return rows
    return ((text, {(k or "").strip(): v for k, v in row.items()}) for text, row in rows)


def _rows(p: Path, field: str) -> Iterator[tuple[str, dict]]:
    """(text, row) of the non-blank texts of a .jsonl or .csv file."""
    rows = _jsonl_rows(p, field) if p.suffix.lower() == ".jsonl" else _csv_rows(p, field)
    return non_blank(rows, p, text=lambda pair: pair[0])


def count_texts(path: str | os.PathLike, text_column: str | None = None) -> int:
    """Count the texts :func:`iter_texts` would yield for ``path`` without storing them."""
    return sum(1 for _ in iter_texts(path, text_column))


def corpus_files(source: str | os.PathLike) -> list[Path]:
    """The files of a corpus, in reading order.

    ``source`` is a file; a folder (every .txt/.jsonl/.csv/.parquet file under it,
    recursively, leaving out names starting with "." or "_" such as Spark's _SUCCESS;
    sorted by path); or a glob (its matching files sorted by path; ``**`` recurses). A
    folder named like a text file (``x.txt``) is refused as one.
    """
    text = os.fspath(source)
    p = Path(text)
    if not p.exists() and any(c in text for c in _GLOB_CHARS):
        found = sorted(Path(m) for m in glob.glob(text, recursive=True) if Path(m).is_file())
        if not found:
            raise BadInput(f"no files match {text}")
        return found
    if p.is_dir() and p.suffix.lower() not in LINE_SUFFIXES:
        found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in CORPUS_SUFFIXES
                       and not any(part.startswith((".", "_")) for part in f.relative_to(p).parts))
        if not found:
            raise BadInput(f"no texts: folder {p} holds no {', '.join(CORPUS_SUFFIXES)} files")
        return found
    return [_check_file(p)]


def batches_of(stream: Iterable[str], size: int) -> Iterator[list[str]]:
    """Chunks of ``size`` texts pulled lazily from ``stream`` (the last may be shorter)."""
    stream = iter(stream)
    while True:
        chunk = list(itertools.islice(stream, size))
        if not chunk:
            return
        yield chunk


def read_texts(
    texts: Sequence[str] | None,
    path: str | os.PathLike | None,
    limit: int | None = None,
) -> list[str]:
    """Combine ``--text`` values and a ``--texts`` file; fall back to the built-in corpus.

    The ``texts`` come first, then the file's. With neither, the built-in corpus is used.
    ``limit`` keeps at most that many texts and stops reading the file once reached.
    Blank texts are dropped; an empty result is a :class:`BadInput`.
    """
    if limit is not None and limit < 1:
        raise BadInput(f"limit must be at least 1, got {limit}")
    given = [t for t in (texts or ()) if t is not None]
    for i, text in enumerate(given, 1):
        if not isinstance(text, str):
            raise BadInput(Param("texts"), f" value {i} is {type(text).__name__}, not a string")
        if len(text) > MAX_TEXT_CHARS:
            raise BadInput(Param("texts"), f" value {i} is longer than {MAX_TEXT_CHARS:,} characters")
    out = [t for t in given if t.strip()]

    if not given and path is None:
        out = default_corpus()
        if not out:  # pragma: no cover - the package ships a non-empty corpus
            raise BadInput("no texts: the built-in corpus is empty")
        return out[:limit] if limit is not None else out

    if path is not None and (limit is None or len(out) < limit):
        for text in iter_texts(path):
            out.append(text)
            if limit is not None and len(out) >= limit:
                break
    if limit is not None:
        out = out[:limit]
    if not out:
        if given and path is not None:
            raise BadInput("no texts: every ", Param("texts"), f" value is blank and {path} is empty")
        if given:
            raise BadInput("no texts: every ", Param("texts"), " value is blank")
        raise BadInput(f"no texts: {path} is empty")
    return out


# -- internals ------------------------------------------------------------------------


def _check_file(path: str | os.PathLike) -> Path:
    p = Path(path)
    if p.is_dir():
        raise BadInput(f"{p} is a folder, expected a text file")
    if not p.exists():
        raise BadInput(f"text file not found: {p}")
    return p


def _open(p: Path) -> IO[bytes]:
    try:
        return open(p, "rb")
    except OSError as exc:
        raise BadInput(f"cannot read {p}: {exc.strerror or exc}") from None


def _lines(p: Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line number, decoded line with its line ending)`` from ``p``.

    Decodes each line on its own so a bad byte is reported on the right line; a UTF-8
    byte-order mark on the first line is dropped; a line is never read past
    ``_MAX_LINE_BYTES`` bytes.
    """
    with _open(p) as fh:
        lineno = 0
        while True:
            try:
                raw = fh.readline(_MAX_LINE_BYTES)
            except OSError as exc:
                raise BadInput(f"cannot read {p}: {exc.strerror or exc}") from None
            if not raw:
                return
            lineno += 1
            if len(raw) >= _MAX_LINE_BYTES and not raw.endswith(b"\n"):
                raise _too_long(p, lineno)
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                bad = raw[exc.start : exc.start + 1].hex()
                raise BadInput(
                    f"{p} line {lineno} is not valid UTF-8 "
                    f"(byte 0x{bad} at byte offset {exc.start})"
                ) from None
            if len(line.rstrip("\r\n")) > MAX_TEXT_CHARS:
                raise _too_long(p, lineno)
            yield lineno, line


def _too_long(p: Path, lineno: int) -> BadInput:
    return BadInput(f"line too long: {p} line {lineno} has over {MAX_TEXT_CHARS:,} characters")


def non_blank(texts: Iterable, p: Path, text=None) -> Iterator:
    """``texts`` without the blank ones, warning once with how many were skipped (``text``
    gives an item's text when the items are not strings)."""
    skipped = 0
    for item in texts:
        if (item if text is None else text(item)).strip():
            yield item
        else:
            skipped += 1
    if skipped:
        log.warning("skipped %d blank text(s) in %s", skipped, p)


def _iter_txt(p: Path) -> Iterator[str]:
    for _, line in _lines(p):
        text = line.strip()
        if text:
            yield text


def _jsonl_rows(p: Path, field: str = _TEXT_FIELD) -> Iterator[tuple[str, dict]]:
    for lineno, line in _lines(p):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BadInput(
                f"malformed JSON in {p} line {lineno}: {exc.msg} (column {exc.colno})"
            ) from None
        if not isinstance(obj, dict):
            raise BadInput(
                f"expected a JSON object in {p} line {lineno}, got {_json_type(obj)}"
            )
        if field not in obj:
            keys = ", ".join(map(str, obj)) or "none"
            raise BadInput(
                f'missing "{field}" field in {p} line {lineno} (keys found: {keys})'
            )
        text = obj[field]
        if not isinstance(text, str):
            raise BadInput(
                f'"{field}" is {_json_type(text)}, not a string, in {p} line {lineno}'
            )
        yield text, obj


def _csv_rows(p: Path, field: str = _TEXT_FIELD) -> Iterator[tuple[str, dict]]:
    if csv.field_size_limit() < MAX_TEXT_CHARS:
        # The default (131,072) would refuse long texts that are within our own limit.
        csv.field_size_limit(MAX_TEXT_CHARS)
    reader = csv.DictReader((line for _, line in _lines(p)))
    try:
        fieldnames = reader.fieldnames
    except csv.Error as exc:
        raise BadInput(f"malformed CSV in {p} line {reader.line_num}: {exc}") from None
    if fieldnames is None:
        return  # an empty file holds no texts
    column = next((name for name in fieldnames if name.strip() == field), None)
    if column is None:
        found = ", ".join(repr(name) for name in fieldnames) or "none"
        raise BadInput(f'no "{field}" column in {p} (columns found: {found})')
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise BadInput(f"malformed CSV in {p} line {reader.line_num}: {exc}") from None
        text = row.get(column)
        if text is None:
            raise BadInput(
                f'missing "{field}" value in {p} line {reader.line_num}: '
                f"the row has fewer fields than the header"
            )
        yield text, row


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


# -- Parquet (pyarrow, imported only when a Parquet file is read) ---------------------


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
        raise BadInput(f'no "{column}" column in {p} (columns found: {found}): pass ', Param("text_column"))
    kind = schema.field(column).type
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise BadInput(f'column "{column}" of {p} holds {kind}, not strings')
    return handle


def iter_parquet(p: Path, column: str = _TEXT_FIELD, groups: range | None = None, handle=None) -> Iterator[str]:
    """Stream ``column`` of ``p`` (only the row ``groups`` given, default all), a batch of
    rows at a time; nulls come as "" (blank, so skipped by the callers)."""
    handle = handle if handle is not None else open_parquet(p, column)
    groups = range(handle.num_row_groups) if groups is None else groups
    if not len(groups):
        return
    row = sum(handle.metadata.row_group(g).num_rows for g in range(groups.start))
    for batch in handle.iter_batches(batch_size=_PARQUET_BATCH, row_groups=list(groups), columns=[column]):
        for value in batch.column(0).to_pylist():
            row += 1
            if value is not None and len(value) > MAX_TEXT_CHARS:
                raise BadInput(f"text too long: {p} row {row} has over {MAX_TEXT_CHARS:,} characters")
            yield value or ""


def parquet_group_texts(p: Path, column: str = _TEXT_FIELD) -> list[int]:
    """Texts (non-blank values) in each row group of ``p``: where a reader may start."""
    handle = open_parquet(p, column)
    return [sum(1 for text in iter_parquet(p, column, range(g, g + 1), handle) if text.strip())
            for g in range(handle.num_row_groups)]
