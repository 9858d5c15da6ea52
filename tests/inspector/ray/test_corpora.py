"""Corpora beyond one text file, read in-process: Parquet, folders, globs, --text-column."""
from __future__ import annotations

import json
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from padlens.errors import BadInput
from padlens.inspector.inputs.texts import corpus_files, count_texts, iter_texts


def test_parquet_texts_come_in_row_order_without_nulls_or_blanks(tmp_path):
    path = tmp_path / "c.parquet"
    pq.write_table(pa.table({"text": ["a b", None, "  ", "c", "d e f"] * 30}), path, row_group_size=7)
    assert list(iter_texts(path)) == ["a b", "c", "d e f"] * 30
    assert count_texts(path) == 90


def test_text_column_names_the_parquet_column_jsonl_field_and_csv_column(tmp_path):
    pq.write_table(pa.table({"body": ["one", "two"]}), tmp_path / "a.parquet")
    (tmp_path / "b.jsonl").write_text(json.dumps({"body": "three"}) + "\n")
    (tmp_path / "c.csv").write_text("id,body\n1,four\n")
    assert [t for f in ("a.parquet", "b.jsonl", "c.csv") for t in iter_texts(tmp_path / f, "body")] == \
        ["one", "two", "three", "four"]


def test_a_folder_is_its_corpus_files_sorted_by_path_recursively(tmp_path):
    (tmp_path / "b.txt").write_text("second\n")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "z.txt").write_text("first\n")
    (tmp_path / "c.jsonl").write_text('{"text": "third"}\n')
    (tmp_path / "_SUCCESS").write_text("")
    (tmp_path / ".hidden.txt").write_text("never\n")
    (tmp_path / "notes.md").write_text("never\n")
    assert [p.name for p in corpus_files(tmp_path)] == ["z.txt", "b.txt", "c.jsonl"]
    assert list(iter_texts(tmp_path)) == ["first", "second", "third"]


def test_a_glob_reads_its_matches_in_sorted_order(tmp_path):
    for name, text in (("s2.txt", "two"), ("s1.txt", "one"), ("x.txt", "not matched")):
        (tmp_path / name).write_text(text + "\n")
    assert list(iter_texts(str(tmp_path / "s*.txt"))) == ["one", "two"]


@pytest.mark.parametrize("make, message", [
    (lambda d: None, "no texts: folder .* holds no .txt, .jsonl, .csv, .parquet, .pq files"),
    (lambda d: (d / "x.parquet").write_bytes(b"not parquet"), "x.parquet is not a readable Parquet file"),
    (lambda d: pq.write_table(pa.table({"body": ["a"]}), d / "x.parquet"),
     "no \"text\" column in .*x.parquet \\(columns found: 'body'\\): pass text_column"),
])
def test_bad_corpora_name_the_problem(tmp_path, make, message):
    make(tmp_path)
    with pytest.raises(BadInput, match=message):
        list(iter_texts(tmp_path))


def test_a_glob_matching_nothing_is_refused(tmp_path):
    with pytest.raises(BadInput, match="no files match .*nothing-\\*.txt"):
        iter_texts(str(tmp_path / "nothing-*.txt"))


def test_reading_text_files_imports_neither_pyarrow_nor_ray(tmp_path):
    (tmp_path / "a.txt").write_text("one\n")
    code = ("import sys; from padlens.inspector.inputs.texts import iter_texts; "
            f"assert list(iter_texts({str(tmp_path)!r})) == ['one']; "
            "print(sorted(m for m in ('ray', 'pyarrow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
