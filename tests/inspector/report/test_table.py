"""The terminal table: layers × runs per metric, inside 80 columns, '-' for undefined values."""
from __future__ import annotations

import math

import pytest

from padlens.inspector.inspect import InspectResult, InspectSettings, LayerMetrics, PoolingDamage, RunResult
from padlens.inspector.report.table import fmt_cos, fmt_norm, render

NAN = float("nan")


def layer(index, value, attention=False):
    extra = {"attn_pad_to_cls": 0.1, "attn_pad_to_sep": 0.1, "attn_pad_to_content": 0.7,
             "attn_pad_to_pad": 0.1, "attn_real_to_pad": 0.0} if attention and index else {}
    return LayerMetrics(index=index, tensor=f"hidden_states.{index}", pad_pad_cos=value, pad_real_cos=0.2,
                        pad_norm=12.5, real_norm=9.25, pad_anchor_cos=0.9, pad_step=0.5,
                        pad_anchor_cos_by_offset={"1": 0.95}, **extra)


def run(i, layers=3, value=0.8, attention=False):
    return RunResult(model=f"m{i}.onnx", precision="fp32", provider="cpu", label=f"model-{i}/fp32",
                     layers=[layer(k, value, attention) for k in range(layers)],
                     pooling=PoolingDamage(masked_unmasked_cos=0.5, masked_unmasked_cos_min=0.35,
                                           masked_unmasked_cos_max=0.67, cls_masked_cos=NAN, texts_compared=4,
                                           knn_k=5, knn_overlap=0.4, similarity_spearman=NAN,
                                           similarity_mean_masked=NAN, similarity_mean_unmasked=NAN),
                     pad_content_rsa=float("nan"), exposure_max_abs_diff=0.0, n_texts=4, n_tokens=20,
                     n_pad_tokens=100, warnings=[] if i else ["something to know"])


def result(runs):
    return InspectResult(runs=runs, texts_count=4, max_length=128, padding_side="right",
                         settings=InspectSettings(padding="max_length"))


@pytest.mark.parametrize("value,cos,norm", [(0.81234, "0.812", "0.81"), (float("nan"), "-", "-"),
                                            (None, "-", "-"), (-1.0, "-1.000", "-1.00"), (12345.6, "12345.600", "12346")])
def test_formats(value, cos, norm):
    assert (fmt_cos(value), fmt_norm(value)) == (cos, norm)


@pytest.mark.parametrize("n_runs", [1, 2, 4, 9, 12])
def test_every_line_fits_80_columns_whatever_the_number_of_runs(n_runs):
    text = render(result([run(i, attention=True) for i in range(n_runs)]))
    assert max(len(line) for line in text.splitlines()) <= 80
    for i in range(1, n_runs + 1):
        assert f"[{i}] model-{i - 1}/fp32 on cpu" in text
        if n_runs > 1:
            assert f"[{i}]" in text.split("pad states per layer", 1)[1]


def test_one_run_reads_as_one_table_with_layer_rows():
    text = render(result([run(0)]))
    header = next(line for line in text.splitlines() if line.startswith("layer"))
    assert header.split() == ["layer", "pad_pad_cos", "pad_real_cos", "pad_norm", "real_norm", "anchor_cos", "pad_step"]
    assert "0 emb" in text and "0.800" in text and "12.50" in text
    assert "attention" not in text.split("key:")[0]       # no attention located, no table
    assert "warning [1]: something to know" in text


def test_runs_with_different_layer_counts_leave_blanks():
    text = render(result([run(0, layers=2), run(1, layers=4, value=math.nan)]))
    row3 = next(line for line in text.splitlines() if line.startswith("3 "))
    assert row3.split()[:3] == ["3", "-", "-"]
