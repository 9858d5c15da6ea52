"""Run a command as its own process and read its wall time, CPU time and peak RSS from the kernel."""
from __future__ import annotations

import compileall
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Measured:
    """One spawned process.

    Attributes:
        wall_s: wall-clock seconds.
        cpu_s: user + system CPU seconds (os.wait4).
        rss_mb: peak resident memory in MB (ru_maxrss).
        code: exit code.
        stderr: what it wrote to stderr.
    """

    wall_s: float
    cpu_s: float
    rss_mb: float
    code: int
    stderr: str


def spawn_measured(cmd: list[str], env: dict, err_path: Path, ok: tuple[int, ...] = (0,)) -> Measured:
    """``cmd`` with stdout discarded and stderr kept in ``err_path``; RuntimeError unless its exit code is in ``ok``."""
    start = time.perf_counter()
    with open(os.devnull, "w") as out, open(err_path, "w") as err:
        pid = os.posix_spawn(cmd[0], cmd, env, file_actions=[
            (os.POSIX_SPAWN_DUP2, out.fileno(), 1), (os.POSIX_SPAWN_DUP2, err.fileno(), 2)])
        _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - start
    stderr = err_path.read_text(errors="replace")
    code = os.waitstatus_to_exitcode(status)
    if code not in ok:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{stderr[-3000:]}")
    return Measured(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, code, stderr)


def write_result(path: Path, result: dict) -> None:
    """Write ``result`` as JSON to ``path`` and print it (without its ``commands``)."""
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "commands"}, indent=2))


def fresh_bytecode(root: Path) -> None:
    """Compile padlens' sources to bytecode before timing them: an installed wheel has its .pyc files,
    but a checkout run with PYTHONDONTWRITEBYTECODE=1 (as here) compiles every changed module in every
    process, which would charge a few ms per module to whichever contender imports more of padlens."""
    for package in ("padlens", "inspector", "exporter", "models"):
        if (root / package).is_dir():
            compileall.compile_dir(root / package, quiet=1)
