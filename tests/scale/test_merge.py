"""Pad metrics merge exactly: one run over N texts equals the merge of runs over its parts."""
from __future__ import annotations

import numpy as np
import pytest

from padlens.inspector.inputs.resolve import resolve_models
from padlens.inspector.inspect import inspect
from padlens.inspector.runtime.encoder import Encoder
from padlens.inspector.stats import accumulators as acc

from .conftest import corpus

MAX_LEN = 24
REL = 1e-12  # the same float64 values summed in another order


@pytest.fixture(scope="module")
def encoder(tiny_export):
    return Encoder.open(resolve_models([str(tiny_export)])[0])


def accumulate(encoder, texts: list[str], batch: int) -> tuple[list[acc.PadStats], acc.TextStats]:
    pads = [acc.PadStats(max_positions=MAX_LEN) for _ in range(encoder.num_layers + 1)]
    text_stats = acc.TextStats()
    for start in range(0, len(texts), batch):
        b = encoder.encode(texts[start:start + batch], max_length=MAX_LEN)
        hidden = encoder.run(b).hidden
        for stats, h in zip(pads, hidden):
            stats.add(h, b.attention_mask)
        text_stats.add(hidden[-1], b.attention_mask)
    return pads, text_stats


def merged(encoder, parts: list[list[str]], batch: int) -> tuple[list[acc.PadStats], acc.TextStats]:
    pads, text_stats = accumulate(encoder, parts[0], batch)
    for part in parts[1:]:
        more_pads, more_texts = accumulate(encoder, part, batch)
        for mine, other in zip(pads, more_pads):
            mine.merge(other)
        text_stats.merge(more_texts)
    return pads, text_stats


def assert_same_pads(a: acc.PadStats, b: acc.PadStats) -> None:
    assert (a.sequences, a.failed, a.without_pads, a.single_pad) == \
        (b.sequences, b.failed, b.without_pads, b.single_pad)
    assert a.values.counts == b.values.counts
    assert a.means() == pytest.approx(b.means(), rel=REL, nan_ok=True)
    assert a.offset_curve() == pytest.approx(b.offset_curve(), rel=REL)
    np.testing.assert_array_equal(a.position_count, b.position_count)
    np.testing.assert_allclose(a.position_means(), b.position_means(), rtol=REL, atol=1e-14)


@pytest.mark.parametrize("cuts", [[13], [1, 2, 40], [20, 21, 59]])
def test_pad_metrics_of_parts_merge_to_the_metrics_of_the_whole(encoder, cuts):
    texts = corpus(60)
    whole_pads, whole_texts = accumulate(encoder, texts, batch=16)
    parts = [texts[a:b] for a, b in zip([0, *cuts], [*cuts, len(texts)])]
    part_pads, part_texts = merged(encoder, parts, batch=5)
    for a, b in zip(whole_pads, part_pads):
        assert_same_pads(a, b)
    assert whole_texts.values.counts == part_texts.values.counts
    assert whole_texts.pooling() == pytest.approx(part_texts.pooling(), rel=REL, nan_ok=True)
    assert whole_texts.pad_content_rsa() == pytest.approx(part_texts.pad_content_rsa(), rel=REL)


def test_the_capped_text_vectors_keep_the_first_texts_in_order_across_merges(encoder):
    texts = corpus(30)
    whole = acc.TextStats(cap=17)
    parts = [acc.TextStats(cap=17) for _ in range(3)]
    for stats, chunk in [(whole, texts)] + list(zip(parts, (texts[:7], texts[7:12], texts[12:]))):
        b = encoder.encode(chunk, max_length=MAX_LEN)
        stats.add(encoder.run(b).hidden[-1], b.attention_mask)
    joined = parts[0].merge(parts[1]).merge(parts[2])
    assert joined.kept == whole.kept == 17 and joined.texts == whole.texts == 30
    np.testing.assert_allclose(joined.stacked("masked"), whole.stacked("masked"), rtol=1e-6, atol=1e-6)


def test_inspect_reports_the_same_metrics_whatever_the_batch_size(tiny_export):
    texts = corpus(45)
    one = inspect([str(tiny_export)], texts=texts, max_length=MAX_LEN, batch_size=45).runs[0]
    many = inspect([str(tiny_export)], texts=texts, max_length=MAX_LEN, batch_size=4).runs[0]
    for a, b in zip(one.layers, many.layers):
        for key in ("pad_pad_cos", "pad_real_cos", "pad_norm", "real_norm", "pad_anchor_cos", "pad_step"):
            assert getattr(a, key) == pytest.approx(getattr(b, key), rel=1e-9), key
        assert (a.sequences, a.single_pad, a.without_pads) == (b.sequences, b.single_pad, b.without_pads)
    assert vars(one.pooling) == pytest.approx(vars(many.pooling), rel=1e-9, nan_ok=True)
