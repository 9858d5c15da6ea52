"""The library names parameters in its messages; the command line says the flags (``cli_options.as_flags``)."""
from __future__ import annotations

import logging

import pytest

from padlens.cli import FlagWords
from padlens.cli_options import as_flags

# (the library's words, what `padlens ...` prints)
MESSAGES = [
    ("max_length must be at least 2 (room for [CLS] and [SEP]), got 1",
     "--max-length must be at least 2 (room for [CLS] and [SEP]), got 1"),
    ("max_length 1000 is beyond m's 64 position embeddings", "--max-length 1000 is beyond m's 64 position embeddings"),
    ('workers needs engine="ray"', "--workers needs --engine ray"),
    ("Name the tensors with layers=[NAME, ...]", "Name the tensors with --layers NAME,..."),
    ('use pooling="auto" to take its sentence_embedding as it is',
     "use --pooling auto to take its sentence_embedding as it is"),
    ("the batch has 70: pass max_length=64 or less", "the batch has 70: pass --max-length 64 or less"),
    ("try batch_size=1, or max_length set to the length the file was exported at",
     "try --batch-size 1, or --max-length set to the length the file was exported at"),
    ("too little even for one text: pass a smaller max_length",
     "too little even for one text: pass a smaller --max-length"),
    ("(asked for cuda); pass allow_fallback=True to accept this", "(asked for cuda); pass --allow-fallback to accept this"),
    ("m.onnx exists: pass force=True to replace it", "m.onnx exists: pass --force to replace it"),
    ("full is not empty; pass force=True to replace it", "full is not empty; pass --force to replace it"),
    ("out=m.txt: the output must be an .onnx file", "-o m.txt: the output must be an .onnx file"),
    ("out=empty is a folder, expected a file path", "-o empty is a folder, expected a file path"),
    ("keep_text needs a Parquet output folder (out=DIR), not a .npy file",
     "--keep-text needs a Parquet output folder (-o DIR), not a .npy file"),
    ("f has no Pooling module: pass pooling", "f has no Pooling module: pass --pooling"),
    ('engine="ray" reads a corpus: pass texts_file=FILE, FOLDER or GLOB, not texts',
     "--engine ray reads a corpus: pass --texts FILE, FOLDER or GLOB, not --text"),
    ("texts value 2 is int, not a string", "--text value 2 is int, not a string"),
    ("no texts: every texts value is blank", "no texts: every --text value is blank"),
    ("no \"text\" column in c.csv (columns found: 'body'): pass text_column",
     "no \"text\" column in c.csv (columns found: 'body'): pass --text-column"),
    ("m.onnx has no tokenizer next to it: pass tokenizer=PATH", "m.onnx has no tokenizer next to it: pass --tokenizer PATH"),
    ('ray_address="auto": cannot join a Ray cluster: refused', "--ray-address auto: cannot join a Ray cluster: refused"),
    ('provider="cuda" with engine="ray" needs 2 GPU(s) in the Ray cluster, and it has 0',
     "--provider cuda with --engine ray needs 2 GPU(s) in the Ray cluster, and it has 0"),
    ("tolerance 'padding_invariance' is not NAME=VALUE (e.g. padding_invariance=0.9999)",
     "--tolerance 'padding_invariance' is not NAME=VALUE (e.g. padding_invariance=0.9999)"),
]

# words that look like parameters but are not: left as they are
UNTOUCHED = [
    "padding must be one of max_length, longest, got 'x'",
    "provider cuda (CUDAExecutionProvider) is not available in this onnxruntime build",
    "tokenizer nope does not exist",
    "tolerance padding_invariance='abc' is not a number",
    "the tokenizer config's padding_side is left",
]


@pytest.mark.parametrize("library, cli", MESSAGES)
def test_a_library_message_reads_with_flags_on_the_command_line(library, cli):
    assert as_flags(library) == cli


@pytest.mark.parametrize("message", UNTOUCHED)
def test_words_that_only_look_like_parameters_are_left_alone(message):
    assert as_flags(message) == message


def test_padlens_log_lines_name_flags_other_loggers_are_left_alone():
    records = [logging.LogRecord(name, logging.WARNING, __file__, 1, "padding on the %s (pass padding_side to choose)",
                                 ("right",), None) for name in ("padlens.inspector.steps", "elsewhere")]
    for record in records:
        assert FlagWords().filter(record)
    assert [r.getMessage() for r in records] == ["padding on the right (pass --padding-side to choose)",
                                                 "padding on the right (pass padding_side to choose)"]
