"""The one module that creates and runs ONNX Runtime sessions, and checks the providers they use.

Every ``onnxruntime.InferenceSession`` padlens makes (inspect, audit, embed, probe, quantize
verification, the Ray actors) comes from ``create_session(model, SessionOptions)`` and is run by
``SessionInfo.run``: one frozen ``SessionOptions`` says how a session runs (providers, fallback,
threads, memory pattern), ``create_session`` decides what ONNX Runtime loads (the user's file
with its weights read in place, plus what padlens adds to its graph), ONNX Runtime's failures
become one-line ``ModelLoadError``s, and its native log stays off the terminal.
"""
from __future__ import annotations

import dataclasses
import heapq
import logging
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as _ort_state

from padlens.errors import ModelLoadError, Param, ProviderError
from padlens.inspector.inputs.options import check_counts
from padlens.inspector.inputs.providers import CPU, PROVIDER_ALIASES, canonical_provider, known_providers  # noqa: F401
from padlens.inspector.model import inplace

if TYPE_CHECKING:
    from padlens.inspector.model.graph import EncoderGraph

log = logging.getLogger(__name__)

#: ORT log severities: 0 verbose, 1 info, 2 warning, 3 error, 4 fatal. Errors are raised and
#: worded by padlens, so ORT's own lines stay quiet unless padlens logs at DEBUG (-vv).
QUIET_SEVERITY, DEBUG_SEVERITY = 4, 2

#: where ONNX Runtime looks for the external data of a model loaded from bytes
EXTERNAL_FOLDER_KEY = "session.model_external_initializers_file_folder_path"

# Exceptions ONNX Runtime raises for a model or provider it cannot load or run.
ORT_ERRORS: tuple[type[BaseException], ...] = tuple(
    obj for obj in vars(_ort_state).values()
    if isinstance(obj, type) and issubclass(obj, Exception)
)


@dataclass(frozen=True)
class SessionOptions:
    """How a session runs: the one object every path hands to ``create_session``.

    Attributes:
        providers: execution providers as asked (``cuda``, ``CUDAExecutionProvider`` ...), in
            priority order; CPU is appended as the fallback when the session is made.
        allow_fallback: accept a provider ONNX Runtime drops, as a warning (else ProviderError).
        threads: ONNX Runtime intra-op threads (None: ORT's default).
        mem_pattern: ONNX Runtime's memory pattern. With it, the second run of an input shape takes
            one new block for all its activations beside what the first left in the arena (+330 MB
            at 0.6B for 32 x 128); the audit, which runs each shape many times, turns it off.
        ready_first: run each node as soon as its inputs are ready (ONNX Runtime's priority-based
            order) instead of its default depth-first order, which runs side branches after the
            whole graph. The in-graph statistics are such branches: in the default order every
            attention map waits in memory for the last block (MiniLM, 32 x 128: +170 MB). Among
            nodes ready at once ONNX Runtime takes the one listed first, so the nodes padlens adds
            are listed right after the node that completes their inputs (``added_when_ready``):
            they read a state or map while it is still in the cache, not after the next large
            MatMul has pushed it out.
        stop_spinning: ONNX Runtime's threads stop spinning as soon as a run returns
            (``session.force_spinning_stop``), where they would otherwise spin on both cores for a
            while: the pad statistics' one-pass sums (``padlens.inspector.stats.fused``) run on those
            cores between runs.
    """

    providers: tuple[str, ...] = ("cpu",)
    allow_fallback: bool = False
    threads: int | None = None
    mem_pattern: bool = True
    ready_first: bool = False
    stop_spinning: bool = False

    def __post_init__(self) -> None:
        providers = (self.providers,) if isinstance(self.providers, str) else tuple(self.providers or ("cpu",))
        object.__setattr__(self, "providers", providers)
        check_counts(threads=self.threads)
        if self.threads is not None:
            object.__setattr__(self, "threads", int(self.threads))

    @classmethod
    def of(cls, options, provider: str | None = None, **changes) -> SessionOptions:
        """The session options of a command's ``RunOptions`` (or any object with ``providers``,
        ``allow_fallback``, ``threads``), on ``provider`` alone when given, with ``changes``."""
        providers = (provider,) if provider is not None else tuple(options.providers)
        return cls(providers, bool(options.allow_fallback), options.threads, **changes)

    def replace(self, **changes) -> SessionOptions:
        """A copy with ``changes`` (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)


DEFAULT = SessionOptions()


@dataclass
class SessionInfo:
    """An InferenceSession and what it was asked to run on.

    Attributes:
        session: the onnxruntime.InferenceSession.
        asked: ORT provider names asked for, in priority order (CPU last, as fallback).
        used: ``session.get_providers()``: the providers the session actually registered.
        warnings: providers that were dropped while ``allow_fallback`` was set, in words.
        options: the ``SessionOptions`` it was made with.
    """

    session: ort.InferenceSession
    asked: list[str]
    used: list[str]
    warnings: list[str] = field(default_factory=list)
    options: SessionOptions = DEFAULT

    @property
    def provider(self) -> str:
        """The provider that runs first: the one a run is labelled with."""
        return self.used[0] if self.used else "none"

    def run(self, fetch: Sequence[str], feeds: Mapping[str, np.ndarray], what: str) -> list[np.ndarray]:
        """``session.run(fetch, feeds)``; a failure is a ModelLoadError naming ``what`` ran."""
        try:
            return self.session.run(fetch if isinstance(fetch, list) else list(fetch), feeds)
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


# ---------------------------------------------------------------- the one builder

def create_session(model: str | Path | bytes | onnx.ModelProto | EncoderGraph,
                   options: SessionOptions = DEFAULT, added: onnx.ModelProto | None = None) -> SessionInfo:
    """A session over ``model`` run as ``options`` say, after checking ONNX Runtime really uses
    the providers asked for (``check_providers``).

    ``model``: an ``EncoderGraph`` (``padlens.inspector.model.graph``) with ``added``, a delta
    ModelProto padlens adds to its graph (exposed outputs, in-graph statistics; None: the file as
    it is); or a path, the file as it is; or a model built in memory (bytes, a ModelProto). A file's
    weights are read in place, never copied (``in_place``); bytes go to ONNX Runtime as they are; only
    a ModelProto past protobuf's 2 GB limit is written (with external data) to a temporary folder,
    removed once the session exists. Nothing is written beside the user's model.
    """
    asked = resolve_providers(options.providers)
    ort_options = _ort_options(options)
    if isinstance(model, (str, Path)):
        session = _from_file(Path(model), None, added, ort_options, asked)
    elif isinstance(model, (bytes, bytearray, onnx.ModelProto)):
        session = _load(model, ort_options, asked)
    else:
        session = _from_file(model.path, model, added, ort_options, asked)
    used = list(session.get_providers())
    notes = check_providers(asked, used, options.allow_fallback)
    log.debug("session on %s (asked %s)", used, asked)
    return SessionInfo(session, asked, used, notes, options)


def _ort_options(options: SessionOptions) -> ort.SessionOptions:
    ort_options = ort.SessionOptions()
    if options.threads:
        ort_options.intra_op_num_threads = int(options.threads)
        ort_options.inter_op_num_threads = 1
    ort_options.enable_mem_pattern = options.mem_pattern
    if options.ready_first:
        ort_options.execution_order = ort.ExecutionOrder.PRIORITY_BASED
    if options.stop_spinning:
        ort_options.add_session_config_entry("session.force_spinning_stop", "1")
    # ORT's native log would print beside padlens' own Error: line; padlens words failures itself.
    severity = DEBUG_SEVERITY if log.isEnabledFor(logging.DEBUG) else QUIET_SEVERITY
    ort_options.log_severity_level = severity
    ort.set_default_logger_severity(severity)
    return ort_options


def in_place(path: Path, graph: EncoderGraph | None, added: onnx.ModelProto | None) -> bytes | None:
    """The model at ``path`` with ``added`` merged, as bytes whose weights refer to the user's files
    (ONNX Runtime maps them from ``path``'s folder): a graph with external data, or made weightless
    (``inplace.weightless``), serialised as parsed; a self-contained file, each large initializer
    pointing at its bytes inside it (``inplace.referencing_bytes``). None when there is nothing to
    refer to (a file past 2 GB, bytes that do not read as expected)."""
    tail = added.SerializeToString() if added is not None else b""
    if graph is not None and graph.raw is None and graph.model is not None:
        return graph.model.SerializeToString() + tail
    raw = graph.raw if graph is not None and graph.raw is not None else _file_bytes(path)
    small = inplace.referencing_bytes(raw, path.name) if raw is not None else None
    del raw
    return small + tail if small is not None else None


def added_when_ready(model: bytes, added: int) -> bytes:
    """``model`` (a serialised ModelProto whose last ``added`` nodes padlens appended) with each of
    those nodes listed right after the node that completes its inputs, the rest in their order.

    ONNX Runtime's priority-based order runs, of the nodes ready at once, the one listed first: the
    appended reductions of a layer would otherwise wait until no node of the model was ready (after
    the next block's large MatMul, the state they read out of the cache, and the MatMul's output
    evicted before the model's own next node reads it). The order stays topological: an added node
    waits for every input a node produces, added ones included. Cheap: the graph's weights are
    references here, not bytes (MiniLM: 0.3 ms)."""
    proto = onnx.ModelProto.FromString(model)
    nodes = list(proto.graph.node)
    if not 0 < added <= len(nodes):
        return model
    base, extra = nodes[:-added], nodes[-added:]
    made = {out for node in extra for out in node.output}
    if any(name in made for node in base for name in node.input):
        return model  # the model reads what padlens added: not an appended side branch
    produced = {out for node in nodes for out in node.output if out}
    missing = [{name for name in node.input if name in produced} for node in extra]
    waiting: dict[str, list[int]] = {}
    for index, names in enumerate(missing):
        for name in names:
            waiting.setdefault(name, []).append(index)
    ready = [index for index, names in enumerate(missing) if not names]
    heapq.heapify(ready)
    order: list[onnx.NodeProto] = []

    def emit(node: onnx.NodeProto) -> None:
        order.append(node)
        for out in node.output:
            for index in waiting.pop(out, ()):
                missing[index].discard(out)
                if not missing[index]:
                    heapq.heappush(ready, index)

    def flush() -> None:
        while ready:
            emit(extra[heapq.heappop(ready)])

    flush()
    for node in base:
        emit(node)
        flush()
    if len(order) != len(nodes):  # an input no node ever produces: leave the graph as it was
        return model
    del proto.graph.node[:]
    proto.graph.node.extend(order)
    return proto.SerializeToString()


def _from_file(path: Path, graph: EncoderGraph | None, added: onnx.ModelProto | None,
               ort_options: ort.SessionOptions, asked: list[str]) -> ort.InferenceSession:
    """A session over the file at ``path`` (``graph``: as loaded) with ``added`` merged: its weights
    read in place (≈ 4x faster to create, no copy of them); when ONNX Runtime refuses that, the
    whole model (the path itself when nothing is added)."""
    small = in_place(path, graph, added)
    if small is not None and added is not None and ort_options.execution_order == ort.ExecutionOrder.PRIORITY_BASED:
        small = added_when_ready(small, len(added.graph.node))
    if small is not None:
        ort_options.add_session_config_entry(EXTERNAL_FOLDER_KEY, str(path.parent))
        try:
            return _load(small, ort_options, asked, "the instrumented model" if added is not None else str(path))
        except ModelLoadError as exc:
            log.debug("%s: weights not read in place (%s)", path.name, exc)
        del small
    if added is None:
        return _new_session(str(path), ort_options, asked, str(path))
    return _load(_whole(path, graph, added), ort_options, asked)


def _whole(path: Path, graph: EncoderGraph | None, added: onnx.ModelProto) -> bytes | onnx.ModelProto:
    """The file's model with ``added`` merged, weights included: its bytes with the delta's appended
    (protobuf merges them), or a parsed copy past 2 GB."""
    raw = graph.raw if graph is not None and graph.raw is not None else _file_bytes(path)
    if raw is not None:
        return raw + added.SerializeToString()
    model = onnx.load(str(path), load_external_data=False)
    model.MergeFrom(added)
    return model


def _file_bytes(path: Path) -> bytes | None:
    """The bytes of a self-contained file under 2 GB (None past it, or unreadable)."""
    from padlens.inspector.model.expose import EXTERNAL_OVER

    try:
        return path.read_bytes() if path.stat().st_size <= EXTERNAL_OVER else None
    except OSError:
        return None


def _load(model: bytes | bytearray | onnx.ModelProto, ort_options, asked: list[str],
          label: str = "the instrumented model") -> ort.InferenceSession:
    """A session over a model in memory: bytes as they are; a ModelProto as bytes, or written with
    its external data to a temporary folder past protobuf's 2 GB."""
    from padlens.inspector.model.expose import EXTERNAL_OVER, proto_size, save_model

    if not isinstance(model, onnx.ModelProto):
        return _new_session(bytes(model), ort_options, asked, label)
    if proto_size(model) <= EXTERNAL_OVER:
        return _new_session(model.SerializeToString(), ort_options, asked, label)
    tmp = Path(tempfile.mkdtemp(prefix="padlens-session-"))
    try:
        path = save_model(model, tmp / "model.onnx")
        return _new_session(str(path), ort_options, asked, label)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _new_session(model: str | bytes, ort_options, asked: list[str], label: str) -> ort.InferenceSession:
    try:
        with warnings.catch_warnings():  # a dropped provider is checked (and worded) by check_providers
            warnings.filterwarnings("ignore", message="Specified provider", category=UserWarning)
            return ort.InferenceSession(model, sess_options=ort_options, providers=asked)
    except ORT_ERRORS as exc:
        raise ModelLoadError(f"onnxruntime cannot load {label}: {first_line(exc)}") from exc
