"""Start or join Ray, quietly, and hand back only what we started."""
from __future__ import annotations

import contextlib
import copy
import logging
import os
import re
from dataclasses import dataclass
from typing import Iterator

from padlens import errors
from padlens.errors import BadInput, MissingExtra, PadlensError, Param

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'padlens[ray]'"
READ_CPUS = 0.25  # CPUs a read or write task reserves: reading text is light next to the encoder


def require_ray():
    """The ``ray`` module with Ray Data, or MissingExtra naming the extra to install."""
    try:
        import ray
        import ray.data  # noqa: F401  (Ray Data is the part padlens uses)
    except ImportError as exc:
        raise MissingExtra(Param("engine", "ray"), f' needs Ray Data ({exc.name or "ray"} is not installed): '
                           f"{INSTALL_HINT}") from None
    return ray


@dataclass
class Cluster:
    """The Ray instance a job runs on.

    Attributes:
        address: what was asked ("local" for an instance started here).
        started: True when padlens started it (and so shuts it down).
        cpus: CPUs Ray reports for the whole cluster; gpus: GPUs.
    """

    address: str
    started: bool
    cpus: float
    gpus: float


def _quiet_logs() -> None:
    """Ray's Python loggers stay silent unless padlens runs with -v: a worker's failure comes
    back as the exception padlens reports (one ``Error:`` line), not as Ray's log of it."""
    level = logging.INFO if log.isEnabledFor(logging.INFO) else logging.CRITICAL
    for name in ("ray", "ray.data", "ray._private"):
        logging.getLogger(name).setLevel(level)


def _init(ray, address: str | None) -> bool:
    """Connect (``address``) or start a local instance; True when we started something."""
    if ray.is_initialized():
        return False  # a library user (or a test) already holds one: use it, leave it running
    verbose = log.isEnabledFor(logging.INFO)
    if not verbose:  # Ray's C++ core logs notes, not failures, on stderr (-v keeps them)
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    kwargs = {"include_dashboard": False, "logging_level": logging.INFO if verbose else logging.ERROR,
              "log_to_driver": verbose, "configure_logging": True}
    if address in (None, "", "local"):
        with _quiet_stderr(not verbose):
            ray.init(num_cpus=os.cpu_count() or 1, **kwargs)
        return True
    try:
        with _quiet_stderr(not verbose):
            ray.init(address=address, **kwargs)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BadInput(Param("ray_address", address), f": cannot join a Ray cluster: {first}") from None
    return True


@contextlib.contextmanager
def _quiet_stderr(quiet: bool) -> Iterator[None]:
    """File descriptor 2 to /dev/null while Ray's C++ core starts (it announces its log
    level there); Python exceptions still propagate."""
    if not quiet:
        yield
        return
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@contextlib.contextmanager
def ray_cluster(address: str | None = None, progress: bool = True) -> Iterator[Cluster]:
    """Start a local Ray sized to this machine, or join ``address`` ("auto": the running one).

    On exit (Ctrl-C and errors included) what padlens started or joined is shut down;
    an instance that was already initialised in this process is left as it was.
    """
    ray = require_ray()
    _quiet_logs()
    started = _init(ray, address)
    try:
        from ray.data import DataContext

        context = DataContext.get_current()
        context.enable_progress_bars = bool(progress)
        context.print_on_execution_start = bool(progress)
        resources = ray.cluster_resources()
        yield Cluster(address or "local", started, float(resources.get("CPU", 0)), float(resources.get("GPU", 0)))
    except BaseException as exc:
        clean = _clean(exc)
        if clean is exc:
            raise
        raise clean from None
    finally:
        if started:
            ray.shutdown()


_RAISED = re.compile(r"padlens\.errors\.(\w+): ([^\n]+)")


def _padlens_cause(exc: BaseException) -> PadlensError | None:
    """The PadlensError a worker raised, through Ray's wrappers: RayTaskError and
    UserCodeException chain it; an actor that died in its constructor keeps only its text."""
    seen, text, found = set(), "", None
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if type(exc).__module__ == errors.__name__ and isinstance(exc, PadlensError):
            return exc  # the worker's own error, parameters and all
        if isinstance(exc, PadlensError) and found is None:
            found = exc  # RayTaskError subclassing the cause's class
        text += f"\n{exc}"
        exc = getattr(exc, "cause", None) or exc.__cause__ or exc.__context__
    if found is not None:
        return found
    raised = _RAISED.findall(text)  # an actor that died in its constructor keeps only its text
    cls = getattr(errors, raised[-1][0], None) if raised else None
    if isinstance(cls, type) and issubclass(cls, PadlensError):
        return cls(raised[-1][1])
    return None


def _clean(exc: BaseException) -> BaseException:
    """A worker's PadlensError as the same class with its own message (no Ray traceback text)."""
    cause = _padlens_cause(exc)
    if cause is None:
        return exc
    if type(cause).__module__ == errors.__name__:
        return copy.copy(cause)  # the same error, without Ray's traceback and context
    for cls in type(cause).__mro__:  # RayTaskError subclasses the cause's class: find the real one
        if issubclass(cls, PadlensError) and cls.__module__ == errors.__name__:
            message = str(cause)
            marker = message.rfind(": ") if "ray::" in message else -1
            return cls(message[marker + 2:] if marker >= 0 else message)
    return exc


def worker_cpus(cluster: Cluster, workers: int, threads: int | None) -> tuple[float, int]:
    """(CPUs each actor reserves, ONNX Runtime threads it uses) for ``workers`` CPU actors.

    Actors share the cluster's CPUs, leaving a little room for the read tasks; threads
    default to the CPUs an actor reserves (rounded down, at least 1).
    """
    room = max(cluster.cpus - READ_CPUS * 2, 0.5)
    cpus = max(0.5, room / max(1, workers))
    if threads is not None:
        cpus = min(cpus, float(threads))
    return round(cpus, 3), int(threads or max(1, round(cluster.cpus / max(1, workers))))


def choose_workers(cluster: Cluster, gpu: bool, workers: int | None, threads: int | None) -> int:
    """``workers``, or by default one actor per GPU with a GPU provider, else one per
    ``threads`` CPUs (default 4); BadInput when the cluster lacks the GPUs asked for."""
    if gpu:
        if cluster.gpus < (workers or 1):
            raise BadInput(Param("providers", "cuda"), " with ", Param("engine", "ray"),
                           f" needs {workers or 1} GPU(s) in the Ray cluster, and it has {cluster.gpus:g}")
        return int(workers or cluster.gpus)
    if workers:
        return int(workers)
    per = threads or min(4, max(1, int(cluster.cpus)))
    return max(1, int(cluster.cpus // per))


def actor_pool_args(workers: int, cpus: float, gpu: bool, retries: int) -> dict:
    """map_batches keywords for a fixed pool of ``workers`` actors that Ray restarts, and whose
    batches it retries, up to ``retries`` times when a worker dies."""
    from ray.data import ActorPoolStrategy

    return {"compute": ActorPoolStrategy(size=workers), "num_cpus": cpus, "num_gpus": 1 if gpu else None,
            "max_restarts": retries, "max_task_retries": retries}


def map_actors(ds, cls, job, workers: int, cpus: float, gpu: bool, retries: int):
    """``ds.map_batches`` over an actor pool of ``cls(job)``, one whole block per call."""
    import warnings

    with warnings.catch_warnings():  # max_restarts/max_task_retries have no named parameter yet
        warnings.filterwarnings("ignore", message=".*ray_remote_args.*is deprecated")
        return ds.map_batches(cls, fn_constructor_args=(job,), batch_size=None, batch_format="numpy",
                              **actor_pool_args(workers, cpus, gpu, retries))


def uses_gpu(providers) -> bool:
    """Whether any provider asked for needs a GPU per actor."""
    return any(str(p).lower() in ("cuda", "tensorrt") or str(p).startswith(("CUDA", "Tensorrt"))
               for p in providers)
