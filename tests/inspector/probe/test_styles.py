"""probe() on graph styles inspect supports: every layer located is probed, layer-0 pads know no text."""
from __future__ import annotations

import numpy as np
import pytest

from padlens.inspector.probe.run import probe

# one style in the quick run, the others with the slow tests (a probe fits ~1,700 small models)
STYLES = ("padlens", *(pytest.param(s, marks=pytest.mark.slow)
                       for s in ("torchscript", "ort-fused", "int8-dynamic", "st-pooled", "roberta")))


@pytest.mark.parametrize("style", STYLES)
def test_probe_runs_on_the_graph_style_and_layer_0_pads_do_not_know_the_length(zoo, short_texts, style):
    folder = zoo(style)
    result = probe([str(folder)], texts_file=str(short_texts), max_length=24, padding_side="right")
    run = result.runs[0]
    assert run.kept == 120 and len(run.layers) == 3  # embeddings + 2 blocks
    assert run.pad_window["texts"] > 100
    for layer in run.layers:
        assert all(p.applicable and np.isfinite(p.score) for p in layer.probes), layer.index
    length = run.layers[0].get("length", "pad")
    assert length.selectivity < 0.15, length  # a layer-0 pad holds only its position
