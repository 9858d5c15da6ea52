"""One local Ray instance (2 CPUs, no dashboard) for every test here, and the tiny export."""
from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from tests.scale.conftest import corpus

from .faults import dying_worker

MAX_LEN = 24
BATCH = 16


@pytest.fixture(scope="session")
def ray_local():
    """A local Ray started once; on teardown it is shut down and none of its processes remain."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    session = Path(ray._private.worker._global_node.get_session_dir_path()).name
    yield ray
    ray.shutdown()
    deadline = time.monotonic() + 15
    while (left := _processes_of(session)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"Ray processes left behind: {left}"


def _processes_of(session: str) -> list[str]:
    """raylet, gcs_server and workers whose command line names this Ray session."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # the process ended meanwhile
        if session in cmdline:
            found.append(f"{entry.name}: {cmdline[:80]}")
    return found


@pytest.fixture
def worker_dies_once(monkeypatch, tmp_path):
    """``worker_dies_once(module, "InspectWorker", text) -> marker``: the job's actor class in ``module`` swapped
    for one whose process exits once on the block holding ``text`` (the marker file says it happened)."""

    def inject(module, name: str, text: int) -> Path:
        marker = tmp_path / f"fault-fired-{name}"
        monkeypatch.setattr(module, name, dying_worker(getattr(module, name), text, marker))
        return marker

    return inject


@pytest.fixture(scope="session")
def tiny(zoo) -> Path:
    """The tiny `padlens`-style export (model.onnx, tokenizer, padlens.json)."""
    return zoo("padlens")


@pytest.fixture(scope="session")
def texts() -> list[str]:
    """2,100 texts: more than TEXT_CAP, so the capped samples must keep the first 2,000."""
    return corpus(2100)


@pytest.fixture(scope="session")
def txt_corpus(tmp_path_factory, texts) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "texts.txt"
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    return path


def assert_same_json(local, remote, path: str = "", rel: float = 1e-9) -> None:
    """Every value equal, floats within ``rel``; timings and settings are the run's own."""
    if isinstance(local, dict):
        assert set(local) == set(remote), path
        for key in local:
            if key not in ("timings", "settings"):
                assert_same_json(local[key], remote[key], f"{path}.{key}", rel)
    elif isinstance(local, list):
        assert len(local) == len(remote), path
        for i, (a, b) in enumerate(zip(local, remote)):
            assert_same_json(a, b, f"{path}[{i}]", rel)
    elif isinstance(local, float) and not isinstance(local, bool):
        assert isinstance(remote, float) and math.isclose(local, remote, rel_tol=rel, abs_tol=1e-12), \
            f"{path}: {local} vs {remote}"
    else:
        assert local == remote, f"{path}: {local!r} vs {remote!r}"
