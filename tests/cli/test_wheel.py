"""The built artifacts hold the whole package: every module and data file of the source tree is
in the wheel under its ``padlens.…`` name and in the sdist under its source path."""
from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: source folder -> where its files live inside the wheel
FOLDERS = {"padlens": "padlens", "exporter": "padlens/exporter", "inspector": "padlens/inspector",
           "models": "padlens/models"}
#: files that stay in the source tree on purpose: ruff's per-folder lint configuration
NOT_SHIPPED = {"ruff.toml"}
#: C sources: in the sdist, compiled into the wheel (``COMPILED``), not shipped in it as text
SOURCES_ONLY = {".c"}
#: the compiled modules the wheel holds (their names end in the interpreter's extension suffix)
COMPILED = ["padlens/inspector/stats/_fused."]


def _source_files() -> dict[str, str]:
    """Source path (relative to the checkout) -> path inside the wheel, for every file that ships."""
    files = {}
    for folder, installed in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*")):
            rel = path.relative_to(ROOT / folder)
            hidden = any(part.startswith(".") or part == "__pycache__" for part in rel.parts)
            if not path.is_file() or hidden or path.suffix in (".pyc", ".so", ".pyd"):  # caches, built modules
                continue
            if path.name in NOT_SHIPPED:
                continue
            files[f"{folder}/{rel.as_posix()}"] = f"{installed}/{rel.as_posix()}"
    return files


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    """(wheel, sdist) built from this checkout by ``python -m build`` (the wheel from the sdist)."""
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (wheel,) = out.glob("padlens-*.whl")
    (sdist,) = out.glob("padlens-*.tar.gz")
    return wheel, sdist


@pytest.mark.slow
def test_the_wheel_holds_every_module_and_data_file_under_its_padlens_name(built):
    import importlib.machinery

    names = set(zipfile.ZipFile(built[0]).namelist())
    expected = {src: inside for src, inside in _source_files().items() if Path(src).suffix not in SOURCES_ONLY}
    missing = sorted(src for src, inside in expected.items() if inside not in names)
    assert not missing, f"not in the wheel: {missing}"
    assert not {n for n in names if Path(n).suffix in SOURCES_ONLY}, "C sources in the wheel"
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]  # built here, by this interpreter
    assert {f"{stem}{suffix.lstrip('.')}" for stem in COMPILED} <= names, sorted(n for n in names if "_fused" in n)
    # the subpackages that were once forgotten are really there, with their data
    assert {"padlens/inspector/audit/__init__.py", "padlens/inspector/ray/__init__.py",
            "padlens/models/minilm-l6.toml", "padlens/inspector/data/corpus.txt"} <= names


@pytest.mark.slow
def test_the_sdist_holds_every_source_file_and_the_build_files(built):
    with tarfile.open(built[1]) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    missing = sorted(src for src in _source_files() if src not in names)
    assert not missing, f"not in the sdist: {missing}"
    assert {"setup.py", "setup.cfg", "pyproject.toml", "README.md"} <= names


@pytest.mark.slow
def test_both_artifacts_pass_twine_check(built):
    proc = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *map(str, built)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("PASSED") == 2


def test_every_python_folder_is_a_package():
    """A folder of modules without ``__init__.py`` would not be found by setup.py's find_packages."""
    for folder in FOLDERS:
        for sub in (ROOT / folder).rglob("*.py"):
            assert (sub.parent / "__init__.py").is_file(), f"{sub.parent} has modules but no __init__.py"
