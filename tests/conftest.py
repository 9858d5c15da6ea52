"""Shared fixtures: tiny encoders built by one torch subprocess and kept on disk between
sessions; one export of all-MiniLM-L6-v2 per session; the one way tests run the ``padlens``
command; and a skip for tests that need a CPU-only onnxruntime."""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
BUILDER = FIXTURES / "build.py"
#: where built styles are kept between sessions; "off" keeps none (default: pytest's cache dir)
ZOO_CACHE_ENV = "PADLENS_ZOO_CACHE"
#: the packages a built style depends on besides tests/fixtures/*.py (their versions key the cache)
BUILD_PACKAGES = ("torch", "transformers", "tokenizers", "onnx", "onnxruntime", "onnxruntime-gpu", "onnxscript",
                  "optimum", "optimum-onnx", "numpy", "sentence-transformers")


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def zoo_key(fixtures: Path = FIXTURES, extra: tuple[Path, ...] = ()) -> str:
    """A hash of everything a built style depends on: the builder's sources (every .py file in
    ``fixtures``, and the ``extra`` files of another builder that uses them), the versions of the
    packages it uses, Python and the machine."""
    digest = hashlib.sha256()
    for file in [*sorted(fixtures.glob("*.py")), *extra]:
        digest.update(file.name.encode() + b"\0" + file.read_bytes() + b"\0")
    for name in BUILD_PACKAGES:
        digest.update(f"{name}={_version(name)}\0".encode())
    digest.update(f"{sys.version}\0{platform.machine()}".encode())
    return digest.hexdigest()[:24]


class ModelZoo:
    """Each tiny model style built once per session, all by one builder process (build.py
    --serve: torch and transformers imported once), and kept in ``store`` across sessions.

    A kept style is copied into this session's folder (tests may write beside it; the store
    stays as built); the store's folder name is ``zoo_key()``, so a changed builder source or
    package version builds afresh.
    """

    def __init__(self, base: Path, store: Path | None = None):
        self.base = base
        self.store = store
        self.cache: dict[str, Path] = {}
        self._server: subprocess.Popen | None = None
        self._log = base / "builder.log"

    def __call__(self, style: str) -> Path:
        if style not in self.cache:
            out = self.base / style
            kept = self.store / style if self.store else None
            if kept is not None and kept.is_dir():
                shutil.copytree(kept, out)
            else:
                self._build(style, out)
                if kept is not None:
                    keep(out, kept)
            self.cache[style] = out
        return self.cache[style]

    def _build(self, style: str, out: Path) -> None:
        server = self._server or self._start()
        try:
            server.stdin.write(json.dumps({"style": style, "out": str(out)}) + "\n")
            server.stdin.flush()
            line = server.stdout.readline()
        except BrokenPipeError:
            line = ""
        if not line:
            self.close()  # it died: the next style starts a new one
            tail = self._log.read_text(errors="replace")[-3000:] if self._log.exists() else ""
            raise RuntimeError(f"building {style} failed: the builder process exited\n{tail}")
        reply = json.loads(line)
        if not reply["ok"]:
            raise RuntimeError(f"building {style} failed:\n{reply['error']}")

    def _start(self) -> subprocess.Popen:
        with open(self._log, "ab") as log:
            self._server = subprocess.Popen([sys.executable, str(BUILDER), "--serve"], stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, stderr=log, text=True)
        return self._server

    def close(self) -> None:
        """End the builder process (it exits when its stdin closes)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.stdin.close()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        server.stdout.close()


def keep(built: Path, kept: Path) -> None:
    """Copy ``built`` to ``kept`` whole or not at all (a folder renamed into place)."""
    kept.parent.mkdir(parents=True, exist_ok=True)
    partial = kept.with_name(f".{kept.name}.{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(built, partial)
    try:
        partial.rename(kept)
    except OSError:  # another session kept it first
        shutil.rmtree(partial, ignore_errors=True)


def zoo_store(config: pytest.Config, name: str = "zoo", extra: tuple[Path, ...] = ()) -> Path | None:
    """The folder that keeps what the builder made for this key: $PADLENS_ZOO_CACHE (or pytest's
    cache dir) / name / zoo_key(); None when the variable says "off" or pytest runs without its cache."""
    setting = os.environ.get(ZOO_CACHE_ENV, "")
    if setting.lower() in ("off", "0", "no", "false"):
        return None
    if setting:
        root = Path(setting)
    elif getattr(config, "cache", None) is not None:
        root = config.cache.mkdir("padlens-zoo")
    else:
        return None
    return root / name / zoo_key(extra=extra)


def run_padlens(*args, cwd, timeout: int = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m padlens ARGS`` in ``cwd``, as a user runs it (text output captured);
    ``env`` adds variables to the inherited environment."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "padlens", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def onnxruntime_has_cuda() -> bool:
    """True when a GPU build of onnxruntime is installed (it lists CUDAExecutionProvider)."""
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.fixture
def cpu_only_onnxruntime() -> None:
    """Skip a test that relies on ONNX Runtime dropping CUDA: a GPU build keeps it."""
    if onnxruntime_has_cuda():
        pytest.skip("a GPU build of onnxruntime is installed: it does not drop CUDAExecutionProvider")


@pytest.fixture
def cli_run(capsys):
    """``cli_run(*args) -> (exit_code, stdout, stderr)`` of ``padlens ARGS`` in this process."""
    from padlens.cli import main

    def run(*args):
        with pytest.raises(SystemExit) as exc:
            main([str(a) for a in args])
        out, err = capsys.readouterr()
        return exc.value.code, out, err

    return run


@pytest.fixture(scope="session")
def zoo(tmp_path_factory, pytestconfig) -> Iterator[ModelZoo]:
    """``zoo("torchscript")`` -> folder with model.onnx and a tokenizer."""
    models = ModelZoo(tmp_path_factory.mktemp("zoo"), zoo_store(pytestconfig))
    yield models
    models.close()


@dataclass(frozen=True)
class Export:
    """One run of ``padlens export``.

    Attributes:
        path: the export dir.
        proc: the finished command (its stdout and stderr).
        manifest: the dir's padlens.json.
    """

    path: Path
    proc: subprocess.CompletedProcess
    manifest: dict


@pytest.fixture(scope="session")
def minilm_all(tmp_path_factory) -> Export:
    """``padlens export minilm-l6 -o DIR``: the real all-MiniLM-L6-v2 in all four precisions,
    exported once per session in a subprocess (torch never enters this process)."""
    out = tmp_path_factory.mktemp("minilm-all") / "minilm"
    proc = run_padlens("export", "minilm-l6", "-o", out, cwd=ROOT, timeout=1200)
    assert proc.returncode == 0, proc.stderr
    return Export(out, proc, json.loads((out / "padlens.json").read_text(encoding="utf-8")))


@pytest.fixture(scope="session")
def minilm_export(minilm_all, tmp_path_factory) -> Path:
    """The fp32 export dir alone, as ``padlens export minilm-l6 --precision fp32`` writes it:
    ``minilm_all``'s model.onnx and tokenizer files (hard links), its padlens.json listing fp32 only."""
    out = tmp_path_factory.mktemp("minilm-fp32") / "minilm"
    out.mkdir()
    others = {entry["file"] for name, entry in minilm_all.manifest["precisions"].items() if name != "fp32"}
    for file in minilm_all.path.rglob("*"):
        target = out / file.relative_to(minilm_all.path)
        if file.is_dir():
            target.mkdir(exist_ok=True)
        elif file.name != "padlens.json" and file.name not in others:
            _link_or_copy(file, target)
    manifest = {**minilm_all.manifest, "precisions": {"fp32": minilm_all.manifest["precisions"]["fp32"]}}
    manifest["validation"] = {k: v for k, v in manifest.get("validation", {}).items() if k == "fp32"}
    manifest.pop("calibration", None)  # int8-static's
    (out / "padlens.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return out


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def pytest_collection_modifyitems(session, config, items):
    """Run tests/inspector first: it blocks torch, which later tests may import in-process."""
    inspector = ROOT / "tests" / "inspector"
    items.sort(key=lambda item: 0 if inspector in Path(str(item.path)).parents else 1)
