"""The package's promises: a light base install, one console script, help that never loads torch."""
from __future__ import annotations

import subprocess
import sys
from importlib import metadata

import pytest

from padlens import __version__

HEAVY = ("torch", "optimum", "optimum-onnx", "transformers")


def _requirements(extra: str | None) -> list[str]:
    reqs = metadata.requires("padlens") or []
    out = []
    for req in reqs:
        name, _, marker = req.partition(";")
        if extra is None and "extra ==" not in marker:
            out.append(name.strip())
        elif extra is not None and f'extra == "{extra}"' in marker:
            out.append(name.strip())
    return out


def _names(reqs: list[str]) -> set[str]:
    import re

    return {re.split(r"[<>=!~\[ ]", r, maxsplit=1)[0].lower() for r in reqs}


def test_the_base_install_brings_no_torch_optimum_or_transformers():
    base = _names(_requirements(None))
    assert {"onnx", "onnxruntime", "numpy", "click", "tokenizers"} <= base
    assert not base & set(HEAVY)


def test_the_export_extra_brings_the_exporter_stack():
    export = _names(_requirements("export"))
    assert {"torch", "transformers", "onnxscript"} <= export
    assert not {"optimum", "optimum-onnx"} & export  # no Optimum pin: installs beside transformers 5


def test_the_optimum_extra_is_the_export_extra_plus_the_optimum_lane():
    optimum = _requirements("optimum")
    assert {"optimum", "optimum-onnx"} <= _names(optimum)
    assert any(r.replace(" ", "").startswith("padlens[export]") for r in optimum), optimum
    assert any(r.replace(" ", "").startswith("transformers") and "<4.58" in r for r in optimum), optimum


def test_the_gpu_extra_is_onnxruntime_gpu_alone():
    assert _names(_requirements("gpu")) == {"onnxruntime-gpu"}


def _run(*args: str) -> subprocess.CompletedProcess:
    code = ("import sys, runpy; sys.argv = ['padlens', *sys.argv[1:]]\n"
            "try:\n    runpy.run_module('padlens', run_name='__main__')\n"
            "except SystemExit as e:\n"
            "    heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'optimum'))\n"
            "    print('HEAVY:', heavy); raise\n")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)


def test_version_prints_the_package_version():
    proc = _run("--version")
    assert proc.returncode == 0
    assert f"padlens, version {__version__}" in proc.stdout


def registered_commands() -> list[str]:
    """Every command of the ``padlens`` click group, as the CLI registers them (not a list kept by hand)."""
    from padlens.cli import _register, cli

    _register()
    return list(cli.commands)


def test_the_help_test_covers_probe_and_quantize():
    assert {"probe", "quantize", "inspect", "audit", "embed", "export", "demo"} <= set(registered_commands())


@pytest.mark.parametrize("command", ["", *registered_commands()])
def test_every_help_has_an_example_and_loads_no_torch(command):
    proc = _run(*([command] if command else []), "--help")
    assert proc.returncode == 0, proc.stderr
    assert "Example" in proc.stdout or "example" in proc.stdout
    assert "HEAVY: []" in proc.stdout


def test_the_console_script_is_installed():
    (ep,) = [e for e in metadata.entry_points(group="console_scripts") if e.name == "padlens"]
    assert ep.value == "padlens.cli:main"
