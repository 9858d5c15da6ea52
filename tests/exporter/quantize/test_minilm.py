"""The real all-MiniLM-L6-v2 in the folders users hold: the leaking dynamic int8 fails, `padlens quantize` fixes it."""
from __future__ import annotations

import pytest

from tests.exporter.quantize import folders

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tjs(tmp_path_factory, minilm_export):
    return folders.transformers_js(tmp_path_factory.mktemp("tjs") / "all-MiniLM-L6-v2", minilm_export)


@pytest.fixture(scope="module")
def st5(tmp_path_factory):
    return folders.st5(tmp_path_factory.mktemp("st5") / "all-MiniLM-L6-v2")


def assert_meets_targets(result) -> None:
    v = result.verification
    assert result.written and v.texts == 100
    assert v.invariant and all(c["applicable"] for c in v.checks)
    assert v.pooled_cosine_mean >= 0.98 and v.pooled_cosine_worst >= 0.95, v


def test_transformers_js_folder_leaks_and_its_quantized_fp32_does_not(tjs, tmp_path):
    from padlens.exporter.quantize import quantize
    from padlens.inspector.audit import audit

    before = audit([tjs], limit=8)
    failed = {(c.model, c.name) for c in before.checks if c.severity == "error" and not c.passed}
    assert ("all-MiniLM-L6-v2/onnx/model_quantized", "padding_invariance") in failed
    out = tjs / "onnx" / "model_int8_static.onnx"
    result = quantize(tjs / "onnx" / "model.onnx", out)
    assert_meets_targets(result)
    after = audit([out], tokenizer=tjs, limit=8)
    assert after.passed, [c.detail for c in after.checks if not c.passed]


def test_sentence_transformers_5_folder_quantized_meets_the_targets(st5, tmp_path):
    from padlens.exporter.quantize import quantize

    result = quantize(st5 / "onnx" / "model.onnx", tmp_path / "model_int8_static.onnx")
    assert_meets_targets(result)
    assert result.verification.pooling == "mean"  # the folder's own pooling


@pytest.mark.parametrize("scheme, floor", [("int8-weight", (0.995, 0.99)), ("int4-weight", (0.95, 0.85))])
def test_weight_only_schemes_stay_invariant_within_their_floors(tjs, tmp_path, scheme, floor):
    from padlens.exporter.quantize import quantize

    result = quantize(tjs / "onnx" / "model.onnx", tmp_path / "m.onnx", scheme=scheme)
    v = result.verification
    assert result.written and v.invariant and (v.floor_mean, v.floor_worst) == floor
    assert v.pooled_cosine_mean >= floor[0] and v.pooled_cosine_worst >= floor[1]
