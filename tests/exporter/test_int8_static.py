"""int8-static: the recipe's graph (float outputs, float mask path, per-channel weights, excluded
nodes float), padding invariance of the export, and its quality on the real MiniLM."""
from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from padlens.exporter import precision

from .conftest import ARCHITECTURES

pytestmark = pytest.mark.slow  # tiny exports of every architecture, calibrated (one module fixture, ~25 s)


def load(tiny, arch, name="int8-static"):
    return onnx.load(str(tiny.model(arch, name)))


def producers(graph):
    return {out: node for node in graph.node for out in node.output}


def users(graph):
    out = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            out[name].append(node)
    return out


def manifest(tiny, arch):
    return json.loads((tiny.export_dir(arch) / "padlens.json").read_text())


def rows(tiny, arch, lengths, seed=0):
    """Random non-pad token ids, one row per length (no padding)."""
    doc = manifest(tiny, arch)
    rng = np.random.default_rng(seed)
    pad, vocab = doc["pad_token_id"], doc["vocab_size"]
    out = []
    for n in lengths:
        ids = rng.integers(0, vocab - 1, n)
        out.append(np.where(ids >= pad, ids + 1, ids).astype(np.int64))
    return out


def batch(session, seqs, width):
    """Graph inputs for ``seqs`` right-padded to ``width``."""
    ids = np.zeros((len(seqs), width), np.int64)
    mask = np.zeros_like(ids)
    for r, seq in enumerate(seqs):
        ids[r, :len(seq)], mask[r, :len(seq)] = seq, 1
    feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    return {i.name: feed[i.name] for i in session.get_inputs()}


def run(session, seqs, width):
    return session.run(None, batch(session, seqs, width))


# ---------------------------------------------------------------------------- the graph


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_int8_static_quantizes_matmul_inputs_and_leaves_their_outputs_float(tiny, arch):
    g = load(tiny, arch).graph
    uses = users(g)
    matmuls = [n for n in g.node if n.op_type == "MatMul"]
    assert matmuls
    for node in matmuls:
        assert all(u.op_type != "QuantizeLinear" for u in uses[node.output[0]]), node.name
    assert len(precision.quantized_nodes(load(tiny, arch))) == len(matmuls)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_int8_static_stores_one_weight_scale_per_output_channel(tiny, arch):
    g = load(tiny, arch).graph
    init = {t.name: t for t in g.initializer}
    weights = 0
    for node in g.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in init:
            w = init[node.input[0]]
            scale = numpy_helper.to_array(init[node.input[1]])
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            assert w.data_type == onnx.TensorProto.INT8, node.name
            assert scale.ndim == 1 and scale.shape[0] == w.dims[axis] > 1, node.name
            assert np.all(numpy_helper.to_array(init[node.input[2]]) == 0), node.name  # symmetric
            weights += 1
    assert weights > 0


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_int8_static_activations_are_uint8_with_constant_scales(tiny, arch):
    g = load(tiny, arch).graph
    init = {t.name for t in g.initializer}
    quant = [n for n in g.node if n.op_type == "QuantizeLinear"]
    assert quant and all(n.input[1] in init and n.input[2] in init for n in quant)
    zero_points = {t.name: t for t in g.initializer}
    assert {zero_points[n.input[2]].data_type for n in quant} == {onnx.TensorProto.UINT8}


@pytest.mark.parametrize("arch", ("bert", "roberta"))
def test_excluded_matmuls_keep_float_inputs_even_when_a_neighbour_shares_them(tiny, arch, tmp_path):
    fp32 = tiny.model(arch, "fp32")
    names = [n.name for n in onnx.load(str(fp32), load_external_data=False).graph.node if n.op_type == "MatMul"]
    query = next(n for n in names if "query" in n)
    recipe = precision.StaticRecipe(exclude=(query,))
    sess = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"])
    feeds = [batch(sess, [seq], len(seq)) for seq in rows(tiny, arch, (5, 9, 3))]
    done = precision.quantize_int8_static(fp32, tmp_path / "q.onnx", feeds, recipe)
    g = onnx.load(str(tmp_path / "q.onnx")).graph
    prod, init = producers(g), {t.name for t in g.initializer}
    node = next(n for n in g.node if n.name == query)
    assert all(prod.get(i) is None or prod[i].op_type not in ("DequantizeLinear", "QuantizeLinear")
               for i in node.input) and node.input[1] in init
    key = next(n for n in g.node if "key" in n.name and n.op_type == "MatMul")
    assert prod[key.input[0]].op_type == "DequantizeLinear"  # the neighbour on the same input stays int8
    assert done["float_nodes"] == [query] and done["quantized_nodes"] == len(names) - 1
    used = {i for n in g.node for i in n.input}
    assert all(o in used for n in g.node if n.op_type in ("QuantizeLinear", "DequantizeLinear") for o in n.output)


@pytest.mark.parametrize("method", ("Percentile", "Entropy"))
def test_histogram_calibrators_take_unpadded_texts_of_different_lengths(tiny, tmp_path, method):
    fp32 = tiny.model("bert", "fp32")
    sess = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"])
    feeds = [batch(sess, [seq], len(seq)) for seq in rows(tiny, "bert", (4, 11, 7, 16))]
    done = precision.quantize_int8_static(fp32, tmp_path / "q.onnx", feeds,
                                          precision.StaticRecipe(calibration_method=method))
    assert done["calibration_method"] == method and done["quantized_nodes"] > 0
    out = ort.InferenceSession(str(tmp_path / "q.onnx"), providers=["CPUExecutionProvider"]).run(
        ["last_hidden_state"], feeds[1])[0]
    assert np.all(np.isfinite(out))


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_padlens_json_records_the_int8_static_recipe(tiny, arch):
    entry = manifest(tiny, arch)["precisions"]["int8-static"]["quantization"]
    recipe = precision.STATIC_RECIPE.to_dict()
    assert {k: entry[k] for k in recipe} == json.loads(json.dumps(recipe))
    matmuls = sum(n.op_type == "MatMul" for n in load(tiny, arch).graph.node)
    assert entry["quantized_nodes"] == matmuls and entry["float_nodes"] == []
    assert entry["calibration"]["texts"] > 0 and entry["calibration"]["source"] == "sample corpus"
    dynamic = manifest(tiny, arch)["precisions"]["int8-dynamic"]["quantization"]
    assert dynamic["method"].startswith("dynamic")


# ---------------------------------------------------------------------------- padding


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_int8_static_real_tokens_do_not_move_with_padding_or_batch_neighbours(tiny, arch):
    sess = ort.InferenceSession(str(tiny.model(arch, "int8-static")), providers=["CPUExecutionProvider"])
    short, text, long = rows(tiny, arch, (3, 9, 40), seed=1)
    n = len(text)
    alone = run(sess, [text], n)
    for width in (n + 1, n + 8, 64):
        for a, b in zip(alone, run(sess, [text], width)):
            np.testing.assert_array_equal(a[0], b[0, :n])
    for a, b in zip(alone, run(sess, [short, text, long], 64)):
        np.testing.assert_array_equal(a[0], b[1, :n])


# ---------------------------------------------------------------------------- real MiniLM


def pooled(session, tokenizer, texts):
    """Masked mean pooling + L2 normalisation (sentence-transformers' MiniLM), one text per run."""
    out = []
    for text in texts:
        ids = np.asarray([tokenizer.encode(text).ids], np.int64)
        h = session.run(["last_hidden_state"], batch(session, [ids[0]], ids.shape[1]))[0][0].astype(np.float64)
        e = h.mean(axis=0)
        out.append(e / np.linalg.norm(e))
    return np.stack(out)


@pytest.mark.slow
def test_minilm_int8_static_pooled_cosine_on_held_out_texts_is_at_least_0_98_mean_and_0_95_worst(minilm_all):
    from tokenizers import Tokenizer

    from padlens.exporter import texts

    out = minilm_all.path  # `padlens export minilm-l6` (every precision), once per session
    calibration, _ = texts.calibration_split(None)
    corpus = list(dict.fromkeys(texts.sample_corpus()))
    heldout = [t for t in corpus[3::4] if t not in set(calibration)]
    assert len(heldout) >= 90
    tokenizer = Tokenizer.from_file(str(out / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(128)
    ref, q = (pooled(ort.InferenceSession(str(out / f), providers=["CPUExecutionProvider"]), tokenizer, heldout)
              for f in ("model.onnx", "model.int8-static.onnx"))
    cos = (ref * q).sum(axis=1)
    assert cos.mean() >= 0.98 and cos.min() >= 0.95, (cos.mean(), cos.min())
