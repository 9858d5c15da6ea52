"""Fixtures for the study's tests: a ModelStudy with known numbers, a small topic corpus (the MiniLM
export is tests/conftest.py's session-wide ``minilm_export``, made in a subprocess: tests/inspector
blocks torch in this process)."""
from __future__ import annotations

import pytest

TOPIC_WORDS = {
    "animals": ["the cat sat on the mat", "a dog and a cat", "the dog sat", "cat and dog on a mat",
                "a cat was there", "the dog was on the mat", "we have a dog", "this cat is short",
                "a dog sat with the cat", "the cat and the dog were there", "one dog", "the mat cat"],
    "text": ["this is a sample sentence", "a short text", "the long word", "padding a text",
             "what is a token", "this sentence is long", "a word in the text", "the model and the token",
             "text with padding", "one short sentence", "which word", "the text is short"],
    "model": ["the model has a pad token", "pad the model", "a model for text", "the pad token was long",
              "padding for the model", "model of the pad", "a token pad", "the model is short",
              "pad and token", "which model", "the token model", "a long pad"],
}


@pytest.fixture(scope="session")
def topic_file(tmp_path_factory):
    """A TOPIC<TAB>TEXT corpus of 36 short texts in 3 topics (the tiny models' vocabulary)."""
    f = tmp_path_factory.mktemp("study-corpus") / "topics.tsv"
    f.write_text("".join(f"{topic}\t{text}\n" for topic, texts in TOPIC_WORDS.items() for text in texts),
                 encoding="utf-8")
    return f
