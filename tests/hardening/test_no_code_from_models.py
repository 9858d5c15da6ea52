"""padlens runs no code that comes with a model: no pickle, no custom-op libraries, no trust_remote_code."""
from __future__ import annotations

import ast
import logging
from pathlib import Path

import pytest

from padlens.errors import ModelLoadError
from padlens.inspector.model.graph import load_encoder
from tests.hardening import tiny

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("padlens", "inspector", "exporter", "models")
PICKLERS = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}


def violations(source: str, where: str = "<snippet>") -> list[str]:
    """Every place in ``source`` that could run code shipped with a model."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            for name in names:
                if name.split(".")[0] in PICKLERS:
                    found.append(f"{where}:{node.lineno} imports {name}")
        if not isinstance(node, ast.Call):
            continue
        func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        kwargs = {k.arg: k.value for k in node.keywords if k.arg}
        if func == "register_custom_ops_library":
            found.append(f"{where}:{node.lineno} loads a custom-op library")
        for key in ("trust_remote_code", "allow_pickle"):
            value = kwargs.get(key)
            if value is not None and not (isinstance(value, ast.Constant) and value.value is False):
                found.append(f"{where}:{node.lineno} passes {key}={ast.unparse(value)}")
        if func == "load" and isinstance(node.func, ast.Attribute) and ast.unparse(node.func.value) == "torch":
            weights_only = kwargs.get("weights_only")
            if not (isinstance(weights_only, ast.Constant) and weights_only.value is True):
                found.append(f"{where}:{node.lineno} calls torch.load without weights_only=True")
    return found


def source_files() -> list[Path]:
    return [p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))]


def test_the_scanner_catches_each_way_of_running_model_code():
    snippet = """
import pickle
from joblib import load
import onnxruntime as ort
ort.SessionOptions().register_custom_ops_library("libevil.so")
AutoModel.from_pretrained(folder, trust_remote_code=True)
np.load(path, allow_pickle=True)
torch.load(path)
AutoModel.from_pretrained(folder, trust_remote_code=False)
torch.load(path, weights_only=True)
"""
    found = violations(snippet)
    assert len(found) == 6, found


#: Files allowed a pickle import, and why: none of them ever reads bytes that came with a model.
PICKLE_ALLOWED = {
    # The Ray job pickles the metric accumulators its own actors computed and unpickles them on the
    # driver of the same job (Ray itself pickles every task result); model files are never unpickled.
    "inspector/ray/inspect_job.py": "imports pickle",
}


def allowed(violation: str) -> bool:
    where, _, what = violation.partition(" ")
    path = where.rsplit(":", 1)[0]
    return PICKLE_ALLOWED.get(path) == what


def test_no_source_file_unpickles_loads_custom_ops_or_trusts_remote_code():
    files = source_files()
    assert len(files) > 20  # the scan really covers the packages
    found = [v for path in files for v in violations(path.read_text(), str(path.relative_to(ROOT)))]
    assert [v for v in found if not allowed(v)] == []


def test_the_pickle_allowance_is_narrow():
    assert allowed("inspector/ray/inspect_job.py:15 imports pickle")
    assert not allowed("inspector/ray/inspect_job.py:15 passes allow_pickle=True")
    assert not allowed("inspector/runtime/encoder.py:3 imports pickle")


@pytest.mark.parametrize("domain", ["com.example.evil", "ai.onnx.contrib"])
def test_a_model_with_a_custom_domain_op_is_refused_before_any_session(tmp_path, domain, monkeypatch):
    import onnxruntime as ort

    def no_session(*args, **kwargs):
        raise AssertionError("an InferenceSession was created for a model needing a custom-op library")

    monkeypatch.setattr(ort, "InferenceSession", no_session)
    path = tiny.custom_op(tmp_path / "model.onnx", domain)
    with pytest.raises(ModelLoadError, match=f"uses op 'Pwn' from domain '{domain}', which needs a "
                                             "custom-op library; padlens never loads custom-op libraries"):
        load_encoder(path)


def test_ops_onnx_runtime_implements_itself_are_not_refused_as_custom(zoo):
    assert load_encoder(zoo("ort-fused") / "model.onnx").layers.hidden  # com.microsoft fused ops
