"""inspect() on a tiny export: metrics equal an independent numpy computation on the same tensors."""
from __future__ import annotations

import itertools
import json

import numpy as np
import onnxruntime as ort
import pytest
from tokenizers import Tokenizer

from padlens.errors import BadInput
from padlens.inspector import inspect as inspect_mod
from padlens.inspector.inputs.tokenize import PadTokenizer
from padlens.inspector.inspect import InspectResult, inspect

TEXTS = [
    "this is a sample sentence",
    "the cat sat on the mat",
    "a long word padding text with a dog and a cat that sat on the mat",
    "short",
    "what was the model",
    "it was there",
    "we have one token",
]
MAX_LEN = 24
BATCH = 3


def reference_batches(folder, texts, max_length, side):
    """Tokenize with the tokenizers library directly and pad by hand."""
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length)
    for start in range(0, len(texts), BATCH):
        ids = [e.ids for e in tok.encode_batch(texts[start:start + BATCH])]
        input_ids = np.zeros((len(ids), max_length), np.int64)
        mask = np.zeros_like(input_ids)
        for i, row in enumerate(ids):
            span = slice(0, len(row)) if side == "right" else slice(max_length - len(row), max_length)
            input_ids[i, span] = row
            mask[i, span] = 1
        yield input_ids, mask


def reference_states(folder, texts, max_length, side):
    """hidden_states.0..2 fetched straight from onnxruntime, and the masks."""
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [f"hidden_states.{i}" for i in range(3)]
    layers, masks = [[] for _ in names], []
    for input_ids, mask in reference_batches(folder, texts, max_length, side):
        out = session.run(names, {"input_ids": input_ids, "attention_mask": mask,
                                  "token_type_ids": np.zeros_like(input_ids)})
        for store, h in zip(layers, out):
            store.extend(np.asarray(h, np.float64))
        masks.extend(mask)
    return layers, masks


def cos(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def reference_layer(states, masks):
    """Per-sequence loops over pairs and neighbours, then the mean over sequences."""
    per = {k: [] for k in ("pad_pad_cos", "pad_real_cos", "pad_norm", "real_norm", "pad_anchor_cos", "pad_step")}
    for h, m in zip(states, masks):
        P = [t for t in range(len(m)) if m[t] == 0]
        R = [t for t in range(len(m)) if m[t] == 1]
        per["real_norm"].append(np.mean([np.linalg.norm(h[r]) for r in R]))
        if not P:
            continue
        per["pad_norm"].append(np.mean([np.linalg.norm(h[p]) for p in P]))
        per["pad_real_cos"].append(np.mean([cos(h[p], h[r]) for p in P for r in R]))
        if len(P) >= 2:
            per["pad_pad_cos"].append(np.mean([cos(h[p], h[q]) for p, q in itertools.permutations(P, 2)]))
            anchor = min(P) if max(P) > max(R) else max(P)
            per["pad_anchor_cos"].append(np.mean([cos(h[p], h[anchor]) for p in P if p != anchor]))
            steps = [np.linalg.norm(h[p] - h[p + 1]) for p in P if p + 1 in P]
            per["pad_step"].append(np.mean(steps))
    return {k: float(np.mean(v)) for k, v in per.items()}


def ranks(x):
    return np.argsort(np.argsort(x)).astype(float)  # continuous data: no ties


def reference_pooling(last, masks):
    masked = np.array([h[m == 1].mean(0) for h, m in zip(last, masks)])
    unmasked = np.array([h.mean(0) for h in last])
    pads = np.array([h[m == 0].mean(0) for h, m in zip(last, masks) if (m == 0).any()])
    with_pads = np.array([h[m == 1].mean(0) for h, m in zip(last, masks) if (m == 0).any()])
    n = len(masked)
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    sim_m = [cos(masked[i], masked[j]) for i, j in pairs]
    sim_u = [cos(unmasked[i], unmasked[j]) for i, j in pairs]
    k = min(5, n - 1)
    overlap = []
    for i in range(n):
        near_m = sorted((j for j in range(n) if j != i), key=lambda j: -cos(masked[i], masked[j]))[:k]
        near_u = sorted((j for j in range(n) if j != i), key=lambda j: -cos(unmasked[i], unmasked[j]))[:k]
        overlap.append(len(set(near_m) & set(near_u)) / k)
    p_pairs = [(i, j) for i in range(len(pads)) for j in range(i + 1, len(pads))]
    rsa_p = [cos(pads[i], pads[j]) for i, j in p_pairs]
    rsa_r = [cos(with_pads[i], with_pads[j]) for i, j in p_pairs]
    return {
        "masked_unmasked_cos": float(np.mean([cos(a, b) for a, b in zip(masked, unmasked)])),
        "knn_overlap": float(np.mean(overlap)),
        "similarity_spearman": float(np.corrcoef(ranks(sim_m), ranks(sim_u))[0, 1]),
        "pad_content_rsa": float(np.corrcoef(ranks(rsa_p), ranks(rsa_r))[0, 1]),
    }


@pytest.fixture(scope="module")
def export(zoo):
    return zoo("padlens")


@pytest.mark.parametrize("stats, tol", [("numpy", {"rel": 1e-9}), ("graph", {"rel": 1e-6, "abs": 1e-6})])
@pytest.mark.parametrize("side", ["right", "left"])
def test_metrics_equal_an_independent_numpy_computation_on_the_same_tensors(export, side, stats, tol):
    result = inspect([str(export)], texts=TEXTS, max_length=MAX_LEN, padding_side=side, batch_size=BATCH,
                     stats=stats)
    layers, masks = reference_states(export, TEXTS, MAX_LEN, side)
    (run,) = result.runs
    assert [layer.index for layer in run.layers] == [0, 1, 2]
    assert [layer.tensor for layer in run.layers] == ["hidden_states.0", "hidden_states.1", "hidden_states.2"]
    for layer, states in zip(run.layers, layers):
        expected = reference_layer(states, masks)
        got = {k: getattr(layer, k) for k in expected}
        assert got == pytest.approx(expected, **tol), f"layer {layer.index}"
    pooling = reference_pooling(layers[-1], masks)
    assert run.pad_content_rsa == pytest.approx(pooling.pop("pad_content_rsa"), **tol)
    assert {k: getattr(run.pooling, k) for k in pooling} == pytest.approx(pooling, **tol)
    assert run.n_texts == len(TEXTS) and run.n_tokens == int(sum(m.sum() for m in masks))


def test_a_masked_encoder_puts_no_attention_mass_on_pads(export):
    run = inspect([str(export)], texts=TEXTS[:3], max_length=MAX_LEN).runs[0]
    assert run.layers[0].attn_real_to_pad is None
    for layer in run.layers[1:]:
        assert layer.attn_real_to_pad == pytest.approx(0.0, abs=1e-6)
        total = layer.attn_pad_to_cls + layer.attn_pad_to_sep + layer.attn_pad_to_content + layer.attn_pad_to_pad
        assert total == pytest.approx(1.0, abs=1e-5)


def test_several_runs_side_by_side_share_the_same_batches(export, monkeypatch):
    calls = []
    encode = PadTokenizer.encode

    def counting(self, texts, *a, **kw):
        calls.append(list(texts))
        return encode(self, texts, *a, **kw)

    monkeypatch.setattr(PadTokenizer, "encode", counting)
    result = inspect([str(export), str(export / "model.onnx")], texts=TEXTS, tokenizer=str(export),
                     max_length=MAX_LEN, batch_size=BATCH, providers=["cpu", "CPUExecutionProvider"])
    name = export.name
    assert [(r.label, r.provider) for r in result.runs] == [
        (f"{name}/fp32", "cpu"), (f"{name}/fp32", "CPUExecutionProvider"),
        (f"{name}/model", "cpu"), (f"{name}/model", "CPUExecutionProvider")]
    assert len({r.encoder.tokenizer for r in result.runs}) == 1
    assert calls == [TEXTS[0:3], TEXTS[3:6], TEXTS[6:7]]   # tokenized once per batch, for 4 runs
    first = result.runs[0]
    for run in result.runs[1:]:
        assert run.n_texts == first.n_texts == len(TEXTS)
        for a, b in zip(run.layers, first.layers):
            assert a.to_dict() == b.to_dict()


def test_batches_are_pulled_lazily_from_the_text_source(export):
    pulled = []

    def source():
        for i in itertools.count():
            if i == 10:
                return
            pulled.append(i)
            yield TEXTS[i % len(TEXTS)]

    seen = []
    inspect([str(export)], texts=source(), max_length=MAX_LEN, batch_size=4,
            progress=lambda done: seen.append((done, len(pulled))))
    assert seen == [(4, 4), (8, 8), (10, 10)]


def test_json_has_the_design_keys_and_null_for_undefined(export):
    result = inspect([str(export)], texts=["short"], padding="longest", max_length=MAX_LEN)
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    (run,) = data["runs"]
    assert {"model", "precision", "provider", "layers", "pooling", "pad_content_rsa",
            "exposure_max_abs_diff", "warnings"} <= set(run)
    layer = run["layers"][0]
    assert {"index", "tensor", "pad_pad_cos", "pad_real_cos", "pad_norm", "real_norm"} <= set(layer)
    assert layer["index"] == 0 and layer["pad_pad_cos"] is None and layer["real_norm"] > 0
    assert (run["precision"], run["provider"]) == ("fp32", "cpu")
    assert any("no text has pads" in w for w in run["warnings"])
    assert data["max_length"] == MAX_LEN and data["texts_count"] == 1


def test_the_default_max_length_stops_at_the_models_positions(export):
    result = inspect([str(export)], texts=["this is a sample sentence"])
    assert result.max_length == 64
    assert len(result.runs[0].layers[0].pad_position_norm) == 64
    with pytest.raises(BadInput, match="position embeddings"):
        inspect([str(export)], texts=["this is a sample sentence"], max_length=65)


@pytest.mark.parametrize("kwargs,match", [
    ({"texts": []}, "no texts"),
    ({"texts": ["  ", ""]}, "blank"),
    ({"batch_size": 0}, "^batch_size must be at least 1"),
    ({"max_length": 1}, "^max_length must be at least 2"),
    ({"providers": ["bogus"]}, "unknown provider"),
    ({"padding_side": "middle"}, "padding side"),
])
def test_bad_arguments_raise_bad_input(export, kwargs, match):
    with pytest.raises(BadInput, match=match):
        inspect([str(export)], **{"texts": TEXTS, **kwargs})


def test_an_empty_texts_file_is_refused_before_any_model_loads(tmp_path, monkeypatch):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    monkeypatch.setattr(inspect_mod, "resolve_models", lambda *a: pytest.fail("model loaded"))
    with pytest.raises(BadInput, match="empty"):
        inspect(["whatever"], texts_file=str(empty))


def test_result_is_an_inspect_result_with_settings(export):
    result = inspect([str(export)], texts=TEXTS[:2], max_length=MAX_LEN)
    assert isinstance(result, InspectResult)
    assert result.settings.padding == "max_length" and result.padding_side == "right"
    assert result.runs[0].exposure_max_abs_diff == 0.0
