"""In-graph pad statistics equal the float64 numpy reference on the same batches (within 1e-6): the per-layer
sums taken by the compiled module from the states the session returns (``fused``, the default on the CPU),
or by ONNX operators inside the graph (``graph``, where the module is not built or the provider is not the
CPU); the attention masses are taken in the graph either way."""
from __future__ import annotations

import math

import numpy as np
import onnx.numpy_helper
import pytest

from padlens.inspector.inputs.resolve import resolve_models
from padlens.inspector.inputs.texts import default_corpus
from padlens.inspector.inspect import inspect
from padlens.inspector.runtime.encoder import Encoder
from padlens.inspector.stats import accumulators as acc
from padlens.inspector.stats import fused as fused_sums
from padlens.inspector.stats import ingraph

TOL = 1e-6
STYLES = ["padlens", "torchscript", "dynamo", "ort-fused", "int8-dynamic", "int8-qdq"]


@pytest.fixture
def graph_sums(monkeypatch):
    """Every per-layer sum as ONNX operators in the graph, as where the compiled module is not built."""
    monkeypatch.setattr(fused_sums, "available", lambda: False)


@pytest.fixture(params=["fused", "graph"])
def sums_path(request, monkeypatch) -> str:
    """Each test runs twice: the per-layer sums by the compiled module, and by operators in the graph."""
    if request.param == "graph":
        monkeypatch.setattr(fused_sums, "available", lambda: False)
    return request.param


def _check_path(enc: Encoder, path: str) -> None:
    assert enc.uses_stats and enc.stats.fused == (path == "fused"), enc.stats
    if path == "fused":  # nothing per layer in the graph: its states are fetched
        assert enc.stats.fetch[:enc.num_layers + 1] == list(enc.stats.hidden) and not enc.stats.layers


def _open(folder, **kwargs) -> Encoder:
    path = folder if (folder / "padlens.json").exists() else folder / "model.onnx"
    return Encoder.open(resolve_models([str(path)], str(folder))[0], **kwargs)


def _batches(enc: Encoder, side: str, n: int = 3, size: int = 8, length: int = 24):
    texts = default_corpus()
    for i in range(n):
        yield enc.tokenizer.encode(texts[i * size:(i + 1) * size], max_length=length, padding="max_length",
                                   side=side)


def _both_paths(enc: Encoder, batches, plain: Encoder | None = None) -> tuple[dict, dict]:
    """Accumulators filled from the states and attention maps of ``plain`` (numpy, float64; default:
    ``enc`` opened again without the statistics, which exposes the maps the statistics graph reads
    inside) and from ``enc``'s in-graph sums."""
    plain = plain or _open(enc.ref.path.parent if enc.ref.path.name == "model.onnx" else enc.ref.path)
    n = enc.num_layers + 1
    ref = {"pads": [acc.PadStats(64) for _ in range(n)], "attn": [None] + [acc.AttentionStats() for _ in range(n - 1)],
           "texts": acc.TextStats()}
    got = {"pads": [acc.PadStats(64) for _ in range(n)], "attn": [None] + [acc.AttentionStats() for _ in range(n - 1)],
           "texts": acc.TextStats()}
    for batch in batches:
        mask = batch.attention_mask
        forward = plain.run(batch)
        for stats, h in zip(ref["pads"], forward.hidden):
            stats.add(h, mask)
        for stats, probs in zip(ref["attn"][1:], forward.attention):
            stats.add(probs, mask)
        ref["texts"].add(forward.hidden[-1], mask)
        sums = enc.run_stats(batch)
        assert sums.valid
        ingraph.accumulate(sums, mask, got["pads"], got["attn"] if forward.attention else [], got["texts"])
    return ref, got


def assert_close(a, b, what: str, rel: bool = False) -> None:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, what
    assert np.array_equal(np.isnan(a), np.isnan(b)), what
    scale = np.maximum(1.0, np.abs(a)) if rel else 1.0
    diff = np.where(np.isnan(a), 0.0, np.abs(a - b) / scale)
    assert diff.max(initial=0.0) <= TOL, f"{what}: off by {diff.max():.3g}"


def assert_same_stats(ref: dict, got: dict) -> None:
    for i, (a, b) in enumerate(zip(ref["pads"], got["pads"])):
        assert (a.sequences, a.failed, a.without_pads, a.single_pad) == (b.sequences, b.failed, b.without_pads,
                                                                         b.single_pad)
        assert a.values.counts == b.values.counts
        for name, value in a.means().items():
            assert_close(value, b.means()[name], f"layer {i} {name}", rel=name.endswith("norm"))
        assert a.offset_curve().keys() == b.offset_curve().keys()
        for key, value in a.offset_curve().items():
            assert_close(value, b.offset_curve()[key], f"layer {i} offset {key}")
        assert np.array_equal(a.position_count, b.position_count)
        assert_close(a.position_means(), b.position_means(), f"layer {i} position means", rel=True)
    for i, (a, b) in enumerate(zip(ref["attn"][1:], got["attn"][1:]), 1):
        assert (a.sequences, a.failed) == (b.sequences, b.failed)
        for name, value in a.means().items():
            assert_close(value, b.means()[name], f"layer {i} attention {name}")
    ta, tb = ref["texts"], got["texts"]
    assert (ta.texts, ta.failed, ta.kept) == (tb.texts, tb.failed, tb.kept)
    for key, value in ta.pooling().items():
        assert_close(value, tb.pooling()[key], f"pooling {key}")
    assert_close(ta.pad_content_rsa(), tb.pad_content_rsa(), "pad_content_rsa")
    for key in ("masked", "unmasked", "pad"):
        assert_close(ta.stacked(key), tb.stacked(key), f"kept {key} vectors", rel=True)


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("style", STYLES)
def test_in_graph_statistics_equal_the_float64_reference_on_the_same_batches(zoo, style, side, sums_path):
    enc = _open(zoo(style), stats=True)
    _check_path(enc, sums_path)
    assert enc.describe().stats == "graph"
    ref, got = _both_paths(enc, list(_batches(enc, side)))
    assert ref["pads"][0].sequences == 24 and ref["pads"][0].values.counts["pad_pad_cos"] > 0
    assert_same_stats(ref, got)


def test_attention_masses_come_from_the_graph_where_attention_maps_were_located(zoo):
    enc = _open(zoo("padlens"), stats=True)
    maps = [str(t) for t in enc.graph.layers.attention]
    assert len(enc.stats.attention) == len(maps) == enc.num_layers
    # read inside the graph, not exposed: a graph output would live until the run ends
    assert enc.attention_outputs == [] and not set(maps) & {o.name for o in enc.session.session.get_outputs()}
    ref, got = _both_paths(enc, list(_batches(enc, "right", n=1)))
    assert got["attn"][1].sequences == 8 and not math.isnan(got["attn"][1].means()["pad_to_pad"])
    assert_same_stats(ref, got)


def test_each_blocks_statistics_run_before_the_next_block_so_its_map_is_freed(zoo, monkeypatch, tmp_path):
    """ONNX Runtime's default order runs the statistics after the last block, every attention map kept
    until then; the statistics session runs each node once its inputs are ready."""
    import json

    from padlens.inspector.runtime import session as session_mod

    made = session_mod._ort_options

    def profiled(options):
        ort_options = made(options)
        ort_options.enable_profiling, ort_options.profile_file_prefix = True, str(tmp_path / "profile")
        return ort_options

    monkeypatch.setattr(session_mod, "_ort_options", profiled)
    enc = _open(zoo("padlens"), stats=True)
    assert enc.session.options.ready_first
    enc.run_stats(next(_batches(enc, "right", n=1)))
    events = json.loads(open(enc.session.session.end_profiling()).read())

    def heads_summed(event) -> bool:  # the statistics' ReduceSum over a [B, heads, T, T] map
        shape = next(iter(event["args"]["input_type_shape"][0].values()))
        return event["name"].startswith(ingraph.PREFIX) and event["args"]["op_name"] == "ReduceSum" and len(shape) == 4

    ops = [e["args"]["op_name"] for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")
           and (e["args"]["op_name"] == "Softmax" or heads_summed(e))]
    last_run = ops[-2 * enc.num_layers:]
    assert last_run == ["Softmax", "ReduceSum"] * enc.num_layers, ops


@pytest.mark.parametrize("style", STYLES)
def test_the_graph_knows_the_width_the_steps_conv_needs(zoo, style, graph_sums):
    enc = _open(zoo(style), stats=True)
    assert enc.stats.width == enc.graph.layers.hidden_size == 32


def test_the_neighbour_steps_read_each_layers_states_once(zoo):
    """‖h_t − h_{t+1}‖ in one pass over each layer's states: a Conv dilated by the width over the states
    laid end to end where the width is known, else h minus h shifted by a cropping Pad (one copy, where
    two slices made two). The equality with the reference is test_in_graph_statistics_equal_…"""
    enc = _open(zoo("padlens"))
    hidden = [str(t) for t in enc.graph.layers.hidden]
    width = enc.graph.layers.hidden_size
    conv, _ = ingraph.build(enc.graph.model, hidden, [], enc.graph.float_dtype, width=width)
    padded, _ = ingraph.build(enc.graph.model, hidden, [], enc.graph.float_dtype)
    for name in hidden:
        readers = sorted(n.op_type for n in conv.graph.node if name in n.input)
        assert "Pad" not in readers and "Slice" not in readers, (name, readers)
        flat = {n.output[0] for n in conv.graph.node if name in n.input and n.op_type == "Reshape"}
        (step,) = [n for n in conv.graph.node if n.op_type == "Conv" and n.input[0] in flat]
        attrs = {a.name: list(a.ints) for a in step.attribute}
        assert step.op_type == "Conv" and attrs["dilations"] == [width] and attrs["pads"] == [width, 0], step
        readers = sorted(n.op_type for n in padded.graph.node if name in n.input)
        assert readers.count("Pad") == 1 and "Slice" not in readers and "Reshape" not in readers, (name, readers)


def test_sums_of_squares_add_runs_of_32_where_the_width_allows(zoo):
    """ONNX Runtime's ReduceSumSquare adds a row's squares one after the other: with the width known, every
    row is cut in runs of 32 and the runs' sums added by a ReduceSum; without it, one ReduceSumSquare a row."""
    enc = _open(zoo("padlens"))
    hidden = [str(t) for t in enc.graph.layers.hidden]
    for width in (enc.graph.layers.hidden_size, None):
        delta, plan = ingraph.build(enc.graph.model, hidden, [], enc.graph.float_dtype, width=width)
        made = {o: n for n in delta.graph.node for o in n.output}
        consts = {t.name: onnx.numpy_helper.to_array(t) for t in delta.graph.initializer}
        for layer in plan.layers:
            for out in (layer.sq, layer.steps):
                node = made[out]
                if width:
                    squares = made[node.input[0]]
                    shape = consts[made[squares.input[0]].input[1]]
                    assert (node.op_type, squares.op_type, int(shape[-1])) == ("ReduceSum", "ReduceSumSquare", 32)
                else:
                    assert node.op_type == "ReduceSumSquare" and made.get(node.input[0], node).op_type != "Reshape"


def test_the_last_layers_pooled_sums_share_its_pad_and_real_sums_matmul(zoo):
    """The pooled sums of the last layer are rows of the same MatMul as its pad / real / anchor sums: its
    states are read by as many MatMuls as any other layer's, none of them fed the text weights directly."""
    enc = _open(zoo("padlens"))
    hidden = [str(t) for t in enc.graph.layers.hidden]
    delta, plan = ingraph.build(enc.graph.model, hidden, [], enc.graph.float_dtype, width=enc.graph.layers.hidden_size)
    made = {o: n for n in delta.graph.node for o in n.output}

    def matmuls(name: str) -> int:
        return sum(n.op_type == "MatMul" for n in delta.graph.node if name in n.input)

    assert len({matmuls(name) for name in hidden}) == 1, [matmuls(name) for name in hidden]
    assert made[plan.text].op_type == "Slice" and made[plan.layers[-1].sums].op_type == "Slice"
    assert made[plan.text].input[0] == made[plan.layers[-1].sums].input[0]  # one MatMul, two row ranges
    assert not any(ingraph.IN_TEXT in n.input for n in delta.graph.node if n.op_type == "MatMul")


@pytest.mark.parametrize("side", ["right", "left"])
def test_the_steps_made_with_a_pad_equal_the_reference_too(zoo, monkeypatch, side, graph_sums):
    """A graph that does not say its width gets the Pad form of the steps, and the same statistics."""
    built = ingraph.build
    monkeypatch.setattr(ingraph, "build", lambda *a, **k: built(*a, **{**k, "width": None}))
    enc = _open(zoo("padlens"), stats=True)
    assert enc.stats.width == 0 and enc.describe().stats == "graph"
    ref, got = _both_paths(enc, list(_batches(enc, side)))
    assert_same_stats(ref, got)


def test_a_graph_whose_states_are_not_the_width_it_declares_is_measured_in_numpy_and_says_why(zoo, monkeypatch,
                                                                                               graph_sums):
    """The steps' Conv is built for the declared width; states of another width would give wrong steps,
    so the first batch's sums are checked and the run goes the numpy way, saying why."""
    built = ingraph.build
    monkeypatch.setattr(ingraph, "build", lambda *a, **k: built(*a, **{**k, "width": 16}))
    kwargs = {"texts": default_corpus()[:24], "max_length": 24, "batch_size": 8}
    numpy = inspect([str(zoo("padlens"))], stats="numpy", **kwargs).to_dict()
    result = inspect([str(zoo("padlens"))], stats="graph", **kwargs)
    assert result.runs[0].encoder.stats.startswith("numpy: the statistics graph failed to run (the graph declares "
                                                   "hidden states 16 wide, they are 32"), result.runs[0].encoder.stats
    _assert_same_json(numpy, result.to_dict())


def test_a_statistics_graph_that_fails_to_run_reopens_with_the_maps_and_measures_the_same(zoo, monkeypatch):
    from padlens.errors import ModelLoadError

    kwargs = {"texts": default_corpus()[:24], "max_length": 24, "batch_size": 8}
    numpy = inspect([str(zoo("padlens"))], stats="numpy", **kwargs).to_dict()

    def broken(self, batch):
        raise ModelLoadError("injected failure")

    monkeypatch.setattr(Encoder, "run_stats", broken)
    result = inspect([str(zoo("padlens"))], stats="graph", **kwargs)
    assert result.runs[0].encoder.stats.startswith("numpy: the statistics graph failed to run (injected failure)")
    assert not math.isnan(result.runs[0].layers[1].attn_pad_to_pad)
    _assert_same_json(numpy, result.to_dict())


def test_statistics_of_batches_merged_equal_those_of_one_accumulator(zoo, sums_path):
    enc = _open(zoo("padlens"), stats=True)
    _check_path(enc, sums_path)
    batches = list(_batches(enc, "right"))
    _, whole = _both_paths(enc, batches)
    _, first = _both_paths(enc, batches[:1])
    _, rest = _both_paths(enc, batches[1:])
    for key in ("pads", "attn"):
        for a, b in zip(first[key], rest[key]):
            if a is not None:
                a.merge(b)
    first["texts"].merge(rest["texts"])
    assert_same_stats(whole, first)


@pytest.mark.parametrize("padding", ["max_length", "longest"])
def test_inspect_gives_the_same_json_with_graph_and_numpy_statistics(zoo, padding, sums_path):
    kwargs = {"texts": default_corpus()[:40], "max_length": 32, "batch_size": 16, "padding": padding}
    graph = inspect([str(zoo("padlens"))], stats="graph", **kwargs).to_dict()
    numpy = inspect([str(zoo("padlens"))], stats="numpy", **kwargs).to_dict()
    assert graph["runs"][0]["encoder"]["stats"] == "graph" and graph["settings"]["stats"] == "graph"
    assert numpy["runs"][0]["encoder"]["stats"] == "" and numpy["settings"]["stats"] == "numpy"
    _assert_same_json(numpy, graph)


def _assert_same_json(a, b, path: str = "") -> None:
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for key in a:
            if key not in ("timings", "stats"):
                _assert_same_json(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same_json(x, y, f"{path}[{i}]")
    elif isinstance(a, float):
        assert isinstance(b, float) and (math.isnan(a) and math.isnan(b) or
                                         abs(a - b) <= TOL * max(1.0, abs(a))), f"{path}: {a} vs {b}"
    else:
        assert a == b, f"{path}: {a!r} vs {b!r}"


def test_a_batch_with_nan_states_is_measured_from_its_states_and_names_its_faults(zoo, tmp_path, sums_path):
    import json

    from tests.hardening import tiny

    src = zoo("padlens")
    vocab = json.loads((src / "tokenizer.json").read_text())["model"]["vocab"]
    tiny.copy_tokenizer(src, tmp_path)
    tiny.nan_rows(tmp_path / "model.onnx", max(vocab.values()) + 1, vocab["cat"])
    texts = ["the cat sat on the mat", "a dog", "this is a sample sentence", "short text"] * 3
    kwargs = {"texts": texts, "max_length": 16, "batch_size": 4}
    graph = inspect([str(tmp_path)], stats="graph", **kwargs)
    numpy = inspect([str(tmp_path)], stats="numpy", **kwargs)
    assert graph.runs[0].encoder.stats == "graph"
    assert [f.text_index for f in graph.runs[0].faults] == [f.text_index for f in numpy.runs[0].faults] != []
    assert graph.runs[0].layers[1].failed == numpy.runs[0].layers[1].failed == 3
    _assert_same_json(numpy.to_dict(), graph.to_dict())


def test_a_graph_that_fixes_its_batch_runs_the_numpy_path_and_says_why(zoo, tmp_path):
    from tests.inspector.runtime.test_production import fix_input_dims

    fixed = fix_input_dims(zoo("torchscript"), tmp_path / "fixed", batch=1, length=16)
    enc = _open(fixed, stats=True)
    assert enc.stats is None and not enc.uses_stats
    assert enc.describe().stats.startswith("numpy: the graph fixes its batch or length")


def test_float16_states_run_the_numpy_path_and_say_why(zoo):
    enc = _open(zoo("ort-fused-fp16"), stats=True)
    assert enc.stats is None and enc.describe().stats.startswith("numpy: hidden states of type float16")


def test_statistics_are_only_added_when_asked(zoo):
    enc = _open(zoo("padlens"))
    assert enc.stats is None and enc.describe().stats == ""
    assert not any(o.name.startswith(ingraph.PREFIX) for o in enc.session.session.get_outputs())


def test_an_unknown_stats_mode_is_bad_input(zoo):
    from padlens.errors import BadInput

    with pytest.raises(BadInput, match="stats must be one of graph, numpy"):
        inspect([str(zoo("padlens"))], texts=["a text"], stats="gpu")


@pytest.mark.slow
def test_minilm_in_graph_statistics_equal_the_reference(minilm_export, sums_path):
    enc = Encoder.open(resolve_models([str(minilm_export)])[0], stats=True)  # exported in a subprocess
    _check_path(enc, sums_path)
    texts = default_corpus()
    batches = [enc.tokenizer.encode(texts[i:i + 16], max_length=128, padding="max_length", side="right")
               for i in range(0, 48, 16)]
    ref, got = _both_paths(enc, batches)
    assert_same_stats(ref, got)


def test_the_cli_takes_stats_numpy_and_writes_it_in_the_json(zoo, tmp_path):
    import json

    from tests.conftest import run_padlens

    out = tmp_path / "pads.json"
    done = run_padlens("-q", "inspect", zoo("padlens"), "--text", "a sample sentence", "--max-length", "16",
                       "--stats", "numpy", "--json", out, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text())["settings"]["stats"] == "numpy"


def test_a_one_head_attention_map_without_a_heads_axis_gives_the_reference_masses(zoo, tmp_path):
    """The toy's Softmax is [B, T, T]: the graph reads it as [B, 1, T, T] (a mean over queries
    instead of heads would be far off)."""
    from tests.inspector.audit import toys

    folder = toys.make("honest", tmp_path / "honest", zoo("padlens"))
    enc = _open(folder, stats=True)
    assert enc.uses_stats and len(enc.stats.attention) == 1
    ref, got = _both_paths(enc, list(_batches(enc, "right")))
    assert ref["attn"][1].sequences == 24
    assert_same_stats(ref, got)


def test_zero_pad_states_give_the_same_statistics_in_graph_as_in_numpy(zoo, sums_path):
    """A left-padded decoder with a zero pad row: every pad state exactly zero at every layer."""
    enc = _open(zoo("qwen3-zero-pad"), stats=True)
    _check_path(enc, sums_path)
    batches = list(_batches(enc, "left"))
    for batch in batches:
        for h in enc.run(batch).hidden:
            assert not h[batch.attention_mask == 0].any()  # the fixture's promise
    ref, got = _both_paths(enc, batches)
    assert_same_stats(ref, got)
    for a, b in zip(ref["pads"], got["pads"]):
        assert a.zero_pads == a.pads == b.zero_pads == b.pads > 0 and a.failed == b.failed == 0
        assert a.means()["pad_norm"] == b.means()["pad_norm"] == 0.0
        assert a.values.counts["real_norm"] == a.sequences
