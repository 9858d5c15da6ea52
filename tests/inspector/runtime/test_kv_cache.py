"""Decoder embedders with a KV cache: an empty cache is fed on every path, present.* is never fetched.

Fixtures (tests/fixtures/kvcache.py, built in a torch subprocess): a tiny random Qwen3 exported with
Optimum's ``text-generation-with-past`` (logits + present.*), the same graph rewired to the
onnx-community layout (last_hidden_state + present.*, cache sizes only in config.json) with its
dynamic int8 copy, and Optimum's plain export through the same quantize_dynamic (no cache).
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest

from padlens.errors import ModelLoadError
from padlens.inspector.inputs.resolve import resolve_models
from padlens.inspector.inputs.tokenize import Batch
from padlens.inspector.model.graph import load_encoder
from padlens.inspector.model.loader import CACHE_ROLE, InputSpec, is_cache_output
from padlens.inspector.runtime.encoder import Encoder
from padlens.inspector.runtime.feeds import make_feeds
from padlens.inspector.stats.pooling import pool

TOLERANCE = 1e-4
CACHE_INPUTS = ["past_key_values.0.key", "past_key_values.0.value", "past_key_values.1.key",
                "past_key_values.1.value"]


def community(zoo):
    return zoo("qwen3-kv-community") / "onnx" / "model.onnx"


def logits(zoo):
    return zoo("qwen3-kv-logits") / "model.onnx"


def reference_batch(folder) -> tuple[Batch, dict]:
    ref = dict(np.load(folder / "reference.npz"))
    mask = ref["attention_mask"]
    zeros = np.zeros_like(mask)
    return Batch(ref["input_ids"], mask, zeros, ref["position_ids"], zeros, mask.sum(1), "left", 0), ref


@pytest.mark.parametrize("style, where", [("logits", "graph"), ("community", "config.json")])
def test_cache_inputs_get_the_cache_role_with_head_count_and_size_from_the_graph_or_config(zoo, style, where):
    graph = load_encoder(logits(zoo) if style == "logits" else community(zoo))
    caches = [s for s in graph.inputs if s.role == CACHE_ROLE]
    assert [s.name for s in caches] == CACHE_INPUTS
    assert {(s.dtype, s.cache_shape) for s in caches} == {("float32", (1, 16))}
    assert not any(is_cache_output(o) for o in graph.outputs)  # present.* is never fetched
    assert graph.outputs == (["logits"] if style == "logits" else ["last_hidden_state"])


def test_a_symbolic_cache_without_config_json_is_sized_from_the_graph_itself(zoo, tmp_path):
    shutil.copy(community(zoo), tmp_path / "model.onnx")  # no config.json beside it (as quantize's copy)
    caches = [s for s in load_encoder(tmp_path / "model.onnx").inputs if s.role == CACHE_ROLE]
    assert len(caches) == 4 and {s.cache_shape for s in caches} == {(1, 16)}


def test_a_cache_nothing_sizes_is_one_error_naming_the_input(tmp_path):
    from onnx import TensorProto, helper

    from padlens.inspector.model.loader import recognise_inputs

    graph = helper.make_graph(
        [helper.make_node("Identity", ["input_ids"], ["out"])], "g",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "t"]),
         helper.make_tensor_value_info("past_key_values.0.key", TensorProto.FLOAT, ["b", "h", "p", "d"])],
        [helper.make_tensor_value_info("out", TensorProto.INT64, ["b", "t"])])
    with pytest.raises(ModelLoadError, match="cannot tell the shape of cache input 'past_key_values.0.key'"):
        recognise_inputs(tmp_path / "model.onnx", graph)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_the_cache_is_fed_empty_in_its_declared_dtype(dtype):
    batch = Batch(*(np.ones((3, 5), np.int64),) * 5, np.full(3, 5), "left", 0)
    specs = [InputSpec("input_ids", "input_ids", "int64"), InputSpec("past_key_values.0.key", CACHE_ROLE, dtype, (2, 8))]
    feeds = make_feeds(specs, batch)
    cache = feeds["past_key_values.0.key"]
    assert cache.shape == (3, 2, 0, 8) and cache.dtype == np.dtype(dtype)


@pytest.mark.parametrize("style", ["community", "logits"])
def test_located_states_of_a_kv_cache_graph_equal_pytorch_on_a_left_padded_batch(zoo, style):
    path = logits(zoo) if style == "logits" else community(zoo)
    encoder = Encoder.open(resolve_models([path], tokenizer=zoo("qwen3-kv-community"))[0])
    batch, ref = reference_batch(zoo("qwen3-kv-community"))
    forward = encoder.run(batch)
    real = batch.attention_mask.astype(bool)
    assert len(forward.hidden) == 3
    for i, h in enumerate(forward.hidden):
        assert np.abs(h - ref[f"hidden_{i}"])[real].max() < TOLERANCE, f"layer {i}"
    assert not any(is_cache_output(o) for o in forward.outputs)
    assert encoder.verify_exposure(batch, forward) == 0.0


def test_last_token_pooling_on_left_padding_equals_pytorch_each_text_alone(zoo):
    folder = zoo("qwen3-kv-community")
    encoder = Encoder.open(resolve_models([folder / "onnx" / "model.onnx"])[0])
    texts = json.loads((folder / "texts.json").read_text())
    batch = encoder.encode(texts, max_length=32, padding="longest", side="left")
    assert (batch.attention_mask[:, 0] == 0).any()  # some text is left-padded
    pooled = pool(encoder.run(batch).hidden[-1], batch.attention_mask, "lasttoken")
    np.testing.assert_allclose(pooled, np.load(folder / "last_token.npy"), atol=TOLERANCE)


def test_embed_pools_the_last_token_of_the_community_layout_like_pytorch(zoo, tmp_path, cli_run):
    folder = zoo("qwen3-kv-community")
    texts = json.loads((folder / "texts.json").read_text())
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n")
    code, _, err = cli_run("embed", folder / "onnx" / "model.onnx", "--texts", tmp_path / "texts.txt",
                           "-o", tmp_path / "emb.npy", "--pooling", "lasttoken")
    assert code == 0, err
    np.testing.assert_allclose(np.load(tmp_path / "emb.npy"), np.load(folder / "last_token.npy"), atol=TOLERANCE)


def test_embed_of_a_logits_only_graph_is_one_error_line(zoo, tmp_path, cli_run):
    (tmp_path / "texts.txt").write_text("a dog\n")
    code, out, err = cli_run("embed", logits(zoo), "--tokenizer", zoo("qwen3-kv-community"), "--texts",
                             tmp_path / "texts.txt", "-o", tmp_path / "emb.npy")
    assert code == 2 and not (tmp_path / "emb.npy").exists()
    assert err.startswith("Error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert "needs last_hidden_state" in err and "logits" in err


def test_inspect_of_a_logits_only_graph_runs_through_its_located_layers(zoo, tmp_path, cli_run):
    code, _, err = cli_run("inspect", logits(zoo), "--tokenizer", zoo("qwen3-kv-community"),
                           "--text", "a dog", "--text", "the cat sat on the mat", "--json", tmp_path / "i.json")
    assert code == 0, err
    layers = json.loads((tmp_path / "i.json").read_text())["runs"][0]["layers"]
    assert [layer["index"] for layer in layers] == [0, 1, 2]


def test_audit_dynamic_int8_with_a_cache_fails_as_without_one_and_fp32_passes(zoo, tmp_path, cli_run):
    folder = zoo("qwen3-kv-community")
    code, _, err = cli_run("audit", folder / "onnx" / "model.onnx", folder / "onnx" / "model_quantized.onnx",
                           folder / "nocache" / "model_quantized.onnx", "--json", tmp_path / "a.json")
    assert code == 1, err
    checks = json.loads((tmp_path / "a.json").read_text())["checks"]
    verdict = {("/".join(c["model"].split("/")[-2:]), c["name"]): c for c in checks}
    assert verdict[("onnx/model", "padding_invariance")]["passed"]
    assert verdict[("onnx/model", "batch_neighbour_invariance")]["passed"]
    for name in ("padding_invariance", "batch_neighbour_invariance"):
        cached, plain = verdict[("onnx/model_quantized", name)], verdict[("nocache/model_quantized", name)]
        assert not cached["passed"] and not plain["passed"]
        assert cached["value"] == pytest.approx(plain["value"], abs=1e-6)


def test_the_cache_inputs_are_declared_as_optimum_writes_them(zoo):
    model = onnx.load(str(logits(zoo)), load_external_data=False)
    names = [i.name for i in model.graph.input]
    assert names[:3] == ["input_ids", "attention_mask", "position_ids"] and names[3:] == CACHE_INPUTS
