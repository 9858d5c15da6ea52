"""`quantize()`: each scheme on post-LN BERT, pre-LN ModernBERT and RMSNorm Qwen3 graphs, verified, recorded, atomic."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from padlens.errors import BadInput
from padlens.exporter.quantize import quantize
from padlens.exporter.quantize.calibrate import split_texts, texts_hash
from tests.exporter.quantize.conftest import STYLES, digest

SCHEME_OPS = {"int8-static": "QuantizeLinear", "int8-weight": "MatMulNBits", "int4-weight": "MatMulNBits"}


@pytest.mark.parametrize("style", list(STYLES))
@pytest.mark.parametrize("scheme", list(SCHEME_OPS))
def test_each_scheme_writes_a_verified_invariant_copy_and_leaves_the_source_alone(user_copy, tmp_path, style, scheme):
    folder = user_copy(style)
    before = digest(folder)
    out = tmp_path / "q" / "model.q.onnx"
    out.parent.mkdir()
    result = quantize(folder / "model.onnx", out, scheme=scheme)
    assert result and result.written and out.is_file()
    assert digest(folder) == before
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert SCHEME_OPS[scheme] in ops and "DynamicQuantizeLinear" not in ops
    checks = {c["name"]: c for c in result.verification.checks}
    assert set(checks) == {"padding_invariance", "batch_neighbour_invariance"}
    assert all(c["passed"] and c["applicable"] for c in checks.values())
    assert result.verification.texts == 100
    assert 0.95 <= result.verification.pooled_cosine_worst <= result.verification.pooled_cosine_mean <= 1 + 1e-9
    assert result.recipe["quantized_nodes"] > 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["model.q.onnx", "model.q.onnx.padlens.json"]


def test_the_sidecar_holds_the_recipe_the_calibration_hash_and_the_verification(user_copy, tmp_path):
    out = tmp_path / "m.onnx"
    result = quantize(user_copy("torchscript") / "model.onnx", out)
    doc = json.loads((tmp_path / "m.onnx.padlens.json").read_text())
    split = split_texts()
    assert doc["scheme"] == "int8-static" and doc["recipe"]["per_channel"] is True
    assert doc["recipe"]["op_types"] == ["MatMul"] and doc["recipe"]["weight_type"] == "QInt8"
    assert doc["calibration"] == {"heldout_texts": 100, "source": "sample corpus", "texts": len(split.calibration),
                                  "sha256": texts_hash(split.calibration), "method": "MinMax, one unpadded text per run"}
    assert doc["verification"]["pooled_cosine_mean"] == pytest.approx(result.verification.pooled_cosine_mean)
    assert doc["verification"]["passed"] is True and "speed" in doc["purpose"]


def test_heldout_texts_are_never_calibration_texts(tmp_path):
    split = split_texts()
    assert not set(split.heldout) & set(split.calibration) and len(split.heldout) == 100
    mine = tmp_path / "calib.txt"
    mine.write_text("\n".join(split.heldout[:10]) + "\n")
    user = split_texts(mine)
    assert user.source == "user" and user.calibration == tuple(split.heldout[:10])
    assert not set(user.heldout) & set(user.calibration) and len(user.heldout) == 100


def test_user_calibration_texts_are_hashed_in_the_sidecar(user_copy, tmp_path):
    texts = ["the cat sat on the mat", "a dog was there", "this is a sample sentence"]
    calib = tmp_path / "calib.txt"
    calib.write_text("\n".join(texts) + "\n")
    result = quantize(user_copy("torchscript") / "model.onnx", tmp_path / "m.onnx", calibration_texts=calib)
    assert result.calibration["source"] == "user" and result.calibration["texts"] == 3
    assert result.calibration["sha256"] == texts_hash(texts)


def test_qwen3_rotary_matmul_stays_float_because_the_graph_computes_it_from_positions_alone(user_copy, tmp_path):
    result = quantize(user_copy("qwen3-optimum") / "model.onnx", tmp_path / "m.onnx")
    why = result.recipe["kept_float_why"]
    assert why and all("position_ids" in reason for reason in why.values())
    assert set(why) == set(result.recipe["float_nodes"])


def test_bert_quantizes_every_matmul_and_only_matmuls_read_int8(user_copy, tmp_path):
    result = quantize(user_copy("torchscript") / "model.onnx", tmp_path / "m.onnx")
    assert result.recipe["kept_float_why"] == {} and result.recipe["float_nodes"] == []
    graph = onnx.load(str(tmp_path / "m.onnx")).graph
    dq = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    readers = {n.op_type for n in graph.node if set(n.input) & dq}
    assert readers == {"MatMul"}  # the residual Add, LayerNorm, Softmax read float


def test_a_source_with_external_data_is_quantized_and_its_folder_untouched(external_bert, tmp_path):
    before = digest(external_bert)
    for scheme in ("int8-static", "int4-weight"):
        out = tmp_path / f"{scheme}.onnx"
        result = quantize(external_bert / "model.onnx", out, scheme=scheme)
        assert result.written and result.source_bytes > 0
        assert out.is_file() and not (tmp_path / f"{scheme}.onnx.data").exists()  # small: one file
    assert digest(external_bert) == before


def test_a_large_source_written_back_as_one_file_leaves_no_stray_data_file(external_bert, tmp_path, monkeypatch):
    """A source past the external-data size makes ORT's quantizer write ``<out>.data``; the re-saved
    graph fits one file and names no data, so only the file and its sidecar are written."""
    from padlens.inspector.model import expose

    monkeypatch.setattr(expose, "EXTERNAL_OVER", 0)  # the source counts as large; the copy is saved as one file
    out = tmp_path / "out" / "m.onnx"
    out.parent.mkdir()
    result = quantize(external_bert / "model.onnx", out, scheme="int8-static")
    assert result.written
    assert sorted(p.name for p in out.parent.iterdir()) == ["m.onnx", "m.onnx.padlens.json"]
    assert result.out_bytes == out.stat().st_size
    assert not any(t.external_data for t in onnx.load(str(out), load_external_data=False).graph.initializer)


def test_an_impossible_floor_fails_and_writes_nothing(user_copy, tmp_path):
    out = tmp_path / "m.onnx"
    result = quantize(user_copy("torchscript") / "model.onnx", out, floors=(1.5, 1.5))
    assert not result and not result.written and result.sidecar is None
    assert list(tmp_path.iterdir()) == [tmp_path / "torchscript"]  # no file, no sidecar, no temp left
    assert result.verification.invariant  # it failed on the floor alone
    assert any("floor 1.5" in why for why in result.verification.failures())


def test_keep_anyway_writes_a_failing_file_and_says_so_in_the_sidecar(user_copy, tmp_path):
    out = tmp_path / "m.onnx"
    result = quantize(user_copy("torchscript") / "model.onnx", out, floors=(1.5, 1.5), keep_anyway=True)
    assert result.written and not result.passed and out.is_file()
    assert json.loads((tmp_path / "m.onnx.padlens.json").read_text())["verification"]["passed"] is False


def test_an_existing_output_is_refused_without_force_and_replaced_with_it(user_copy, tmp_path):
    out = tmp_path / "m.onnx"
    out.write_bytes(b"mine")
    source = user_copy("torchscript") / "model.onnx"
    with pytest.raises(BadInput, match="exists: pass force=True"):
        quantize(source, out)
    assert out.read_bytes() == b"mine"
    assert quantize(source, out, force=True).written and out.read_bytes() != b"mine"


@pytest.mark.parametrize("case, match", [
    ("source", "is the source model"),
    ("suffix", "must be an .onnx file"),
    ("scheme", "scheme must be one of"),
    ("quantized", "is int8-dynamic, not fp32"),
])
def test_bad_requests_are_refused_before_any_work(user_copy, zoo, tmp_path, case, match):
    source = user_copy("torchscript") / "model.onnx"
    before = source.read_bytes()
    kwargs = {"scheme": "int3"} if case == "scheme" else {}
    model = zoo("int8-dynamic") / "model.onnx" if case == "quantized" else source
    out = {"source": source, "suffix": tmp_path / "m.bin"}.get(case, tmp_path / "m.onnx")
    with pytest.raises(BadInput, match=match):
        quantize(model, out, force=True, **kwargs)
    assert source.read_bytes() == before and not (tmp_path / "m.onnx").exists()


def test_an_export_dir_quantizes_its_fp32(zoo, tmp_path):
    result = quantize(zoo("padlens"), tmp_path / "m.onnx", scheme="int8-weight")
    assert result.written and result.source == zoo("padlens") / "model.onnx"


def test_the_quantized_copy_embeds_like_its_source(user_copy, tmp_path):
    from padlens.inspector.embed import embed

    folder = user_copy("torchscript")
    quantize(folder / "model.onnx", folder / "model_int8.onnx")
    texts = tmp_path / "t.txt"
    texts.write_text("the cat sat on the mat\na dog\nthis is a sample sentence with some words\n")
    embed(folder / "model.onnx", texts, tmp_path / "a.npy")
    embed(folder / "model_int8.onnx", texts, tmp_path / "b.npy")
    a, b = np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")
    assert ((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min() > 0.95
