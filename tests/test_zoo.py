"""The test zoo: one builder process builds every style as a fresh process would, and the disk
store serves a style only while the builder's sources and package versions are unchanged."""
from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests import conftest
from tests.conftest import BUILDER, ModelZoo, zoo_key


def test_a_kept_style_is_served_as_a_copy_so_tests_cannot_change_the_store(tmp_path):
    kept = tmp_path / "store" / "padlens"
    kept.mkdir(parents=True)
    (kept / "model.onnx").write_bytes(b"kept bytes")
    models = ModelZoo(tmp_path / "session", tmp_path / "store")
    (tmp_path / "session").mkdir()
    served = models("padlens")
    assert served != kept and (served / "model.onnx").read_bytes() == b"kept bytes"
    (served / "model.onnx").write_bytes(b"a test wrote here")
    (served / "extra.txt").write_text("and here")
    assert (kept / "model.onnx").read_bytes() == b"kept bytes" and not (kept / "extra.txt").exists()
    assert models._server is None  # nothing was built


def test_the_store_key_changes_with_any_builder_source_and_any_package_version(tmp_path, monkeypatch):
    fixtures = tmp_path / "fixtures"
    shutil.copytree(conftest.FIXTURES, fixtures, ignore=shutil.ignore_patterns("__pycache__"))
    key = zoo_key(fixtures)
    assert zoo_key(fixtures) == key and zoo_key(conftest.FIXTURES) == key
    styles = fixtures / "styles.py"
    styles.write_text(styles.read_text() + "\n# one more line\n")
    assert zoo_key(fixtures) != key
    styles.write_text((conftest.FIXTURES / "styles.py").read_text())
    assert zoo_key(fixtures) == key
    (fixtures / "new_style.py").write_text("STYLE = 1\n")
    assert zoo_key(fixtures) != key
    (fixtures / "new_style.py").unlink()
    other = tmp_path / "other_builder.py"
    other.write_text("BUILD = 1\n")
    assert zoo_key(fixtures, (other,)) != key
    real = conftest._version
    for package in ("torch", "transformers", "onnx", "onnxruntime", "optimum"):
        monkeypatch.setattr(conftest, "_version", lambda name, p=package: "0.0.1" if name == p else real(name))
        assert zoo_key(fixtures) != key, package
    monkeypatch.setattr(conftest, "_version", real)
    assert zoo_key(fixtures) == key


def test_no_store_when_the_variable_says_off(monkeypatch, pytestconfig, tmp_path):
    monkeypatch.setenv(conftest.ZOO_CACHE_ENV, "off")
    assert conftest.zoo_store(pytestconfig) is None
    monkeypatch.setenv(conftest.ZOO_CACHE_ENV, str(tmp_path))
    assert conftest.zoo_store(pytestconfig) == tmp_path / "zoo" / zoo_key()


@pytest.mark.slow
def test_the_builder_process_builds_a_style_byte_for_byte_as_a_fresh_process_and_survives_a_failure(tmp_path):
    """Built after another style and after a failed request: torch's generator is reseeded per build."""
    models = ModelZoo(tmp_path / "zoo", tmp_path / "store")
    (tmp_path / "zoo").mkdir()
    try:
        models("padlens")
        with pytest.raises(RuntimeError, match="building no-such-style failed"):
            models("no-such-style")
        assert not (tmp_path / "store" / "no-such-style").exists()
        served = models("opset14")
        server = models._server
        assert server is not None and server.poll() is None  # one process served all three
    finally:
        models.close()
    fresh = tmp_path / "fresh"
    subprocess.run([sys.executable, str(BUILDER), "opset14", str(fresh)], check=True, capture_output=True)
    assert (served / "model.onnx").read_bytes() == (fresh / "model.onnx").read_bytes()
    assert (tmp_path / "store" / "opset14" / "model.onnx").read_bytes() == (fresh / "model.onnx").read_bytes()
