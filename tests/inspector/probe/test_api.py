"""`from padlens import probe`, and scikit-learn loaded only when a probe is fitted."""
from __future__ import annotations

import subprocess
import sys


def test_probe_is_the_public_library_function():
    import padlens
    from padlens import probe
    from padlens.inspector.probe.run import probe as probe_fn

    assert probe is probe_fn and "probe" in padlens.__all__


def test_importing_the_probe_module_loads_neither_scikit_learn_nor_matplotlib():
    code = ("import sys, padlens.inspector.probe.run, padlens.inspector.probe.table\n"
            "print(sorted(m for m in ('sklearn', 'matplotlib', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_scikit_learn_is_the_probe_extra_and_comes_with_export_and_test():
    import re
    from importlib import metadata

    def names(extra):
        reqs = [r for r in metadata.requires("padlens") or [] if f'extra == "{extra}"' in r]
        return {re.split(r"[<>=!~\[ ;]", r, maxsplit=1)[0].lower() for r in reqs}

    assert names("probe") == {"scikit-learn"}
    assert "scikit-learn" in names("export") and "scikit-learn" in names("test")
