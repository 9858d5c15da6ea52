"""Fuzzing loading and input planning: mutated ONNX, tokenizers, manifests and text files.

Whatever the bytes, padlens either works or raises PadlensError; nothing else escapes.
Examples are bounded (``max_examples``) so the module runs in CI in well under a minute.
"""
from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from padlens.errors import PadlensError
from padlens.inspector.inputs.resolve import ModelRef, read_manifest, resolve_models
from padlens.inspector.inputs.texts import iter_texts, read_texts
from padlens.inspector.inputs.tokenize import load_tokenizer
from padlens.inspector.model.graph import load_encoder
from padlens.inspector.runtime.encoder import Encoder

log = logging.getLogger(__name__)

FUZZ = settings(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def fuzz(examples: int) -> settings:
    """The shared fuzz settings with ``examples`` examples (deterministic, no example database)."""
    return settings(FUZZ, max_examples=examples)


@pytest.fixture(scope="module")
def export(zoo) -> Path:
    return zoo("padlens")


@pytest.fixture(scope="module")
def onnx_bytes(export) -> bytes:
    return (export / "model.onnx").read_bytes()


def scratch() -> Path:
    return Path(tempfile.mkdtemp(prefix="padlens-fuzz-"))


# ---------------------------------------------------------------- byte mutations

@st.composite
def mutated(draw, data: bytes) -> bytes:
    """``data`` with a few bytes flipped, a slice cut out, a splice repeated, or truncated."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "cut", "splice", "insert"]))
        n = len(out)
        if n < 2:
            break
        i = draw(st.integers(0, n - 1))
        if kind == "flip":
            out[i] ^= draw(st.integers(1, 255))
        elif kind == "truncate":
            del out[i:]
        elif kind == "cut":
            del out[i:i + draw(st.integers(1, 64))]
        elif kind == "splice":
            j = draw(st.integers(0, n - 1))
            out[i:i] = out[j:j + draw(st.integers(1, 64))]
        else:
            out[i:i] = draw(st.binary(min_size=1, max_size=16))
    return bytes(out)


@st.composite
def edited_model(draw, data: bytes) -> bytes:
    """``data`` parsed as ONNX, with a few structural edits that keep it a valid protobuf."""
    import onnx
    from onnx import TensorProto

    model = onnx.load_from_string(data)
    g = model.graph
    names = sorted({n for node in g.node for n in [*node.input, *node.output]} | {i.name for i in g.input})
    ops = sorted({node.op_type for node in g.node} | {"Softmax", "LayerNormalization", "Identity", "Loop"})
    types = [TensorProto.FLOAT, TensorProto.INT64, TensorProto.INT32, TensorProto.FLOAT16, TensorProto.STRING,
             TensorProto.BOOL, TensorProto.UNDEFINED]
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["drop_node", "rewire", "op_type", "input_type", "output_type",
                                     "init_dims", "drop_output", "drop_input", "opset", "attr", "domain"]))
        if kind == "drop_node" and len(g.node) > 1:
            del g.node[draw(st.integers(0, len(g.node) - 1))]
        elif kind == "rewire" and g.node:
            node = g.node[draw(st.integers(0, len(g.node) - 1))]
            if node.input:
                node.input[draw(st.integers(0, len(node.input) - 1))] = draw(st.sampled_from(names + ["", "ghost"]))
        elif kind == "op_type" and g.node:
            g.node[draw(st.integers(0, len(g.node) - 1))].op_type = draw(st.sampled_from(ops))
        elif kind == "input_type" and g.input:
            g.input[draw(st.integers(0, len(g.input) - 1))].type.tensor_type.elem_type = draw(st.sampled_from(types))
        elif kind == "output_type" and g.output:
            g.output[draw(st.integers(0, len(g.output) - 1))].type.tensor_type.elem_type = draw(st.sampled_from(types))
        elif kind == "init_dims" and g.initializer:
            init = g.initializer[draw(st.integers(0, len(g.initializer) - 1))]
            del init.dims[:]
            init.dims.extend(draw(st.lists(st.integers(0, 300), max_size=3)))
        elif kind == "drop_output" and g.output:
            del g.output[draw(st.integers(0, len(g.output) - 1))]
        elif kind == "drop_input" and g.input:
            del g.input[draw(st.integers(0, len(g.input) - 1))]
        elif kind == "opset":
            model.opset_import[0].version = draw(st.integers(-1, 40))
        elif kind == "attr" and g.node:
            node = g.node[draw(st.integers(0, len(g.node) - 1))]
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.INT:
                    attr.i = draw(st.integers(-5, 5))
                elif attr.type == onnx.AttributeProto.FLOAT:
                    attr.f = draw(st.floats(allow_nan=True))
        elif kind == "domain" and g.node:
            g.node[draw(st.integers(0, len(g.node) - 1))].domain = draw(st.sampled_from(["com.microsoft", "x.y"]))
    return model.SerializeToString()


class Outcomes:
    """How many calls of ``only_padlens_errors`` padlens accepted and rejected (per test)."""

    def __init__(self):
        self.accepted = self.rejected = 0


OUTCOMES = Outcomes()


def only_padlens_errors(fn, *args, **kwargs):
    """Run ``fn``; a PadlensError is an acceptable answer, anything else fails the test."""
    try:
        out = fn(*args, **kwargs)
    except PadlensError:
        OUTCOMES.rejected += 1
        return None
    OUTCOMES.accepted += 1
    return out


@pytest.fixture(autouse=True)
def some_inputs_still_run():
    """A fuzz test also fails when padlens rejected every input: the valid mutations must still run."""
    OUTCOMES.accepted = OUTCOMES.rejected = 0
    yield
    if OUTCOMES.rejected:
        assert OUTCOMES.accepted > 0, f"padlens rejected all {OUTCOMES.rejected} inputs, the valid ones too"


# ---------------------------------------------------------------- ONNX

def test_mutated_onnx_protobufs_load_or_raise_padlens_error(onnx_bytes):
    @fuzz(150)
    @given(data=st.data())
    def check(data):
        blob = data.draw(mutated(onnx_bytes))
        folder = scratch()
        try:
            (folder / "model.onnx").write_bytes(blob)
            only_padlens_errors(load_encoder, folder / "model.onnx")
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    check()


def test_structurally_edited_onnx_graphs_load_or_raise_padlens_error(onnx_bytes):
    @fuzz(150)
    @given(blob=edited_model(onnx_bytes))
    def check(blob):
        folder = scratch()
        try:
            (folder / "model.onnx").write_bytes(blob)
            only_padlens_errors(load_encoder, folder / "model.onnx")
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    check()


def test_edited_onnx_models_open_encode_and_run_or_raise_padlens_error(export, onnx_bytes):
    @fuzz(40)
    @given(blob=edited_model(onnx_bytes) | mutated(onnx_bytes))
    def check(blob):
        folder = scratch()
        try:
            (folder / "model.onnx").write_bytes(blob)
            ref = ModelRef(folder / "model.onnx", "fuzz", "unknown", export)
            enc = only_padlens_errors(Encoder.open, ref)
            if enc is not None:
                batch = only_padlens_errors(enc.encode, ["a short text", "the cat sat on the mat"], 16)
                if batch is not None:
                    only_padlens_errors(enc.run, batch)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    check()


# ---------------------------------------------------------------- tokenizers

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10)


def _set_path(obj, path: list, value):
    """Replace the value at a random path inside a JSON document (for mutating real configs)."""
    node = obj
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


def _paths(obj, prefix=()) -> list[tuple]:
    out = []
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else []
    for key, value in items:
        out.append((*prefix, key))
        if len(out) < 400:
            out.extend(_paths(value, (*prefix, key)))
    return out


def test_mutated_tokenizer_json_and_config_load_or_raise_padlens_error(export):
    originals = {name: json.loads((export / name).read_text())
                 for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")}
    paths = {name: _paths(doc) for name, doc in originals.items()}

    @fuzz(150)
    @given(data=st.data())
    def check(data):
        folder = scratch()
        try:
            for name, doc in originals.items():
                doc = json.loads(json.dumps(doc))
                for _ in range(data.draw(st.integers(0, 3), label=f"edits {name}")):
                    path = data.draw(st.sampled_from(paths[name]), label="path")
                    try:
                        _set_path(doc, list(path), data.draw(JSON_VALUES, label="value"))
                    except (KeyError, IndexError, TypeError):
                        pass  # an earlier edit removed the path
                text = json.dumps(doc)
                if data.draw(st.booleans(), label="byte-level"):
                    raw = data.draw(mutated(text.encode()), label="bytes")
                else:
                    raw = text.encode()
                (folder / name).write_bytes(raw)
            tok = only_padlens_errors(load_tokenizer, folder)
            if tok is not None:
                only_padlens_errors(tok.encode, ["hello world", "a"], 8)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    check()


# ---------------------------------------------------------------- padlens.json

MANIFEST_KEYS = ["format", "source", "architecture", "num_layers", "hidden_size", "max_position_embeddings",
                 "pad_token_id", "padding_side", "pooling", "normalize", "tokenizer_files", "precisions"]


def test_random_padlens_json_manifests_resolve_or_raise_padlens_error(export):
    good = json.loads((export / "padlens.json").read_text())
    precision_entry = st.fixed_dictionaries({}, optional={"file": JSON_VALUES | st.sampled_from(
        ["model.onnx", "../model.onnx", "/etc/passwd", "", "sub/x.onnx", "model.onnx\x00"]), "bytes": JSON_VALUES})
    precisions = JSON_VALUES | st.dictionaries(st.text(max_size=12) | st.sampled_from(["fp32", "fp16"]),
                                               precision_entry | JSON_VALUES, max_size=3)

    @fuzz(200)
    @given(data=st.data())
    def check(data):
        folder = scratch()
        try:
            shutil.copy(export / "model.onnx", folder / "model.onnx")
            doc = dict(good)
            for key in data.draw(st.lists(st.sampled_from(MANIFEST_KEYS), max_size=4, unique=True)):
                doc[key] = data.draw(precisions if key == "precisions" else JSON_VALUES, label=key)
            shape = data.draw(st.sampled_from(["dict", "value", "bytes"]))
            if shape == "dict":
                raw = json.dumps(doc).encode()
            elif shape == "value":
                raw = json.dumps(data.draw(JSON_VALUES)).encode()
            else:
                raw = data.draw(mutated(json.dumps(good).encode()))
            (folder / "padlens.json").write_bytes(raw)
            only_padlens_errors(read_manifest, folder)
            refs = only_padlens_errors(resolve_models, [folder])
            for ref in refs or []:
                assert ref.path.resolve().parent == folder.resolve()  # never outside the folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    check()


# ---------------------------------------------------------------- text files

ODD_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=200)


@st.composite
def text_file_bytes(draw) -> bytes:
    """Text in an odd encoding, with BOMs, NULs, stray bytes, CR-only lines or one huge line."""
    text = draw(ODD_TEXT)
    kind = draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "latin-1", "raw", "huge", "nul"]))
    if kind == "raw":
        return draw(st.binary(max_size=400))
    if kind == "huge":
        return b'{"text": "' + b"x" * draw(st.integers(10**5, 4 * 10**6 + 10)) + b'"}\n'
    if kind == "nul":
        return text.encode("utf-8").replace(b" ", b"\x00") + b"\r\x00\n"
    try:
        return text.encode(kind)
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass" if kind == "utf-8" else "replace")


def test_text_files_in_odd_encodings_read_or_raise_padlens_error():
    @fuzz(150)
    @given(raw=text_file_bytes(), suffix=st.sampled_from([".txt", ".jsonl", ".csv", ""]),
           limit=st.none() | st.integers(1, 5))
    def check(raw, suffix, limit):
        folder = scratch()
        try:
            path = folder / f"texts{suffix}"
            path.write_bytes(raw)
            texts = only_padlens_errors(lambda: list(iter_texts(path)))
            for text in texts or []:
                assert isinstance(text, str) and text.strip()
            only_padlens_errors(read_texts, ["x"], path, limit)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    check()


# ---------------------------------------------------------------- settings a folder ships (issue 35)

INSPECT = ("inspect", ".", "--text", "a short text", "--text", "the cat sat on the mat", "--max-length", "16")


@pytest.fixture(scope="module")
def shipped_folder(export, tmp_path_factory) -> Path:
    """The tiny export with what a real all-MiniLM-L6-v2 folder also ships: a config.json and
    tokenizer.json padding (Fixed at its length) and truncation blocks."""
    folder = tmp_path_factory.mktemp("shipped") / "model"
    shutil.copytree(export, folder)
    raw = json.loads((folder / "tokenizer.json").read_text())
    raw["padding"] = {"strategy": {"Fixed": 64}, "direction": "Right", "pad_to_multiple_of": None, "pad_id": 0,
                      "pad_type_id": 0, "pad_token": "[PAD]"}
    raw["truncation"] = {"direction": "Right", "max_length": 64, "strategy": "LongestFirst", "stride": 0}
    (folder / "tokenizer.json").write_text(json.dumps(raw))
    config = {"model_type": "bert", "architectures": ["BertModel"], "max_position_embeddings": 64,
              "pad_token_id": 0, "vocab_size": raw["model"]["vocab"].__len__(), "hidden_size": 32,
              "num_attention_heads": 2}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def _edit_json(name: str, edit):
    def apply(folder: Path) -> None:
        doc = json.loads((folder / name).read_text())
        edit(doc)
        (folder / name).write_text(json.dumps(doc))
    return apply


def _write(name: str, text: str):
    def apply(folder: Path) -> None:
        (folder / name).write_text(text)
    return apply


def _fixed_3_pad_outside(doc: dict) -> None:
    doc["padding"]["strategy"] = {"Fixed": 3}
    doc["padding"]["pad_id"] = 99999


#: mutation -> (edit, expected): "runs" (exit 0, no warning), ("warns", words every warning line
#: holds), or ("error", words of the one Error: line)
SETTINGS_MUTATIONS = {
    "valid": (lambda folder: None, "runs"),
    "valid-no-padding-block": (_edit_json("tokenizer.json", lambda d: d.update(padding=None, truncation=None)), "runs"),
    "valid-side-left": (_edit_json("tokenizer_config.json", lambda d: d.update(padding_side="left")), "runs"),
    "empty-wordpiece-vocab": (_edit_json("tokenizer.json", lambda d: d["model"].update(vocab={})),
                              ("error", "cannot encode text: WordPiece error: Missing [UNK] token from the vocabulary")),
    "padding-side-middle": (_edit_json("tokenizer_config.json", lambda d: d.update(padding_side="middle")),
                            ("warns", "padding_side 'middle' is neither right nor left: padlens ignores it")),
    "model-max-length-big": (_edit_json("tokenizer_config.json", lambda d: d.update(model_max_length="big")),
                             ("warns", "model_max_length 'big' is not a positive integer: padlens ignores it")),
    "config-not-json": (_write("config.json", "{not json"), ("warns", "config.json is not JSON")),
    "max-position-embeddings-minus-5": (
        _edit_json("config.json", lambda d: d.update(max_position_embeddings=-5)),
        ("warns", "max_position_embeddings -5 is not a positive integer: padlens ignores it")),
    "pad-token-id-10-12": (_edit_json("config.json", lambda d: d.update(pad_token_id=10**12)),
                           ("warns", "pad_token_id 1000000000000 is not an id in the vocabulary")),
    "fixed-3-pad-id-outside-vocab": (_edit_json("tokenizer.json", _fixed_3_pad_outside),
                                     ("warns", "tokenizer.json: padding")),
    "truncation-0": (_edit_json("tokenizer.json", lambda d: d["truncation"].update(max_length=0)),
                     ("warns", "tokenizer.json: ")),  # the 0 and the Fixed 64 it leaves untruncated: next test
    "pad-token-type-id-text": (_edit_json("tokenizer_config.json", lambda d: d.update(pad_token_type_id="x")),
                               ("warns", "pad_token_type_id 'x' is not a token type id")),
}


@pytest.mark.parametrize("name", list(SETTINGS_MUTATIONS))
def test_each_settings_mutation_runs_warns_naming_it_or_is_one_error_line(shipped_folder, tmp_path, name):
    from tests.hardening.conftest import padlens

    folder = tmp_path / "model"
    shutil.copytree(shipped_folder, folder)
    edit, expected = SETTINGS_MUTATIONS[name]
    edit(folder)
    proc = padlens(*INSPECT, cwd=folder)
    assert "Traceback" not in proc.stderr, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("WARNING")]
    if expected == "runs":
        assert proc.returncode == 0 and not warnings, proc.stderr
    elif expected[0] == "warns":
        assert proc.returncode == 0, proc.stderr
        assert warnings and all(expected[1] in line for line in warnings), proc.stderr
    else:
        assert proc.returncode == 2 and proc.stderr.startswith("Error: ") and proc.stderr.count("\n") == 1
        assert expected[1] in proc.stderr and str(Path("tokenizer.json")) in proc.stderr


def test_fixed_3_padding_and_an_outside_pad_id_each_get_their_own_warning(shipped_folder, tmp_path):
    from tests.hardening.conftest import padlens

    folder = tmp_path / "model"
    shutil.copytree(shipped_folder, folder)
    _edit_json("tokenizer.json", _fixed_3_pad_outside)(folder)
    proc = padlens(*INSPECT, cwd=folder)
    assert proc.returncode == 0, proc.stderr
    assert "padding is Fixed at 3 tokens but truncation is at 64" in proc.stderr
    assert "padding pad_id 99999 is outside the vocabulary" in proc.stderr and "padlens pads with id 0 ([PAD])" in proc.stderr


def test_a_truncation_of_0_is_named_and_so_is_the_fixed_padding_it_leaves_untruncated(shipped_folder, tmp_path):
    from tests.hardening.conftest import padlens

    folder = tmp_path / "model"
    shutil.copytree(shipped_folder, folder)
    _edit_json("tokenizer.json", lambda d: d["truncation"].update(max_length=0))(folder)
    proc = padlens(*INSPECT, cwd=folder)
    assert proc.returncode == 0, proc.stderr
    assert "truncation max_length 0 is not a positive length" in proc.stderr
    assert "padding is Fixed at 64 tokens but nothing truncates" in proc.stderr


@pytest.mark.parametrize("command", ["audit", "embed"])
def test_a_tokenizer_that_cannot_encode_is_one_error_line_before_audit_or_embed_run(shipped_folder, tmp_path, command):
    from tests.hardening.conftest import padlens

    folder = tmp_path / "model"
    shutil.copytree(shipped_folder, folder)
    _edit_json("tokenizer.json", lambda d: d["model"].update(vocab={}))(folder)
    (folder / "texts.txt").write_text("a short text\n")
    args = ["--texts", "texts.txt"] + (["-o", "out.npy"] if command == "embed" else [])
    proc = padlens(command, ".", *args, cwd=folder)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("Error: tokenizer") and "Missing [UNK] token" in proc.stderr
    assert not (folder / "out.npy").exists()
