"""The one module that creates and runs ONNX Runtime sessions, and checks the providers they use.

Every ``onnxruntime.InferenceSession`` is made by ``create_session`` and run by
``SessionInfo.run``: ONNX Runtime's failures become one-line ``ModelLoadError``s, and its
native log stays off the terminal (errors reach the user as padlens ``Error:`` lines).
"""
from __future__ import annotations

import logging
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as _ort_state

from padlens.errors import ModelLoadError, Param, ProviderError
from padlens.inspector.inputs.providers import CPU, PROVIDER_ALIASES, canonical_provider, known_providers  # noqa: F401

log = logging.getLogger(__name__)

#: ORT log severities: 0 verbose, 1 info, 2 warning, 3 error, 4 fatal. Errors are raised and
#: worded by padlens, so ORT's own lines stay quiet unless padlens logs at DEBUG (-vv).
QUIET_SEVERITY, DEBUG_SEVERITY = 4, 2

# Exceptions ONNX Runtime raises for a model or provider it cannot load or run.
ORT_ERRORS: tuple[type[BaseException], ...] = tuple(
    obj for obj in vars(_ort_state).values()
    if isinstance(obj, type) and issubclass(obj, Exception)
)


@dataclass
class SessionInfo:
    """An InferenceSession and what it was asked to run on.

    Attributes:
        session: the onnxruntime.InferenceSession.
        asked: ORT provider names asked for, in priority order (CPU last, as fallback).
        used: ``session.get_providers()``: the providers the session actually registered.
        warnings: providers that were dropped while ``allow_fallback`` was set, in words.
    """

    session: ort.InferenceSession
    asked: list[str]
    used: list[str]
    warnings: list[str] = field(default_factory=list)

    @property
    def provider(self) -> str:
        """The provider that runs first: the one a run is labelled with."""
        return self.used[0] if self.used else "none"

    def run(self, fetch: Sequence[str], feeds: Mapping[str, np.ndarray], what: str) -> list[np.ndarray]:
        """``session.run(fetch, feeds)``; a failure is a ModelLoadError naming ``what`` ran."""
        try:
            return self.session.run(list(fetch), dict(feeds))
        except ORT_ERRORS as exc:
            raise ModelLoadError(f"onnxruntime failed running {what}: {first_line(exc)}") from exc


def first_line(exc: BaseException) -> str:
    """The first line of an ONNX Runtime error (its native messages run over several)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def resolve_providers(names: Iterable[str] | str | None) -> list[str]:
    """Map provider names to ORT names, check they are available, append CPU as fallback."""
    if isinstance(names, str):
        names = [names]
    asked = list(dict.fromkeys(canonical_provider(n) for n in (names or ["cpu"])))
    available = ort.get_available_providers()
    for provider in asked:
        if provider not in available:
            raise ProviderError(_unavailable_message(provider, available))
    if CPU not in asked:
        asked.append(CPU)
    return asked


def _unavailable_message(provider: str, available: Sequence[str]) -> str:
    alias = next((a for a, p in PROVIDER_ALIASES.items() if p == provider), provider)
    hint = ("install padlens[gpu] (onnxruntime-gpu) in place of onnxruntime, with matching "
            "CUDA and cuDNN libraries" if provider in ("CUDAExecutionProvider", "TensorrtExecutionProvider")
            else "install an onnxruntime build that includes it")
    return (f"provider {alias} ({provider}) is not available in this onnxruntime build "
            f"(available: {', '.join(available)}); {hint}")


def check_providers(asked: Sequence[str], used: Sequence[str], allow_fallback: bool) -> list[str]:
    """Compare the providers asked for with those a session uses.

    A provider ONNX Runtime silently dropped raises ProviderError, unless ``allow_fallback``:
    then the drop is returned as a warning. Providers used but not asked for are fine.
    """
    dropped = [p for p in asked if p not in used]
    if not dropped:
        return []
    message = (f"onnxruntime dropped {', '.join(dropped)}: the session runs on "
               f"{', '.join(used) or 'nothing'} (asked for {', '.join(asked)})")
    if not allow_fallback:
        raise ProviderError(message, "; pass ", Param("allow_fallback", True), " to accept this")
    log.warning("%s", message)
    return [message]


def create_session(model: str | Path | bytes | onnx.ModelProto, providers: Iterable[str] | str | None = ("cpu",),
                   allow_fallback: bool = False, threads: int | None = None,
                   weights_folder: Path | None = None, mem_pattern: bool = True) -> SessionInfo:
    """Create an InferenceSession on ``providers`` and verify ORT really uses them.

    A model's bytes go to ONNX Runtime as they are; a ModelProto is handed over as bytes; only one past protobuf's 2 GB limit is
    written (with external data) to a temporary folder, removed once the session exists.
    Nothing is written beside the user's model. ``weights_folder``: where the external data of
    a model given as bytes lies (``padlens.inspector.model.inplace``: the weights read from the file).
    ``mem_pattern=False`` turns off ONNX Runtime's memory pattern: with it, the second run of an
    input shape takes one new block for all its activations beside what the first left in the arena
    (+330 MB at 0.6B for 32 × 128); the audit, which runs each shape many times, turns it off.
    """
    asked = resolve_providers(providers)
    options = _session_options(threads)
    options.enable_mem_pattern = mem_pattern
    if weights_folder is not None:
        options.add_session_config_entry(EXTERNAL_FOLDER_KEY, str(weights_folder))
    if isinstance(model, onnx.ModelProto):
        session = _session_from_proto(model, options, asked)
    elif isinstance(model, (bytes, bytearray)):
        session = _new_session(bytes(model), options, asked, "the instrumented model")
    else:
        session = _new_session(str(model), options, asked, str(model))
    used = list(session.get_providers())
    notes = check_providers(asked, used, allow_fallback)
    log.debug("session on %s (asked %s)", used, asked)
    return SessionInfo(session, asked, used, notes)


#: where ONNX Runtime looks for the external data of a model loaded from bytes
EXTERNAL_FOLDER_KEY = "session.model_external_initializers_file_folder_path"


def _session_options(threads: int | None) -> ort.SessionOptions:
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    # ORT's native log would print beside padlens' own Error: line; padlens words failures itself.
    severity = DEBUG_SEVERITY if log.isEnabledFor(logging.DEBUG) else QUIET_SEVERITY
    options.log_severity_level = severity
    ort.set_default_logger_severity(severity)
    return options


def _session_from_proto(model: onnx.ModelProto, options, asked: list[str]) -> ort.InferenceSession:
    from padlens.inspector.model.expose import EXTERNAL_OVER, proto_size, save_model

    if proto_size(model) <= EXTERNAL_OVER:
        return _new_session(model.SerializeToString(), options, asked, "the instrumented model")
    tmp = Path(tempfile.mkdtemp(prefix="padlens-session-"))
    try:
        path = save_model(model, tmp / "model.onnx")
        return _new_session(str(path), options, asked, "the instrumented model")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _new_session(model: str | bytes, options, asked: list[str], label: str) -> ort.InferenceSession:
    try:
        with warnings.catch_warnings():  # a dropped provider is checked (and worded) by check_providers
            warnings.filterwarnings("ignore", message="Specified provider", category=UserWarning)
            return ort.InferenceSession(model, sess_options=options, providers=asked)
    except ORT_ERRORS as exc:
        raise ModelLoadError(f"onnxruntime cannot load {label}: {first_line(exc)}") from exc
