"""The torch.onnx dynamo backend: the same file contract, gate and manifest as Optimum's, on both lanes."""
from __future__ import annotations

import json
import subprocess
import sys

import onnx
import pytest

from padlens.exporter.backends import BACKENDS, choose
from padlens.exporter.backends.optimum import _pin_excludes
from padlens.inspector.contract import PRECISION_FILES

from .conftest import ARCHITECTURES, BUILDER, LAYERS, build, transformers_major

OUTPUTS = ["last_hidden_state"] + [f"hidden_states.{i}" for i in range(LAYERS + 1)]


def padlens(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "padlens", *args], capture_output=True, text=True)


@pytest.mark.slow  # torch.onnx dynamo exports (also run by .ci/run's transformers-5 lane)
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_the_torch_backend_writes_every_precision_with_every_layer_and_dynamic_axes(torch_exports, arch):
    folder = torch_exports.export_dir(arch)
    for name in PRECISION_FILES.values():
        graph = onnx.load(str(folder / name), load_external_data=False).graph
        assert [o.name for o in graph.output] == OUTPUTS, name
        for value in [*graph.input, *graph.output]:
            dims = value.type.tensor_type.shape.dim[:2]
            assert all(d.dim_param and not d.dim_value for d in dims), f"{name}: {value.name} has fixed axes"


@pytest.mark.slow  # torch.onnx dynamo exports (also run by .ci/run's transformers-5 lane)
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_the_torch_backends_fp32_passes_the_gate_layer_by_layer_and_says_who_made_it(torch_exports, arch):
    doc = json.loads((torch_exports.export_dir(arch) / "padlens.json").read_text())
    fp32 = doc["validation"]["fp32"]
    assert doc["backend"] == "torch" and doc["architecture"] == arch
    assert fp32["passed"] and len(fp32["layers"]) == LAYERS + 1
    assert max(layer["max_abs_real"] for layer in fp32["layers"]) <= 1e-4
    assert doc["versions"]["torch"] and doc["versions"]["transformers"] and doc["versions"]["onnxscript"]
    assert doc["validation"]["int8-static"]["passed"]
    if arch == "qwen3":
        assert "position_ids" in doc["input_names"]


@pytest.mark.slow  # torch.onnx dynamo exports (also run by .ci/run's transformers-5 lane)
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_the_inspector_reads_the_torch_backends_export_layer_by_layer(torch_exports, arch):
    from padlens import inspect

    result = inspect([str(torch_exports.export_dir(arch) / "model.onnx")], texts=["the cat sat", "a dog"],
                     max_length=16)
    layers = result.runs[0].layers
    assert [layer.index for layer in layers] == list(range(LAYERS + 1))


@pytest.mark.slow  # torch.onnx dynamo exports (also run by .ci/run's transformers-5 lane)
def test_weights_above_the_limit_go_to_external_data_beside_model_onnx(tmp_path):
    build(tmp_path, ["bert"], "--external-data")
    folder = tmp_path / "out" / "bert"
    assert not (tmp_path / "out" / "bert.error").exists(), (tmp_path / "out" / "bert.error").read_text()
    graph = onnx.load(str(folder / "model.onnx"), load_external_data=False).graph
    locations = {entry.value for tensor in graph.initializer for entry in tensor.external_data
                 if entry.key == "location"}
    assert locations == {"model.onnx.data"} and (folder / "model.onnx.data").stat().st_size > 0
    assert json.loads((folder / "padlens.json").read_text())["validation"]["fp32"]["passed"]


@pytest.mark.skipif(transformers_major() < 5, reason="qwen3_5_text exists in transformers 5 only")
def test_an_architecture_torch_export_cannot_trace_is_one_error_line_and_nothing_written(tmp_path):
    made = subprocess.run([sys.executable, str(BUILDER), str(tmp_path / "src"), "qwen3_5_text"],
                          capture_output=True, text=True)
    assert made.returncode == 0, made.stderr[-2000:]
    proc = padlens("export", str(tmp_path / "src" / "qwen3_5_text"), "-o", str(tmp_path / "out"), "--backend", "torch")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and lines[-1].startswith("Error:") and "qwen3_5_text" in lines[-1], proc.stderr
    assert not [line for line in lines if line.startswith("Traceback")]
    assert not (tmp_path / "out").exists()


def test_an_optimum_pin_that_excludes_the_installed_transformers_is_named():
    assert _pin_excludes(["transformers>=99"], "0.1.0").startswith("optimum-onnx 0.1.0 pins transformers>=99")
    assert _pin_excludes(["transformers>=1"], "0.1.0") is None


def test_auto_picks_optimum_only_where_it_can_run():
    from padlens.exporter.backends import OptimumBackend

    assert choose("auto").name == ("optimum" if OptimumBackend().why_not() is None else "torch")
    assert BACKENDS == ("auto", "optimum", "torch")


@pytest.mark.skipif(transformers_major() < 5, reason="the 4.x lane has Optimum")
def test_backend_optimum_on_the_transformers_5_lane_is_one_error_line(tmp_path):
    proc = padlens("export", "minilm-l6", "-o", str(tmp_path / "out"), "--backend", "optimum")
    assert proc.returncode == 2 and proc.stderr.startswith("Error: --backend optimum: "), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
