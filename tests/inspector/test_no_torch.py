"""`padlens inspect` runs where torch, optimum and transformers' modelling code cannot be imported."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SITECUSTOMIZE = f"import sys\nsys.path.insert(0, {str(FIXTURES)!r})\nimport noheavy\nnoheavy.install_from_env()\n"


def test_inspect_runs_with_torch_optimum_and_transformers_modelling_blocked(zoo, tmp_path):
    export = zoo("padlens")
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    log = tmp_path / "blocked.log"
    env = {**os.environ, "PYTHONPATH": str(site), "PADLENS_BLOCK_LOG": str(log)}
    proc = subprocess.run([sys.executable, "-m", "padlens", "inspect", str(export),
                           "--text", "this is a sample sentence"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "pad_pad_cos" in proc.stdout and "0 emb" in proc.stdout
    lines = log.read_text().splitlines()
    assert lines[0] == "installed"                 # the blocker really ran in that process
    assert not any(line.startswith(("torch", "optimum")) for line in lines[1:]), lines


def test_this_test_process_cannot_import_torch_or_optimum():
    """The conftest's blocker is live here, so every inspector test runs without torch."""
    import pytest

    for name in ("torch", "optimum", "transformers.modeling_utils"):
        with pytest.raises(ImportError, match="blocked"):
            __import__(name)
