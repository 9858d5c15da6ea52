"""Session creation: provider names, availability, and providers ONNX Runtime silently drops."""
from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from padlens.errors import BadInput, ModelLoadError, ProviderError
from padlens.inspector.runtime import session as sess
from padlens.inspector.runtime.session import (
    CPU,
    PROVIDER_ALIASES,
    SessionOptions,
    check_providers,
    create_session,
    resolve_providers,
)

CUDA = "CUDAExecutionProvider"
TRT = "TensorrtExecutionProvider"


def tiny_model() -> onnx.ModelProto:
    """y = x + 1 over int64 [batch, seq]."""
    one = helper.make_tensor("one", TensorProto.INT64, [], [1])
    graph = helper.make_graph(
        [helper.make_node("Add", ["input_ids", "one"], ["y"])], "tiny",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "t"])],
        [helper.make_tensor_value_info("y", TensorProto.INT64, ["b", "t"])], [one])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.fixture
def cuda_build(monkeypatch):
    """Pretend this onnxruntime build lists CUDA (the real session will still drop it)."""
    monkeypatch.setattr(sess.ort, "get_available_providers", lambda: [TRT, CUDA, CPU])


class FakeSession:
    """Stands in for InferenceSession: records what it was asked, uses what it is told to."""

    uses: list[str] | None = None

    def __init__(self, path, sess_options=None, providers=None):
        self.path, self.options, self.providers = path, sess_options, list(providers)

    def get_providers(self):
        return list(self.uses if self.uses is not None else self.providers)


@pytest.mark.parametrize("asked, used, allow, dropped", [
    ([CPU], [CPU], False, []),
    ([CUDA, CPU], [CUDA, CPU], False, []),
    ([TRT, CUDA, CPU], [TRT, CUDA, CPU], False, []),
    ([CUDA, CPU], [CPU], True, [CUDA]),
    ([TRT, CUDA, CPU], [CUDA, CPU], True, [TRT]),
    ([CUDA, CPU], [CUDA, CPU, "AzureExecutionProvider"], False, []),
])
def test_check_providers_returns_one_warning_per_accepted_drop(asked, used, allow, dropped):
    warnings = check_providers(asked, used, allow)
    assert len(warnings) == (1 if dropped else 0)
    for provider in dropped:
        assert provider in warnings[0]


@pytest.mark.parametrize("asked, used", [
    ([CUDA, CPU], [CPU]),
    ([TRT, CUDA, CPU], [CUDA, CPU]),
    ([CUDA, CPU], []),
])
def test_check_providers_raises_when_a_provider_was_dropped_without_fallback(asked, used):
    with pytest.raises(ProviderError, match="allow_fallback=True"):
        check_providers(asked, used, allow_fallback=False)


@pytest.mark.parametrize("name, full", [
    ("cpu", CPU), ("CPU", CPU), ("cuda", CUDA), ("tensorrt", TRT), ("trt", TRT),
    ("rocm", "ROCMExecutionProvider"), ("dml", "DmlExecutionProvider"),
    ("coreml", "CoreMLExecutionProvider"), ("openvino", "OpenVINOExecutionProvider"),
    ("migraphx", "MIGraphXExecutionProvider"), (CUDA, CUDA), ("cudaexecutionprovider", CUDA),
    ("Dnnl", "DnnlExecutionProvider"),
])
def test_provider_aliases_and_full_names_map_to_ort_names(name, full):
    assert sess.canonical_provider(name) == full


def test_cpu_is_appended_last_as_the_fallback(cuda_build):
    assert resolve_providers(["cuda"]) == [CUDA, CPU]
    assert resolve_providers(["trt", "cuda", "trt"]) == [TRT, CUDA, CPU]
    assert resolve_providers(["cpu"]) == [CPU]
    assert resolve_providers(None) == [CPU]


def test_an_unknown_provider_names_the_known_ones():
    with pytest.raises(ProviderError, match="unknown provider 'tpu'.*cuda.*tensorrt"):
        resolve_providers(["tpu"])


def test_an_unavailable_provider_says_what_is_available_and_what_to_install(monkeypatch):
    monkeypatch.setattr(sess.ort, "get_available_providers", lambda: [CPU])
    with pytest.raises(ProviderError) as err:
        resolve_providers(["cuda"])
    message = str(err.value)
    assert "provider cuda (CUDAExecutionProvider) is not available" in message
    assert f"available: {CPU}" in message and "padlens[gpu]" in message
    assert set(PROVIDER_ALIASES) >= {"cpu", "cuda", "tensorrt", "trt", "rocm", "dml", "coreml",
                                     "openvino", "migraphx"}


def test_a_cpu_session_from_a_model_proto_runs(tmp_path):
    info = create_session(tiny_model(), SessionOptions(threads=1))
    assert info.asked == [CPU] and info.used == [CPU] and info.warnings == []
    out = info.session.run(["y"], {"input_ids": np.array([[1, 2]], dtype=np.int64)})[0]
    assert out.tolist() == [[2, 3]]


def _spy_mkdtemp(tmp_path, monkeypatch) -> list:
    made = []
    real_mkdtemp = sess.tempfile.mkdtemp

    def spy(*args, **kwargs):
        made.append(real_mkdtemp(*args, dir=tmp_path, **{k: v for k, v in kwargs.items() if k != "dir"}))
        return made[-1]

    monkeypatch.setattr(sess.tempfile, "mkdtemp", spy)
    return made


def test_a_model_proto_under_2_gb_is_handed_to_onnxruntime_without_touching_the_disk(tmp_path, monkeypatch):
    made = _spy_mkdtemp(tmp_path, monkeypatch)
    info = create_session(tiny_model())
    assert made == [] and list(tmp_path.iterdir()) == []
    assert info.used == [CPU]


def test_a_model_proto_past_the_limit_is_written_to_a_temporary_folder_that_is_removed(tmp_path, monkeypatch):
    from padlens.inspector.model import expose

    monkeypatch.setattr(expose, "EXTERNAL_OVER", 10)  # any model counts as "past 2 GB"
    made = _spy_mkdtemp(tmp_path, monkeypatch)
    create_session(tiny_model())
    assert len(made) == 1 and list(tmp_path.iterdir()) == []


def test_a_session_from_a_path_writes_nothing_beside_the_model(tmp_path):
    onnx.save(tiny_model(), str(tmp_path / "m.onnx"))
    create_session(tmp_path / "m.onnx")
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


def test_cuda_silently_dropped_by_onnxruntime_is_an_error(tmp_path, cpu_only_onnxruntime, cuda_build):
    onnx.save(tiny_model(), str(tmp_path / "m.onnx"))
    with pytest.raises(ProviderError, match="dropped CUDAExecutionProvider"):
        create_session(tmp_path / "m.onnx", SessionOptions(("cuda",)))


def test_cuda_dropped_with_allow_fallback_is_a_recorded_warning(tmp_path, cpu_only_onnxruntime, cuda_build):
    onnx.save(tiny_model(), str(tmp_path / "m.onnx"))
    info = create_session(tmp_path / "m.onnx", SessionOptions(("cuda",), allow_fallback=True))
    assert info.asked == [CUDA, CPU] and info.used == [CPU]
    assert len(info.warnings) == 1 and CUDA in info.warnings[0]
    assert info.provider == CPU


def test_a_session_that_uses_cuda_passes_the_check(tmp_path, cuda_build, monkeypatch):
    monkeypatch.setattr(sess.ort, "InferenceSession", FakeSession)
    info = create_session(tmp_path / "m.onnx", SessionOptions("cuda", threads=3))
    assert info.used == [CUDA, CPU] and info.warnings == [] and info.provider == CUDA
    assert info.session.providers == [CUDA, CPU]
    assert info.session.options.intra_op_num_threads == 3


def test_a_fake_session_that_drops_tensorrt_raises(tmp_path, cuda_build, monkeypatch):
    monkeypatch.setattr(FakeSession, "uses", [CUDA, CPU])
    monkeypatch.setattr(sess.ort, "InferenceSession", FakeSession)
    with pytest.raises(ProviderError, match="dropped TensorrtExecutionProvider"):
        create_session(tmp_path / "m.onnx", SessionOptions(("tensorrt", "cuda")))


def test_a_file_onnxruntime_cannot_load_is_a_model_load_error(tmp_path):
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelLoadError, match="onnxruntime cannot load"):
        create_session(tmp_path / "bad.onnx")


def test_session_options_are_frozen_and_checked_once():
    options = SessionOptions("cuda", threads="2")
    assert options.providers == ("cuda",) and options.threads == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.threads = 3
    with pytest.raises(BadInput, match="threads must be at least 1, got 0"):
        SessionOptions(threads=0)
    assert options.replace(providers=("cpu",)) == SessionOptions(("cpu",), threads=2)


def test_a_commands_run_options_give_one_session_options_per_provider():
    from padlens.inspector.inputs.options import RunOptions

    run = RunOptions(providers=("cpu", "cuda"), threads=3, allow_fallback=True)
    assert SessionOptions.of(run) == SessionOptions(("cpu", "cuda"), True, 3)
    assert SessionOptions.of(run, "cuda", mem_pattern=False) == SessionOptions(("cuda",), True, 3, False)


@pytest.mark.parametrize("mem_pattern", [True, False])
def test_every_session_option_reaches_onnxruntime(tmp_path, mem_pattern):
    info = create_session(tiny_model(), SessionOptions(threads=2, mem_pattern=mem_pattern))
    made = info.session.get_session_options()
    assert made.intra_op_num_threads == 2 and made.inter_op_num_threads == 1
    assert made.enable_mem_pattern is mem_pattern and info.options.mem_pattern is mem_pattern


def test_a_file_is_read_in_place_and_its_session_says_the_same_as_onnxruntime_reading_the_path(tmp_path, monkeypatch):
    """A self-contained file's weights are referred to, not copied: what ONNX Runtime is handed is
    smaller than the file and names its folder; the outputs are those of the file read by ORT."""
    weights = numpy_helper.from_array(np.arange(512, dtype=np.float32).reshape(64, 8), "w")
    graph = helper.make_graph(
        [helper.make_node("Gather", ["w", "input_ids"], ["y"])], "table",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "t"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", "t", 8])], [weights])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "m.onnx"))
    handed = []
    real = sess._new_session
    monkeypatch.setattr(sess, "_new_session", lambda model, options, *a: handed.append(
        (model, options.get_session_config_entry(sess.EXTERNAL_FOLDER_KEY))) or real(model, options, *a))
    ids = {"input_ids": np.array([[1, 63]], dtype=np.int64)}
    got = create_session(tmp_path / "m.onnx").session.run(None, ids)[0]
    model, folder = handed[-1]
    assert isinstance(model, bytes) and len(model) < (tmp_path / "m.onnx").stat().st_size - 1500
    assert folder == str(tmp_path)
    np.testing.assert_array_equal(got, sess.ort.InferenceSession(str(tmp_path / "m.onnx")).run(None, ids)[0])


def _chain_with_appended(extra: list[onnx.NodeProto]) -> onnx.ModelProto:
    """x → Relu h1 → Relu h2 → Relu y, then ``extra`` appended as padlens appends its statistics."""
    base = [helper.make_node("Relu", [a], [b], name=f"model.{b}") for a, b in (("x", "h1"), ("h1", "h2"), ("h2", "y"))]
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2]) for n in ["y"] + [o for e in extra for o in e.output]]
    graph = helper.make_graph(base + extra, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])], outs,
                              [numpy_helper.from_array(np.ones(2, np.float32), "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_appended_nodes_are_listed_right_after_the_node_that_completes_their_inputs():
    """ONNX Runtime's ready-first order runs, of the nodes ready at once, the one listed first: each
    appended node goes right after its last input's producer (its own inputs included), the rest keep
    their order, and the outputs are the same."""
    extra = [helper.make_node("Mul", ["h1", "w"], ["s1"], name="padlens.s1"),
             helper.make_node("Neg", ["s1"], ["s2"], name="padlens.s2"),
             helper.make_node("Add", ["h2", "h1"], ["s3"], name="padlens.s3"),
             helper.make_node("Neg", ["w"], ["s4"], name="padlens.s4")]
    model = _chain_with_appended(extra)
    moved = onnx.ModelProto.FromString(sess.added_when_ready(model.SerializeToString(), len(extra)))
    assert [n.name for n in moved.graph.node] == [
        "padlens.s4", "model.h1", "padlens.s1", "padlens.s2", "model.h2", "padlens.s3", "model.y"]
    onnx.checker.check_model(moved)  # still topologically sorted
    feeds = {"x": np.array([-1.0, 2.0], np.float32)}
    before = sess.ort.InferenceSession(model.SerializeToString()).run(None, feeds)
    after = sess.ort.InferenceSession(moved.SerializeToString()).run(None, feeds)
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)


def test_appended_nodes_the_model_reads_stay_where_they_are():
    extra = [helper.make_node("Neg", ["h1"], ["s1"], name="padlens.s1")]
    model = _chain_with_appended(extra)
    model.graph.node[2].input[0] = "s1"  # the model's last node reads the appended one: not a side branch
    raw = model.SerializeToString()
    assert sess.added_when_ready(raw, 1) is raw
    assert sess.added_when_ready(raw, 0) is raw
