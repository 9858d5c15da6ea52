"""Atomic file and folder writes: nothing a user owns is ever half-written."""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from padlens.errors import BadInput, Param

log = logging.getLogger(__name__)


def _default_mode(folder: bool = False) -> int:
    """The mode a plain open()/mkdir() would give: mkstemp/mkdtemp make private files."""
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if folder else 0o666) & ~mask


def check_file_target(path: str | os.PathLike, option: str | Param | None = None) -> Path:
    """Refuse a file path that cannot be written: a folder, or one in a missing folder.

    With ``option`` (a flag such as ``--json``, or the library's parameter: ``Param("out", meta=path)``;
    ``out=`` reads as that) the message names the option the path came from.
    """
    target = Path(path)
    if isinstance(option, str) and option.endswith("="):
        option = Param(option[:-1], meta=str(target))
    named = [option] if isinstance(option, Param) else [f"{option} {target}"] if option else [str(target)]
    if target.is_dir():
        raise BadInput(*named, " is a folder, expected a file path")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        where = [*named, ": "] if option else []
        raise BadInput(*where, f"folder {parent} does not exist")
    return target


def atomic_write(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` to a temporary file beside ``path`` and rename it into place."""
    target = check_file_target(path)
    parent = target.parent
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
        os.chmod(tmp, _default_mode())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    For writers that want a filename (numpy.save, matplotlib, onnx.save).
    """
    target = check_file_target(path)
    parent = target.parent
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=target.suffix or ".tmp", dir=parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _default_mode())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def check_output_dir(dest: str | os.PathLike, force: bool) -> Path:
    """Refuse a non-empty ``dest`` unless ``force``; refuse a file in its place."""
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise BadInput(f"{dest} exists and is not a folder")
    if dest.is_dir() and any(dest.iterdir()) and not force:
        raise BadInput(f"{dest} is not empty; pass ", Param("force", True), " to replace it")
    parent = dest.parent if str(dest.parent) else Path(".")
    if not parent.is_dir():
        raise BadInput(f"folder {parent} does not exist")
    return dest


@contextlib.contextmanager
def atomic_dir(dest: str | os.PathLike, force: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``dest``; move it into place when the block succeeds.

    On any exception (Ctrl-C included) the temporary folder is removed and ``dest`` is
    left exactly as it was.
    """
    dest = check_output_dir(dest, force)
    parent = dest.parent if str(dest.parent) else Path(".")
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    os.chmod(tmp, _default_mode(folder=True))
    old = None
    if dest.exists():
        old = parent / f".{dest.name}.old-{os.getpid()}"
        os.replace(dest, old)
    try:
        os.replace(tmp, dest)
    except BaseException:
        if old is not None:
            os.replace(old, dest)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    log.debug("wrote %s", dest)
