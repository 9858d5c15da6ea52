"""A failed reference_drift names the node where a quantized or converted copy leaves the fp32 reference."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import onnx

from padlens.inspector.audit import audit

TEXTS = ["this is a sample sentence", "the cat sat on the mat", "a dog", "padding text is short"]
#: a floor the tiny int8 copies miss (worst pooled cos 1 - 3e-5 with the embeddings quantized, 1 - 8e-8
#: with MatMuls only: a random tiny BERT's residual stream dwarfs its projections): the check fails
STRICT_INT8 = {"reference_drift.int8": 0.999999999}


def _export_dir(zoo, tmp_path: Path, copies: dict[str, object]) -> Path:
    """The zoo's tiny export (fp32) with ``copies`` (precision -> a function writing that file from the
    fp32 one) beside it, listed in padlens.json as the exporter lists them."""
    out = tmp_path / "export"
    shutil.copytree(zoo("padlens"), out)
    manifest = json.loads((out / "padlens.json").read_text())
    for precision, make in copies.items():
        dst = out / f"model.{precision}.onnx"
        make(out / "model.onnx", dst)
        manifest["precisions"][precision] = {"file": dst.name, "bytes": dst.stat().st_size}
    (out / "padlens.json").write_text(json.dumps(manifest, indent=2))
    return out


def _dynamic(op_types=None):
    def make(src: Path, dst: Path) -> None:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=op_types)
    return make


def _fp16(src: Path, dst: Path) -> None:
    from onnxruntime.transformers.float16 import convert_float_to_float16

    onnx.save(convert_float_to_float16(onnx.load(str(src)), keep_io_types=True), str(dst))


def _renamed(make):
    """``make``'s copy with every tensor that is not a graph input, output or weight renamed."""
    def rename(src: Path, dst: Path) -> None:
        make(src, dst)
        model = onnx.load(str(dst))
        g = model.graph
        keep = {i.name for i in g.input} | {o.name for o in g.output} | {t.name for t in g.initializer}
        new = {o: f"t{k}" for k, o in enumerate(o for n in g.node for o in n.output if o and o not in keep)}
        for n in g.node:
            n.input[:] = [new.get(i, i) for i in n.input]
            n.output[:] = [new.get(o, o) for o in n.output]
        del g.value_info[:]
        onnx.save(model, str(dst))
    return rename


def _drift(result, precision: str):
    [found] = [c for c in result.checks if c.name == "reference_drift" and c.model.endswith(precision)]
    return found


def test_an_int8_dynamic_copy_that_drifts_is_traced_to_its_dynamicquantizelinear(zoo, tmp_path, cli_run):
    folder = _export_dir(zoo, tmp_path, {"int8-dynamic": _dynamic(["MatMul"])})  # embeddings stay fp32
    code, out, _ = cli_run("audit", folder, *sum((["--text", t] for t in TEXTS), []), "--max-length", "32",
                           "--tolerance", f"reference_drift.int8={STRICT_INT8['reference_drift.int8']}", "--json", tmp_path / "a.json")
    assert code == 1
    [check] = [c for c in json.loads((tmp_path / "a.json").read_text())["checks"]
               if c["name"] == "reference_drift"]
    node = check["node"]
    assert not check["passed"] and node is not None
    assert node["layer"] == 1 and node["op_type"] in ("DynamicQuantizeLinear", "MatMulInteger")
    assert node["matched"] == "name" and node["reference"].startswith("MatMul ")
    assert "MatMulInteger" in node["computed_by"]
    assert 0 < node["local_error"] <= node["accumulated_error"] * 1.5 and node["drift"] > 0
    assert "its real tokens first beyond it at layer 1" in check["detail"]
    assert "Traced: the drift enters at DynamicQuantizeLinear node" in check["detail"]
    assert "the drift enters at DynamicQuantizeLinear node" in out  # the terminal's cause line


def test_ort_default_dynamic_quantization_is_traced_to_the_embedding_table_it_quantizes(zoo, tmp_path):
    folder = _export_dir(zoo, tmp_path, {"int8-dynamic": _dynamic()})  # ORT's defaults quantize Gather too
    c = _drift(audit([str(folder)], texts=TEXTS, max_length=32, tolerances=STRICT_INT8), "int8-dynamic")
    assert not c.passed and c.evidence.first_layer == 0
    assert c.node.layer == 0 and c.node.op_type == "DequantizeLinear"
    assert c.node.computed_by == ("Gather", "DequantizeLinear") and c.node.reference.startswith("Gather ")


def test_a_copy_whose_tensor_names_differ_is_matched_by_position_and_says_so(zoo, tmp_path):
    folder = _export_dir(zoo, tmp_path, {"int8-dynamic": _renamed(_dynamic(["MatMul"]))})
    c = _drift(audit([str(folder)], texts=TEXTS, max_length=32, tolerances=STRICT_INT8), "int8-dynamic")
    assert not c.passed and c.node is not None and c.node.layer == 1
    assert c.node.matched == "position" and "by position (names differ)" in c.detail
    assert c.node.op_type in ("DynamicQuantizeLinear", "MatMulInteger") and c.node.local_error > 0


def test_an_fp16_copy_within_its_tolerance_is_not_traced(zoo, tmp_path, monkeypatch):
    from padlens.inspector.audit import trace_drift

    calls = []
    monkeypatch.setattr(trace_drift, "trace_drift", lambda *a, **k: calls.append(a))
    folder = _export_dir(zoo, tmp_path, {"fp16": _fp16})
    c = _drift(audit([str(folder)], texts=TEXTS, max_length=32), "fp16")
    assert c.passed and c.node is None and c.to_dict()["node"] is None and not calls
    assert c.value > 0.9999


def test_the_report_draws_a_failed_drift_against_the_fp32_run_with_the_traced_node(zoo, tmp_path):
    from padlens.inspector.report.html import evidence_html

    folder = _export_dir(zoo, tmp_path, {"int8-dynamic": _dynamic(["MatMul"])})
    result = audit([str(folder)], texts=TEXTS, max_length=32, tolerances=STRICT_INT8)
    c = _drift(result, "int8-dynamic")
    assert c.evidence.delta_ceiling is None and c.evidence.cos_floor == STRICT_INT8["reference_drift.int8"]
    page = evidence_html(result)
    assert "reference_drift · export/int8-dynamic" in page and "against export/fp32 [cpu]" in page
    assert "the drift enters at DynamicQuantizeLinear" in page and "against the same text alone, per layer" \
        not in page.split("reference_drift · export/int8-dynamic")[1].split("</section>")[0]
