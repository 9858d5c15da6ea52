"""Models with external data: instrumenting never writes into the user's folder; escapes are refused.

tests/inspector/model/test_graph_loading.py covers loading, `..`, absolute paths and a symlinked
data file; this module adds the write side and the escapes it does not try.
"""
from __future__ import annotations

import logging
import shutil
import tempfile

import onnx
import pytest

from padlens.errors import ModelLoadError
from padlens.inspector.inspect import inspect
from padlens.inspector.model import loader
from padlens.inspector.model.graph import save_model
from tests.hardening.conftest import snapshot
from tests.hardening.tiny import copy_tokenizer

log = logging.getLogger(__name__)


@pytest.fixture
def external_model(zoo, tmp_path):
    """The zoo's export with every weight in model.onnx.data, beside its tokenizer."""
    folder = tmp_path / "user"
    copy_tokenizer(zoo("padlens"), folder)
    model = onnx.load(str(zoo("padlens") / "model.onnx"))
    save_model(model, folder / "model.onnx", external_over=0)
    assert (folder / "model.onnx.data").is_file()
    return folder


def test_inspecting_a_model_with_external_data_writes_nothing_into_its_folder(external_model, tmp_path,
                                                                              monkeypatch):
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))
    before = snapshot(external_model)
    result = inspect([str(external_model / "model.onnx")], texts=["the cat sat on the mat"], max_length=16)
    assert result.runs[0].exposure_max_abs_diff == 0.0
    assert len(result.runs[0].layers) == 3
    assert snapshot(external_model) == before
    assert list(private_tmp.iterdir()) == []  # the instrumented copy and its data are gone too


@pytest.fixture
def no_external_reads(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("external data was read before its location was checked")

    monkeypatch.setattr(loader, "load_external_data_for_tensor", refuse)


@pytest.mark.parametrize("how", ["dotdot-after-subfolder", "symlinked-subfolder", "windows-absolute", "home"])
def test_external_data_escaping_the_folder_in_other_ways_is_refused_unread(external_model, tmp_path, how,
                                                                          no_external_reads):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    shutil.move(external_model / "model.onnx.data", outside / "model.onnx.data")
    location = {"dotdot-after-subfolder": "sub/../../elsewhere/model.onnx.data",
                "symlinked-subfolder": "sub/model.onnx.data",
                "windows-absolute": "C:\\weights\\model.onnx.data",
                "home": "~/model.onnx.data"}[how]
    if how == "dotdot-after-subfolder":
        (external_model / "sub").mkdir()
    if how == "symlinked-subfolder":
        (external_model / "sub").symlink_to(outside, target_is_directory=True)
    model = onnx.load(str(external_model / "model.onnx"), load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    onnx.save(model, str(external_model / "model.onnx"))
    with pytest.raises(ModelLoadError, match="is an absolute path|resolves outside the model's folder"):
        inspect([str(external_model / "model.onnx")], texts=["hi"], max_length=16)
