"""Production files: a batch or length fixed in the graph, position offsets, ORT failures worded by padlens."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from padlens.errors import BadInput, ModelLoadError
from padlens.inspector.inputs.resolve import resolve_models
from padlens.inspector.inputs.tokenize import load_tokenizer
from padlens.inspector.inspect import inspect
from padlens.inspector.model.expose import expose_outputs
from padlens.inspector.model.graph import load_encoder
from padlens.inspector.model.structure import Structure
from padlens.inspector.runtime.encoder import Encoder
from padlens.inspector.runtime.failures import likely_cause
from tests.conftest import run_padlens

TEXTS = ["the cat sat on the mat", "a dog", "this is a sample sentence with some more words",
         "short text", "the model pads the text"]
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def _copy_tokenizer(src: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        (out / name).write_bytes((src / name).read_bytes())


def dummy_feeds(names: list[str], rows: int) -> dict[str, np.ndarray]:
    """7 tokens per row: id 5, mask 1, token type 0."""
    value = {"input_ids": 5, "attention_mask": 1, "token_type_ids": 0}
    return {n: np.full((rows, 7), value[n], np.int64) for n in names}


def freeze_batch(src: Path, out: Path) -> Path:
    """``src``'s model with every rank>=3 Reshape given the constant shape [1, -1, ...] it
    has at batch 1, as production files freeze the batch (sequence length left dynamic)."""
    model = onnx.load(src / "model.onnx")
    reshapes = [n for n in model.graph.node if n.op_type == "Reshape"]
    probe, names = expose_outputs(model, [n.output[0] for n in reshapes])
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = dummy_feeds([i.name for i in model.graph.input], 1)
    shapes = [v.shape for v in session.run([names[n.output[0]] for n in reshapes], feeds)]
    for k, (node, shape) in enumerate(zip(reshapes, shapes)):
        if len(shape) >= 3 and shape[:2] == (1, 7):
            name = f"frozen_shape_{k}"
            model.graph.initializer.append(numpy_helper.from_array(np.array([1, -1, *shape[2:]], np.int64), name))
            node.input[1] = name
    _copy_tokenizer(src, out)
    onnx.save(model, out / "model.onnx")
    return out


def fix_input_dims(src: Path, out: Path, batch: int, length: int) -> Path:
    """``src``'s model with its inputs declared [batch, length]."""
    model = onnx.load(src / "model.onnx")
    for graph_input in model.graph.input:
        dims = graph_input.type.tensor_type.shape.dim
        dims[0].Clear()
        dims[0].dim_value = batch
        dims[1].Clear()
        dims[1].dim_value = length
    _copy_tokenizer(src, out)
    onnx.save(model, out / "model.onnx")
    return out


@pytest.fixture(scope="module")
def frozen(zoo, tmp_path_factory) -> Path:
    return freeze_batch(zoo("torchscript"), tmp_path_factory.mktemp("frozen"))


def test_a_frozen_batch_really_breaks_a_batch_of_two_in_plain_onnxruntime(frozen):
    session = ort.InferenceSession(str(frozen / "model.onnx"), providers=["CPUExecutionProvider"])
    feeds = dummy_feeds([i.name for i in session.get_inputs()], 2)
    with pytest.raises(Exception, match="Reshape|Add|broadcast|shape"):  # noqa: B017  (ORT's own error types)
        session.run(None, feeds)


def test_a_batch_fixed_by_constant_reshapes_is_detected_at_load(frozen, zoo):
    graph = load_encoder(frozen / "model.onnx")
    assert graph.structure.fixed_batch == 1 and "constant shape [1, -1" in graph.structure.fixed_batch_evidence
    assert load_encoder(zoo("torchscript") / "model.onnx").structure.fixed_batch is None


def test_inspect_runs_a_frozen_batch_one_text_at_a_time_with_the_same_metrics(frozen, zoo):
    kwargs = {"texts": TEXTS, "max_length": 16, "batch_size": 4, "padding_side": "right"}
    got = inspect([str(frozen / "model.onnx")], tokenizer=str(frozen), **kwargs).runs[0]
    want = inspect([str(zoo("torchscript") / "model.onnx")], tokenizer=str(zoo("torchscript")), **kwargs).runs[0]
    assert got.n_texts == len(TEXTS)
    for a, b in zip(got.layers, want.layers):
        assert a.pad_pad_cos == pytest.approx(b.pad_pad_cos, abs=1e-5)
        assert a.pad_real_cos == pytest.approx(b.pad_real_cos, abs=1e-5)
    assert sum("fixes the batch at 1" in w for w in got.warnings) == 1  # said once
    assert got.encoder.fixed_batch == 1


def test_audit_of_a_frozen_batch_leaves_the_batch_checks_not_applicable(frozen):
    from padlens.inspector.audit import audit

    result = audit([str(frozen / "model.onnx")], texts=TEXTS[:3], tokenizer=str(frozen), max_length=16)
    by_name = {c.name: c for c in result.checks}
    for name in ("batch_neighbour_invariance", "fully_masked_row"):
        assert not by_name[name].applicable and "fixes the batch at 1" in by_name[name].detail
    assert by_name["padding_invariance"].applicable and by_name["padding_invariance"].passed
    assert result.passed and result.runs[0].notes


def test_a_length_fixed_in_the_inputs_pads_every_batch_to_it(zoo, tmp_path):
    src = zoo("torchscript")
    fixed = fix_input_dims(src, tmp_path / "fixed", batch=1, length=16)
    enc = Encoder.open(resolve_models([str(fixed / "model.onnx")], str(fixed))[0])
    assert (enc.graph.structure.fixed_batch, enc.graph.structure.fixed_length, enc.max_positions) == (1, 16, 16)
    plain = Encoder.open(resolve_models([str(src / "model.onnx")], str(src))[0])
    batch = plain.tokenizer.encode(TEXTS[:3], max_length=10, padding="longest", side="right")
    got, want = enc.run(batch).hidden[-1], plain.run(batch).hidden[-1]
    assert got.shape == want.shape == (3, batch.shape[1], got.shape[2])
    real = batch.attention_mask.astype(bool)
    np.testing.assert_allclose(got[real], want[real], atol=1e-5)
    with pytest.raises(BadInput, match="limit of 16 tokens .*fixes the sequence length at 16"):
        enc.check_max_length(17)


def test_a_position_offset_lowers_the_usable_length_and_names_the_limit(zoo, tmp_path):
    model = zoo("xlmr-offset")
    graph = load_encoder(model / "model.onnx")
    assert (graph.position_rows, graph.structure.padding_idx, graph.max_positions) == (66, 1, 64)
    proc = run_padlens("inspect", model / "model.onnx", "--tokenizer", model, "--text", "a cat",
                       "--max-length", "65", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"Error: --max-length 65 is beyond {model.name}/model's limit of 64 tokens (a 66-row position "
        "table less padding_idx + 1 = 2 rows that real tokens never use)"]


def test_inspect_pads_an_offset_model_to_its_usable_length_by_default(zoo):
    model = zoo("xlmr-offset")
    long_text = " ".join(["the cat sat on the mat"] * 20)
    result = inspect([str(model / "model.onnx")], texts=[long_text, "a dog"], tokenizer=str(model),
                     padding_side="right")
    assert result.max_length == 64 and result.runs[0].n_texts == 2  # 66 rows would crash ORT's Gather


def test_xlmr_states_match_pytorch_on_left_padding_with_pad_ids(zoo):
    """positions counted from ids: left pads holding the pad id keep real positions, as in PyTorch."""
    model = zoo("xlmr-offset")
    ref = np.load(model / "reference.npz")
    enc = Encoder.open(resolve_models([str(model / "model.onnx")], str(model))[0])
    tok = load_tokenizer(model)
    assert tok.pad_id == 1
    batch = tok.encode(["x"], max_length=9)  # a Batch to fill with the reference's rows
    from dataclasses import replace

    for ids, key in ((ref["input_ids"], "last_hidden_state"), (ref["random_ids"], "random_last_hidden_state")):
        mask = ref["attention_mask"]
        rows = replace(batch, input_ids=ids, attention_mask=mask, token_type_ids=np.zeros_like(ids),
                       position_ids=np.zeros_like(ids), special_tokens_mask=np.zeros_like(ids),
                       lengths=mask.sum(1), side="left")
        got = enc.run(rows).hidden[-1]
        real = mask.astype(bool)
        np.testing.assert_allclose(got[real], ref[key][real], atol=1e-4)
    moved = np.abs(ref["random_last_hidden_state"][1, -5:] - ref["last_hidden_state"][1, -5:]).max()
    assert moved > 0.1  # PyTorch too: random ids under left pads shift the positions


def test_onnxruntime_failures_are_one_error_line_without_its_native_log(toy_dir, tmp_path):
    model = toy_dir("bad-gather")
    proc = run_padlens("inspect", model / "model.onnx", "--tokenizer", model, "--text", "a cat sat",
                       "--max-length", "8", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "[E:onnxruntime" not in proc.stderr and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "on a batch of 1 text x 8 tokens (right-padded)" in errors[0]
    assert "bad-gather/model" in errors[0]


@pytest.mark.parametrize("message, structure, rows, shape, want", [
    ("Gather: indices element out of data bounds, idx=66", Structure(padding_idx=1), 66, (2, 66),
     "position table too short: 66 rows hold 64 tokens"),
    ("Shape mismatch attempting to re-use buffer {1,128,384} != {2,128,384}", Structure(), None, (2, 128),
     "a batch or length fixed inside the graph"),
    ("Missing Input: position_ids", Structure(), None, (2, 8), "needs an input padlens does not feed"),
    ("Got invalid dimensions for input: input_ids", Structure(fixed_length=16), None, (1, 8),
     "a sequence length fixed in the graph at 16"),
    ("some other failure", Structure(), None, (2, 8), ""),
])
def test_the_likely_cause_of_a_failed_run(message, structure, rows, shape, want):
    batch = type("B", (), {"shape": shape})()
    cause = likely_cause(message, structure, rows, batch, ["input_ids", "attention_mask"])
    assert (want in cause) if want else cause == ""


@pytest.fixture(scope="module")
def toy_dir(zoo, tmp_path_factory):
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    from tests.inspector.audit import causal_toys

    base = tmp_path_factory.mktemp("ptoys")
    return lambda kind: causal_toys.make(kind, base / kind, zoo("padlens"))


def test_a_run_failure_inside_the_library_names_model_batch_and_shape(toy_dir):
    model = toy_dir("bad-gather")
    enc = Encoder.open(resolve_models([str(model / "model.onnx")], str(model))[0])
    batch = enc.encode(["a cat", "a dog sat"], max_length=8)
    with pytest.raises(ModelLoadError, match=r"bad-gather/model on a batch of 2 texts x 8 tokens"):
        enc.run(batch)
    assert json.dumps(enc.describe().notes) == "[]"


def test_inspect_of_a_batch_1_graph_runs_and_says_so_once(toy_dir, tmp_path):
    model = toy_dir("batch-1")
    proc = run_padlens("inspect", model / "model.onnx", "--tokenizer", model, "--text", "a cat sat",
                       "--text", "the dog", "--max-length", "8", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (proc.stdout + proc.stderr).count("fixes the batch at 1") == 1
    assert "real->pad" in proc.stdout  # its one-head [B, T, T] attention is read as [B, 1, T, T]
