"""`padlens inspect` runs where torch, optimum and transformers' modelling code cannot be imported."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SITECUSTOMIZE = textwrap.dedent('''
    import atexit, importlib.abc, os, sys

    def _blocked(name):
        if name in ("torch", "optimum") or name.startswith(("torch.", "optimum.")):
            return True
        if name.startswith("transformers."):
            leaf = name.rsplit(".", 1)[-1]
            return name.startswith("transformers.modeling_") or leaf.startswith("modeling_")
        return False

    class _Block(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname, path=None, target=None):
            if _blocked(fullname):
                with open(os.environ["PADLENS_BLOCK_LOG"], "a") as fh:
                    fh.write(fullname + "\\n")
                raise ImportError(f"{fullname} is blocked for this test")
            return None

    sys.meta_path.insert(0, _Block())
    open(os.environ["PADLENS_BLOCK_LOG"], "a").write("installed\\n")
''')


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
