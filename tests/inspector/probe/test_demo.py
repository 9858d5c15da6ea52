"""The demo's probe section: a short probe of the fp32 model, skipped with a hint without scikit-learn."""
from __future__ import annotations

import json

import pytest

from padlens.demo import DemoResult, probe_stage


@pytest.mark.slow  # the demo's probe stage
def test_the_probe_stage_writes_probe_json_and_keeps_the_result(zoo, tmp_path):
    said = []
    result = DemoResult(out_dir=tmp_path, export_dir=zoo("padlens"))
    probe_stage(result, said.append, progress=False)
    assert result.probe is not None and result.probe.runs[0].layers
    doc = json.loads((tmp_path / "probe.json").read_text())
    assert doc["runs"][0]["layers"][0]["probes"]
    assert tmp_path / "probe.json" in result.files
    assert any("[probe] done" in line for line in said)


def test_without_scikit_learn_the_stage_says_how_to_enable_it(zoo, tmp_path, no_sklearn):
    said = []
    result = DemoResult(out_dir=tmp_path, export_dir=zoo("padlens"))
    probe_stage(result, said.append, progress=False)
    assert result.probe is None and not (tmp_path / "probe.json").exists()
    assert any("pip install 'padlens[probe]'" in line for line in said)
