"""Every bad input of every command: one exact `Error:` line, exit 2, no traceback, nothing touched.

One table, ``CATALOGUE``, lists them all (the bad inputs issues 2–4 name, and the ones
found since). Each row runs ``python -m padlens`` in a folder of prepared inputs (the
``world`` fixture) and compares the whole of stderr with the expected line. Inside an
expected line, ``{n}`` stands for a number and ``{dep}`` for text quoted from a
dependency (tokenizers, click); everything else must match character for character.
"""
from __future__ import annotations

import logging
import re

import onnxruntime as ort
import pytest

from tests.hardening.conftest import padlens, snapshot

log = logging.getLogger(__name__)

E = "export"  # the good export dir inside the world folder
PROVIDERS = ", ".join(ort.get_available_providers())
SUPPORTED = "bert, distilbert, electra, modernbert, mpnet, qwen2, qwen3, roberta, xlm-roberta"
RECIPES = ("all-mpnet-base-v2, bert-base-uncased, bge-small-en-v1.5, distilbert-base-uncased, "
           "e5-small-v2, electra-base-discriminator, gte-modernbert-base, minilm-l6, modernbert-base, "
           "nomic-embed-text-v1.5, qwen3-embedding-0.6b, roberta-base, xlm-roberta-base")
KNOWN_PROVIDERS = "coreml, cpu, cuda, directml, dml, dnnl, gpu, migraphx, openvino, qnn, rocm, tensorrt, trt, webgpu, xnnpack"
TOLERANCES = ("padding_invariance, padding_invariance.delta, batch_neighbour_invariance, "
              "batch_neighbour_invariance.delta, mask_honoured, mask_honoured.delta, fully_masked_row, "
              "fully_masked_row.delta, position_ids_follow_mask, position_ids_follow_mask.delta, "
              "last_token_pooling, last_token_pooling.delta, left_padding, left_padding.delta, mask_honoured_other_side, "
              "mask_honoured_other_side.delta, reference_drift, reference_drift.fp32, reference_drift.fp16, "
              "reference_drift.int8, reference_drift.int4")
NOT_PROTOBUF = "is not an ONNX model: its bytes do not parse as an ONNX protobuf (truncated, or another format)"
NO_LAYERS = ("tok/no_layers.onnx: found no normalisation nodes behind output 'emb'; searched for "
             "post-norm blocks (LayerNormalization, plain or ORT Skip/Embed fused, or decomposed "
             "ReduceMean-Sub-Pow-ReduceMean-Sqrt-Div, one per residual step) or a pre-norm residual chain "
             "(Add or Skip[Simplified]LayerNormalization sums, a LayerNorm or RMSNorm before the output), "
             "delimited by attention (Softmax over keys, or a fused Attention op); read as a pre-norm graph: "
             "found no residual sums behind output 'emb'. Name the tensors with --layers NAME,...")

# (id, argv, expected stderr line without "Error: ")
CATALOGUE = [
    # ---- inspect: models
    ("inspect-missing-model", ["inspect", "nope.onnx"], "nope.onnx does not exist"),
    ("inspect-folder-without-onnx", ["inspect", "empty"],
     "empty has no padlens.json and no .onnx file: pass an export dir or a .onnx file"),
    ("inspect-text-file-as-onnx", ["inspect", "tok/model.onnx"], f"tok/model.onnx {NOT_PROTOBUF}"),
    ("inspect-random-bytes-as-onnx", ["inspect", "tok/notonnx.onnx"], f"tok/notonnx.onnx {NOT_PROTOBUF}"),
    ("inspect-truncated-onnx", ["inspect", "tok/truncated.onnx"], f"tok/truncated.onnx {NOT_PROTOBUF}"),
    ("inspect-no-integer-token-input", ["inspect", "tok/float_input.onnx"],
     "tok/float_input.onnx is not a token encoder: no integer input_ids input (inputs: x)"),
    ("inspect-no-token-states", ["inspect", "tok/pooled.onnx"],
     "tok/pooled.onnx is not a token encoder: no [batch, sequence, hidden] float output (outputs: pooled)"),
    ("inspect-no-layers-located", ["inspect", "tok/no_layers.onnx"], NO_LAYERS),
    ("inspect-custom-op-domain", ["inspect", "tok/custom_op.onnx"],
     "tok/custom_op.onnx uses op 'Pwn' from domain 'com.example.evil', which needs a custom-op "
     "library; padlens never loads custom-op libraries"),
    ("inspect-bare-onnx-without-tokenizer", ["inspect", "bare/model.onnx"],
     "bare/model.onnx has no tokenizer next to it: pass --tokenizer PATH"),
    ("inspect-tokenizer-missing", ["inspect", "bare/model.onnx", "--tokenizer", "nope"],
     "tokenizer nope does not exist"),
    ("inspect-tokenizer-folder-without-tokenizer", ["inspect", "bare/model.onnx", "--tokenizer", "notok"],
     "notok holds no tokenizer.json (nor a vocab.txt for a BERT WordPiece tokenizer)"),
    ("inspect-tokenizer-json-malformed", ["inspect", "bare/model.onnx", "--tokenizer", "badtok"],
     "tokenizer badtok/tokenizer.json cannot be read: {dep}"),
    ("inspect-tokenizer-larger-than-embedding-table", ["inspect", "small_vocab"],
     "the tokenizer small_vocab has {n} tokens but small_vocab/model's embedding table has 10 rows: "
     "pass the model's own tokenizer"),
    # ---- inspect: padlens.json
    ("inspect-manifest-not-json", ["inspect", "man_json"],
     "man_json/padlens.json is not valid JSON: Expecting property name enclosed in double quotes: "
     "line 1 column 2 (char 1)"),
    ("inspect-manifest-not-an-object", ["inspect", "man_list"],
     'man_list/padlens.json is malformed: expected a non-empty "precisions" object'),
    ("inspect-manifest-no-precisions", ["inspect", "man_noprec"],
     'man_noprec/padlens.json is malformed: expected a non-empty "precisions" object'),
    ("inspect-manifest-precision-without-file", ["inspect", "man_nofile"],
     'man_nofile/padlens.json is malformed: precision \'fp32\' needs a "file" string'),
    ("inspect-manifest-file-outside-folder", ["inspect", "man_escape"],
     "man_escape/padlens.json is malformed: precision 'fp32' points outside the folder"),
    ("inspect-manifest-file-missing", ["inspect", "man_missing"],
     "man_missing/padlens.json lists fp32 as gone.onnx, which is missing"),
    # ---- inspect: texts
    ("inspect-texts-missing", ["inspect", E, "--texts", "nope.txt"], "text file not found: nope.txt"),
    ("inspect-texts-folder", ["inspect", E, "--texts", "texts/folder.txt"],
     "texts/folder.txt is a folder, expected a text file"),
    ("inspect-texts-empty", ["inspect", E, "--texts", "texts/empty.txt"], "no texts: texts/empty.txt is empty"),
    ("inspect-texts-only-blank-lines", ["inspect", E, "--texts", "texts/blank.txt"],
     "no texts: texts/blank.txt is empty"),
    ("inspect-text-blank", ["inspect", E, "--text", "   "], "no texts: every --text value is blank"),
    ("inspect-texts-not-utf8", ["inspect", E, "--texts", "texts/latin1.txt"],
     "texts/latin1.txt line 1 is not valid UTF-8 (byte 0xe9 at byte offset 3)"),
    ("inspect-jsonl-malformed", ["inspect", E, "--texts", "texts/broken.jsonl"],
     "malformed JSON in texts/broken.jsonl line 2: Expecting ',' delimiter (column 1)"),
    ("inspect-jsonl-text-not-string", ["inspect", E, "--texts", "texts/number.jsonl"],
     '"text" is a number, not a string, in texts/number.jsonl line 1'),
    ("inspect-jsonl-no-text-field", ["inspect", E, "--texts", "texts/nofield.jsonl"],
     'missing "text" field in texts/nofield.jsonl line 1 (keys found: body, id)'),
    ("inspect-jsonl-not-object", ["inspect", E, "--texts", "texts/array.jsonl"],
     "expected a JSON object in texts/array.jsonl line 1, got an array"),
    ("inspect-csv-no-text-column", ["inspect", E, "--texts", "texts/nocol.csv"],
     "no \"text\" column in texts/nocol.csv (columns found: 'id', 'body')"),
    ("inspect-csv-short-row", ["inspect", E, "--texts", "texts/short.csv"],
     'missing "text" value in texts/short.csv line 2: the row has fewer fields than the header'),
    # ---- inspect: options
    ("inspect-max-length-beyond-positions", ["inspect", E, "--max-length", "1000"],
     "--max-length 1000 is beyond export/fp32's 64 position embeddings"),
    ("inspect-max-length-too-small", ["inspect", E, "--max-length", "1"],
     "--max-length must be at least 2 (room for [CLS] and [SEP]), got 1"),
    ("inspect-negative-batch-size", ["inspect", E, "--batch-size", "-1"], "--batch-size must be at least 1, got -1"),
    ("inspect-zero-threads", ["inspect", E, "--threads", "0"], "--threads must be at least 1, got 0"),
    ("inspect-unknown-provider", ["inspect", E, "--provider", "foo"],
     f"unknown provider 'foo'; known: {KNOWN_PROVIDERS}, or any ONNX Runtime provider name such as "
     "CUDAExecutionProvider"),
    ("inspect-unavailable-provider", ["inspect", E, "--provider", "cuda"],
     f"provider cuda (CUDAExecutionProvider) is not available in this onnxruntime build (available: "
     f"{PROVIDERS}); install padlens[gpu] (onnxruntime-gpu) in place of onnxruntime, with matching "
     "CUDA and cuDNN libraries"),
    ("inspect-layers-unknown-tensors", ["inspect", E, "--layers", "a,b"],
     "export/model.onnx: --layers names tensor(s) not in the graph: 'a', 'b'"),
    ("inspect-layers-empty-name", ["inspect", E, "--layers", "a,,b"],
     "--layers needs comma-separated tensor names, got 'a,,b'"),
    ("inspect-json-into-missing-folder", ["inspect", E, "--json", "nowhere/x.json"],
     "--json nowhere/x.json: folder nowhere does not exist"),
    ("inspect-json-onto-folder", ["inspect", E, "--json", "empty"], "--json empty is a folder, expected a file path"),
    ("inspect-bad-choice", ["inspect", E, "--pad-to", "foo"],
     "Invalid value for '--pad-to': 'foo' is not one of 'max-length', 'longest'. (see 'padlens inspect --help')"),
    ("unknown-command", ["inspekt", E], "No such command 'inspekt'. Did you mean 'inspect'? (see 'padlens --help')"),
    # ---- audit
    ("audit-missing-model", ["audit", "nope.onnx"], "nope.onnx does not exist"),
    ("audit-unknown-tolerance", ["audit", E, "--tolerance", "foo=1"], f"unknown tolerance 'foo'; known: {TOLERANCES}"),
    ("audit-tolerance-not-a-number", ["audit", E, "--tolerance", "padding_invariance=abc"],
     "tolerance padding_invariance='abc' is not a number"),
    ("audit-tolerance-not-name-value", ["audit", E, "--tolerance", "padding_invariance"],
     "--tolerance 'padding_invariance' is not NAME=VALUE (e.g. padding_invariance=0.9999)"),
    ("audit-json-into-missing-folder", ["audit", E, "--json", "nowhere/a.json"],
     "--json nowhere/a.json: folder nowhere does not exist"),
    ("audit-junit-onto-folder", ["audit", E, "--junit", "empty"], "--junit empty is a folder, expected a file path"),
    ("audit-max-length-beyond-positions", ["audit", E, "--max-length", "1000"],
     "--max-length 1000 is beyond export/fp32's 64 position embeddings"),
    ("audit-truncated-onnx", ["audit", "tok/truncated.onnx"], f"tok/truncated.onnx {NOT_PROTOBUF}"),
    # ---- embed
    ("embed-output-onto-folder", ["embed", E, "--texts", "notes.txt", "-o", "empty"],
     "-o empty is a folder, expected a file path"),
    ("embed-output-into-missing-folder", ["embed", E, "--texts", "notes.txt", "-o", "nowhere/e.npy"],
     "-o nowhere/e.npy: folder nowhere does not exist"),
    ("embed-texts-missing", ["embed", E, "--texts", "nope.txt", "-o", "e.npy"], "text file not found: nope.txt"),
    ("embed-texts-empty", ["embed", E, "--texts", "texts/empty.txt", "-o", "e.npy"],
     "no texts: texts/empty.txt is empty"),
    ("embed-texts-malformed-jsonl", ["embed", E, "--texts", "texts/broken.jsonl", "-o", "e.npy"],
     "malformed JSON in texts/broken.jsonl line 2: Expecting ',' delimiter (column 1)"),
    ("embed-unknown-pooling", ["embed", E, "--texts", "notes.txt", "-o", "e.npy", "--pooling", "foo"],
     "Invalid value for '--pooling': 'foo' is not one of 'auto', 'mean', 'cls', 'max', 'mean_sqrt_len_tokens', "
     "'weightedmean', 'lasttoken'. (see 'padlens embed --help')"),
    ("embed-negative-batch-size", ["embed", E, "--texts", "notes.txt", "-o", "e.npy", "--batch-size", "-1"],
     "--batch-size must be at least 1, got -1"),
    ("embed-max-length-beyond-positions", ["embed", E, "--texts", "notes.txt", "-o", "e.npy", "--max-length", "1000"],
     "--max-length 1000 is beyond export/fp32's 64 position embeddings"),
    ("embed-bare-onnx-without-tokenizer", ["embed", "bare/model.onnx", "--texts", "notes.txt", "-o", "e.npy"],
     "bare/model.onnx has no tokenizer next to it: pass --tokenizer PATH"),
    ("embed-tokenizer-missing", ["embed", "bare/model.onnx", "--texts", "notes.txt", "-o", "e.npy",
                                 "--tokenizer", "nope"], "tokenizer nope does not exist"),
    ("embed-unavailable-provider", ["embed", E, "--texts", "notes.txt", "-o", "e.npy", "--provider", "cuda"],
     f"provider cuda (CUDAExecutionProvider) is not available in this onnxruntime build (available: "
     f"{PROVIDERS}); install padlens[gpu] (onnxruntime-gpu) in place of onnxruntime, with matching "
     "CUDA and cuDNN libraries"),
    ("embed-not-onnx", ["embed", "tok/model.onnx", "--texts", "notes.txt", "-o", "e.npy"],
     f"tok/model.onnx {NOT_PROTOBUF}"),
    # ---- export (tiny local folders only, never the hub)
    ("export-unknown-recipe-or-path", ["export", "nosuchrecipe", "-o", "out"],
     f"unknown recipe or path 'nosuchrecipe': not a recipe ({RECIPES}), not a folder, not a hub id (org/name)"),
    ("export-folder-not-hf-model", ["export", "not_hf", "-o", "out"],
     "not_hf is not a Hugging Face model folder (no config.json)"),
    ("export-unsupported-architecture", ["export", "gpt2", "-o", "out"],
     f"gpt2: architecture 'gpt2' cannot be exported as an encoder; supported: {SUPPORTED}; with --backend torch "
     "also nomic_bert (and, unvalidated, any other that transformers' AutoModel loads and torch.export traces)"),
    ("export-calibration-missing", ["export", "minilm-l6", "-o", "out", "--calibration-texts", "nope.txt"],
     "text file not found: nope.txt"),
    ("export-calibration-empty", ["export", "minilm-l6", "-o", "out", "--calibration-texts", "texts/empty.txt"],
     "no texts: texts/empty.txt is empty"),
    ("export-non-empty-output", ["export", "minilm-l6", "-o", "full"], "full is not empty; pass --force to replace it"),
    ("export-output-is-a-file", ["export", "minilm-l6", "-o", "notes.txt"],
     "Invalid value for '-o' / '--output': Directory 'notes.txt' is a file. (see 'padlens export --help')"),
    ("export-unknown-precision", ["export", "minilm-l6", "-o", "out", "--precision", "int9"],
     "Invalid value for '--precision': 'int9' is not one of 'fp32', 'fp16', 'int8-dynamic', 'int8-static'. "
     "(see 'padlens export --help')"),
    # ---- models, demo
    ("models-unknown-option", ["models", "--bogus"], "No such option '--bogus'. (see 'padlens models --help')"),
    ("demo-output-is-a-file", ["demo", "-o", "notes.txt"],
     "Invalid value for '-o' / '--output': Directory 'notes.txt' is a file. (see 'padlens demo --help')"),
    ("demo-folder-with-foreign-files", ["demo", "-o", "demo_dir"],
     "demo_dir holds files the demo did not write (thesis.tex); choose another -o DIR or pass --force"),
]

NEEDS = {"inspect-unavailable-provider": "CUDAExecutionProvider", "embed-unavailable-provider": "CUDAExecutionProvider"}


def expected_pattern(line: str) -> re.Pattern:
    """The expected stderr: exactly ``Error: line``, with {n} a number and {dep} a dependency's words."""
    parts = re.split(r"(\{n\}|\{dep\})", "Error: " + line)
    body = "".join({"{n}": r"\d+", "{dep}": r"[^\n]+"}.get(p, re.escape(p)) for p in parts)
    return re.compile(body + r"\n")


def test_the_catalogue_ids_are_unique_and_cover_every_command():
    ids = [row[0] for row in CATALOGUE]
    assert len(ids) == len(set(ids))
    commands = {row[1][0] for row in CATALOGUE}
    assert {"inspect", "audit", "embed", "export", "models", "demo"} <= commands


@pytest.mark.parametrize("case_id,argv,expected", CATALOGUE, ids=[row[0] for row in CATALOGUE])
def test_each_bad_input_gives_one_exact_error_line_exit_2_and_touches_nothing(world, case_id, argv,
                                                                                expected):
    needs = NEEDS.get(case_id)
    if needs and needs in ort.get_available_providers():
        pytest.skip(f"{needs} is available here, so it is not a bad input")
    before = snapshot(world)
    proc = padlens(*argv, cwd=world)
    after = snapshot(world)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert expected_pattern(expected).fullmatch(proc.stderr), (
        f"\nexpected: Error: {expected}\n     got: {proc.stderr}")
    assert proc.returncode == 2
    assert after == before, f"files changed: {set(after.items()) ^ set(before.items())}"
