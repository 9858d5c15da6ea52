"""The topic corpus: the bundled one ships with the package, a user's is checked line by line."""
from __future__ import annotations

import pytest

from padlens.errors import BadInput
from padlens.inspector.study.corpus import parse_corpus, read_corpus


def test_bundled_corpus_has_six_topics_of_twenty_five_short_texts():
    corpus = read_corpus()
    assert corpus.name == "topics.txt"
    assert corpus.counts() == {name: 25 for name in
                               ("cooking", "football", "astronomy", "programming", "banking", "music")}
    assert len(set(corpus.texts)) == len(corpus.texts) == 150
    assert max(len(t.split()) for t in corpus.texts) <= 20
    assert corpus.labels[:2] == [0, 0] and corpus.labels[-1] == 5


@pytest.mark.parametrize("text, words", [
    ("a\tone\na\ttwo\n", "needs at least 2"),
    ("a\tone\nno tab here\n", "line 2: expected TOPIC<TAB>TEXT"),
    ("a\tone\na\ttwo\nb\tthree\n", "fewer than 2 texts"),
    ("a\tone\n \tx\n", "line 2"),
])
def test_a_malformed_corpus_is_refused_with_its_line(text, words):
    with pytest.raises(BadInput, match=words):
        parse_corpus(text, "mine.tsv")


def test_comments_and_blank_lines_are_skipped():
    corpus = parse_corpus("# topics\n\na\tone  text\na\ttwo\nb\tthree\nb\tfour\n", "mine.tsv")
    assert corpus.texts == ("one text", "two", "three", "four") and corpus.names == ("a", "b")


def test_a_missing_corpus_file_is_bad_input(tmp_path):
    with pytest.raises(BadInput, match="is not a file"):
        read_corpus(tmp_path / "nope.tsv")
