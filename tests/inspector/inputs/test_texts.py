"""Behaviour of padlens.inspector.inputs.texts: reading --text values, text files and the corpus."""
from __future__ import annotations

import json
import tracemalloc
import types

import pytest

from padlens.errors import BadInput
from padlens.inspector.inputs import texts as T
from padlens.inspector.inputs.texts import (
    MAX_TEXT_CHARS,
    count_texts,
    default_corpus,
    iter_texts,
    read_texts,
)


def write(path, content: str | bytes):
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


# -- default corpus -------------------------------------------------------------------


def test_default_corpus_starts_with_the_sample_sentence():
    corpus = default_corpus()
    assert corpus[0] == "this is a sample sentence"


def test_default_corpus_has_400_distinct_non_blank_lines():
    corpus = default_corpus()
    assert len(corpus) == 400
    assert len(set(corpus)) == 400
    assert all(line.strip() == line and line for line in corpus)


def test_default_corpus_returns_a_fresh_list_each_call():
    first = default_corpus()
    first.clear()
    assert default_corpus()


# -- .txt -----------------------------------------------------------------------------


def test_txt_yields_one_text_per_line_and_skips_blank_lines(tmp_path):
    p = write(tmp_path / "in.txt", "first line\n\n   \nsecond line\r\nthird\n\n")
    assert list(iter_texts(p)) == ["first line", "second line", "third"]


def test_txt_without_trailing_newline_keeps_last_line(tmp_path):
    p = write(tmp_path / "in.txt", "a\nb")
    assert list(iter_texts(p)) == ["a", "b"]


def test_txt_drops_a_utf8_bom(tmp_path):
    p = write(tmp_path / "bom.txt", b"\xef\xbb\xbfhello\nworld\n")
    assert list(iter_texts(p)) == ["hello", "world"]


def test_txt_keeps_non_ascii_text(tmp_path):
    p = write(tmp_path / "u.txt", "café naïve\n東京に行く\n")
    assert list(iter_texts(p)) == ["café naïve", "東京に行く"]


def test_unknown_suffix_is_read_as_plain_text(tmp_path):
    p = write(tmp_path / "notes.md", '{"text": "not parsed"}\nplain\n')
    assert list(iter_texts(p)) == ['{"text": "not parsed"}', "plain"]


def test_suffix_is_matched_case_insensitively(tmp_path):
    p = write(tmp_path / "IN.JSONL", '{"text": "upper"}\n')
    assert list(iter_texts(p)) == ["upper"]


def test_undecodable_bytes_name_the_file_and_line(tmp_path):
    p = write(tmp_path / "bad.txt", b"good\nalso good\nbad \xff byte\n")
    with pytest.raises(BadInput) as err:
        list(iter_texts(p))
    msg = str(err.value)
    assert "bad.txt" in msg and "line 3" in msg and "UTF-8" in msg and "0xff" in msg


def test_good_lines_before_a_bad_byte_are_still_streamed(tmp_path):
    p = write(tmp_path / "bad.txt", b"good\n\xfe\n")
    gen = iter_texts(p)
    assert next(gen) == "good"
    with pytest.raises(BadInput, match="line 2"):
        next(gen)


def test_line_over_the_limit_is_refused_with_file_and_line(tmp_path):
    p = write(tmp_path / "long.txt", "short\n" + "x" * (MAX_TEXT_CHARS + 1) + "\n")
    with pytest.raises(BadInput) as err:
        list(iter_texts(p))
    msg = str(err.value)
    assert msg.startswith("line too long")
    assert "long.txt" in msg and "line 2" in msg and "1,000,000" in msg


def test_line_exactly_at_the_limit_is_accepted(tmp_path):
    p = write(tmp_path / "edge.txt", "y" * MAX_TEXT_CHARS + "\n")
    (text,) = list(iter_texts(p))
    assert len(text) == MAX_TEXT_CHARS


def test_multibyte_line_over_the_limit_is_refused(tmp_path):
    # 1,000,001 three-byte characters: over the character limit, under the byte cap.
    p = write(tmp_path / "wide.txt", "東" * (MAX_TEXT_CHARS + 1))
    with pytest.raises(BadInput, match="line 1"):
        list(iter_texts(p))


def test_huge_line_is_refused_without_reading_it_whole(tmp_path):
    p = write(tmp_path / "huge.txt", b"z" * (5 * MAX_TEXT_CHARS))
    with pytest.raises(BadInput, match="huge.txt line 1"):
        list(iter_texts(p))


# -- missing paths --------------------------------------------------------------------


def test_missing_file_is_refused_immediately(tmp_path):
    with pytest.raises(BadInput) as err:
        iter_texts(tmp_path / "nope.txt")  # no iteration needed
    assert "not found" in str(err.value) and "nope.txt" in str(err.value)


def test_folder_is_refused(tmp_path):
    folder = tmp_path / "adir.txt"
    folder.mkdir()
    with pytest.raises(BadInput) as err:
        iter_texts(folder)
    assert "folder" in str(err.value) and "adir.txt" in str(err.value)


def test_empty_file_yields_nothing(tmp_path):
    for name in ("e.txt", "e.jsonl", "e.csv"):
        assert list(iter_texts(write(tmp_path / name, ""))) == []


# -- .jsonl ---------------------------------------------------------------------------


def test_jsonl_reads_the_text_field_and_ignores_other_fields(tmp_path):
    lines = [{"text": "alpha", "id": 1}, {"text": "  beta  "}, {"id": 3, "text": "gamma"}]
    p = write(tmp_path / "in.jsonl", "\n".join(json.dumps(x) for x in lines) + "\n\n")
    assert list(iter_texts(p)) == ["alpha", "  beta  ", "gamma"]


def test_jsonl_with_bom_and_crlf(tmp_path):
    p = write(tmp_path / "in.jsonl", b'\xef\xbb\xbf{"text": "one"}\r\n{"text": "caf\\u00e9"}\r\n')
    assert list(iter_texts(p)) == ["one", "café"]


def test_jsonl_skips_blank_texts(tmp_path):
    p = write(tmp_path / "in.jsonl", '{"text": ""}\n{"text": "kept"}\n{"text": "   "}\n')
    assert list(iter_texts(p)) == ["kept"]


def test_jsonl_malformed_line_names_file_and_line(tmp_path):
    p = write(tmp_path / "m.jsonl", '{"text": "ok"}\n\n{"text": oops}\n')
    with pytest.raises(BadInput) as err:
        list(iter_texts(p))
    msg = str(err.value)
    assert msg.startswith("malformed JSON") and "m.jsonl" in msg and "line 3" in msg


def test_jsonl_missing_text_field_lists_keys(tmp_path):
    p = write(tmp_path / "k.jsonl", '{"text": "ok"}\n{"body": "x", "id": 2}\n')
    with pytest.raises(BadInput) as err:
        list(iter_texts(p))
    msg = str(err.value)
    assert 'missing "text"' in msg and "k.jsonl" in msg and "line 2" in msg
    assert "body" in msg and "id" in msg


@pytest.mark.parametrize("value, kind", [("3", "number"), ("null", "null"), ('["a"]', "array")])
def test_jsonl_non_string_text_is_refused(tmp_path, value, kind):
    p = write(tmp_path / "n.jsonl", f'{{"text": {value}}}\n')
    with pytest.raises(BadInput) as err:
        list(iter_texts(p))
    msg = str(err.value)
    assert "not a string" in msg and kind in msg and "n.jsonl" in msg and "line 1" in msg


def test_jsonl_line_that_is_not_an_object_is_refused(tmp_path):
    p = write(tmp_path / "a.jsonl", '["text"]\n')
    with pytest.raises(BadInput, match=r"JSON object.*a\.jsonl line 1"):
        list(iter_texts(p))


def test_jsonl_undecodable_bytes_name_the_line(tmp_path):
    p = write(tmp_path / "b.jsonl", b'{"text": "ok"}\n{"text": "\xc3("}\n')
    with pytest.raises(BadInput, match=r"b\.jsonl line 2 is not valid UTF-8"):
        list(iter_texts(p))


# -- .csv -----------------------------------------------------------------------------


def test_csv_reads_the_text_column(tmp_path):
    p = write(tmp_path / "in.csv", 'id,text,label\n1,hello world,a\n2,"with, comma",b\n')
    assert list(iter_texts(p)) == ["hello world", "with, comma"]


def test_csv_quoted_field_may_span_lines(tmp_path):
    p = write(tmp_path / "in.csv", 'text\n"line one\nline two"\nnext\n')
    assert list(iter_texts(p)) == ["line one\nline two", "next"]


def test_csv_with_bom_header_still_finds_text_column(tmp_path):
    p = write(tmp_path / "bom.csv", b"\xef\xbb\xbftext,n\r\nfirst,1\r\nsecond,2\r\n")
    assert list(iter_texts(p)) == ["first", "second"]


def test_csv_skips_blank_rows_and_blank_texts(tmp_path):
    p = write(tmp_path / "in.csv", "text,n\nkept,1\n\n,2\nalso,3\n")
    assert list(iter_texts(p)) == ["kept", "also"]


def test_csv_without_text_column_lists_the_columns(tmp_path):
    p = write(tmp_path / "cols.csv", "sentence,label\nhi,1\n")
    with pytest.raises(BadInput) as err:
        list(iter_texts(p))
    msg = str(err.value)
    assert msg.startswith('no "text" column') and "cols.csv" in msg
    assert "sentence" in msg and "label" in msg


def test_csv_short_row_names_file_and_line(tmp_path):
    p = write(tmp_path / "short.csv", "id,text\n1,ok\n2\n")
    with pytest.raises(BadInput) as err:
        list(iter_texts(p))
    msg = str(err.value)
    assert "short.csv" in msg and "line 3" in msg


def test_csv_accepts_fields_longer_than_the_csv_module_default(tmp_path):
    big = "w" * 200_000  # csv's own default field limit is 131,072
    p = write(tmp_path / "big.csv", f"text\n{big}\n")
    assert list(iter_texts(p)) == [big]


def test_csv_undecodable_bytes_name_file_and_line(tmp_path):
    p = write(tmp_path / "u.csv", b"text\nfine\nbro\xffken\n")
    with pytest.raises(BadInput, match=r"u\.csv line 3 is not valid UTF-8"):
        list(iter_texts(p))


# -- streaming ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_txt(tmp_path_factory):
    p = tmp_path_factory.mktemp("big") / "big.txt"
    with open(p, "w", encoding="utf-8") as fh:
        for i in range(200_000):
            fh.write(f"sentence number {i} with a few extra words to pad it out\n")
    return p


def test_iter_texts_returns_a_generator(big_txt):
    gen = iter_texts(big_txt)
    assert isinstance(gen, types.GeneratorType)
    gen.close()


def test_first_text_arrives_without_reading_the_whole_file(big_txt):
    assert big_txt.stat().st_size > 10_000_000
    tracemalloc.start()
    try:
        gen = iter_texts(big_txt)
        first = next(gen)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    gen.close()
    assert first == "sentence number 0 with a few extra words to pad it out"
    assert peak < 5_000_000


def test_count_texts_counts_without_storing(big_txt):
    tracemalloc.start()
    try:
        n = count_texts(big_txt)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n == 200_000
    assert peak < 5_000_000


def test_count_texts_matches_iter_texts(tmp_path):
    p = write(tmp_path / "c.jsonl", '{"text": "a"}\n\n{"text": ""}\n{"text": "b"}\n')
    assert count_texts(p) == len(list(iter_texts(p))) == 2


def test_read_texts_with_limit_stops_reading_early(big_txt):
    tracemalloc.start()
    try:
        got = read_texts(None, str(big_txt), limit=3)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(got) == 3
    assert peak < 5_000_000


# -- read_texts -----------------------------------------------------------------------


def test_read_texts_with_neither_uses_the_default_corpus():
    assert read_texts(None, None) == default_corpus()


def test_read_texts_empty_sequence_counts_as_not_given():
    assert read_texts((), None) == default_corpus()


def test_read_texts_limit_applies_to_the_default_corpus():
    assert read_texts(None, None, limit=5) == default_corpus()[:5]


def test_read_texts_texts_only():
    assert read_texts(["one", "two"], None) == ["one", "two"]


def test_read_texts_puts_texts_before_the_file(tmp_path):
    p = write(tmp_path / "f.txt", "from file 1\nfrom file 2\n")
    assert read_texts(["cli"], str(p)) == ["cli", "from file 1", "from file 2"]


def test_read_texts_file_only(tmp_path):
    p = write(tmp_path / "f.csv", "text\nx\ny\n")
    assert read_texts(None, str(p)) == ["x", "y"]


def test_read_texts_limit_counts_texts_first(tmp_path):
    p = write(tmp_path / "f.txt", "f1\nf2\nf3\n")
    assert read_texts(["a", "b"], str(p), limit=3) == ["a", "b", "f1"]
    assert read_texts(["a", "b", "c"], str(p), limit=2) == ["a", "b"]


def test_read_texts_does_not_open_file_when_texts_fill_the_limit(tmp_path):
    p = write(tmp_path / "bad.txt", b"\xff\n")
    assert read_texts(["a"], str(p), limit=1) == ["a"]


def test_read_texts_still_refuses_a_missing_file_even_with_texts(tmp_path):
    with pytest.raises(BadInput, match="not found"):
        read_texts(["a"], str(tmp_path / "missing.txt"))


def test_read_texts_empty_file_is_refused_naming_it(tmp_path):
    p = write(tmp_path / "empty.txt", "\n\n  \n")
    with pytest.raises(BadInput) as err:
        read_texts(None, str(p))
    msg = str(err.value)
    assert msg.startswith("no texts:") and "empty.txt" in msg and "is empty" in msg


def test_read_texts_blank_texts_only_is_refused():
    with pytest.raises(BadInput, match="^no texts:"):
        read_texts(["", "   "], None)


def test_read_texts_blank_texts_and_empty_file_is_refused(tmp_path):
    p = write(tmp_path / "e.jsonl", "")
    with pytest.raises(BadInput, match=r"^no texts:.*e\.jsonl is empty"):
        read_texts([" "], str(p))


@pytest.mark.parametrize("limit", [0, -1])
def test_read_texts_refuses_a_limit_below_one(limit):
    with pytest.raises(BadInput, match="limit"):
        read_texts(["a"], None, limit=limit)


def test_read_texts_refuses_an_overlong_text():
    with pytest.raises(BadInput, match="longer than"):
        read_texts(["x" * (MAX_TEXT_CHARS + 1)], None)


def test_read_texts_propagates_file_errors(tmp_path):
    p = write(tmp_path / "bad.jsonl", "{nope\n")
    with pytest.raises(BadInput, match=r"bad\.jsonl line 1"):
        read_texts(["fine"], str(p))


def test_error_messages_are_one_line(tmp_path):
    p = write(tmp_path / "bad.jsonl", '{"text": 1}\n')
    with pytest.raises(BadInput) as err:
        list(iter_texts(p))
    assert "\n" not in str(err.value)


def test_module_logger_is_named_after_the_module():
    assert T.log.name == "padlens.inspector.inputs.texts"
