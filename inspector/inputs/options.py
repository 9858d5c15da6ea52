"""The one validation of the options inspect, audit, embed, probe and the Ray jobs share: ``RunOptions``
(what to feed the models and how to run them) holding ``EngineOptions`` (where the job runs), both frozen
and checked once, on creation, then passed whole from the CLI down to the Ray actors."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from padlens.errors import BadInput, Param
from padlens.inspector.inputs.providers import canonical_provider

#: how a batch is padded: to ``max_length``, or to its longest text
PADDINGS = ("max_length", "longest")
#: which side pads go on
SIDES = ("right", "left")
#: ``--padding-side`` values: a side, or ``auto`` (the tokenizer config's, else left for causal models)
SIDE_OPTIONS = ("auto", *SIDES)
#: the least value each count option takes
LEAST = {"batch_size": 1, "max_length": 2, "threads": 1}
#: where inspect and embed run: ``local`` (this process) or ``ray`` (Ray Data actors)
ENGINES = ("local", "ray")


def check_counts(**values: int | None) -> None:
    """``batch_size``, ``max_length``, ``threads`` (None: not given), one wording for every command:
    ``max_length must be at least 2 (room for [CLS] and [SEP]), got 1`` (the error carries the parameter;
    the CLI names its flag)."""
    for name, value in values.items():
        if value is not None and int(value) < LEAST[name]:
            room = " (room for [CLS] and [SEP])" if name == "max_length" else ""
            raise BadInput(f"must be at least {LEAST[name]}{room}, got {value}", parameter=name)


def check_padding(padding: str, side: str, allow_auto: bool = False) -> None:
    """BadInput unless ``padding`` is one of PADDINGS and ``side`` one of SIDES (or ``auto``
    when ``allow_auto``: commands resolve it per model)."""
    if padding not in PADDINGS:
        raise BadInput(f"padding must be one of {', '.join(PADDINGS)}, got {padding!r}")
    sides = SIDE_OPTIONS if allow_auto else SIDES
    if side not in sides:
        raise BadInput(f"padding side must be one of {', '.join(sides)}, got {side!r}")


def check_options(max_length: int | None, padding: str, padding_side: str, batch_size: int,
                  providers: Sequence[str] | str | None, threads: int | None) -> list[str]:
    """Every shared option at once, before any model is loaded; returns the providers
    asked for, without duplicates (unknown provider names raise ProviderError)."""
    check_counts(max_length=max_length, batch_size=batch_size, threads=threads)
    check_padding(padding, padding_side, allow_auto=True)
    providers = [providers] if isinstance(providers, str) else list(providers or ["cpu"])
    for name in providers:
        canonical_provider(name)
    return list(dict.fromkeys(providers))


def check_engine(engine: str, ray_address: str | None = None, workers: int | None = None) -> None:
    """BadInput for an unknown engine, or Ray options without ``engine="ray"``; never imports ray."""
    if engine not in ENGINES:
        raise BadInput(f"must be one of {', '.join(ENGINES)}, got {engine!r}", parameter="engine")
    if engine != "ray":
        for option, value in (("ray_address", ray_address), ("workers", workers)):
            if value is not None:
                raise BadInput(Param(option), " needs ", Param("engine", "ray"))
    elif workers is not None and int(workers) < 1:
        raise BadInput(f"must be at least 1, got {workers}", parameter="workers")


@dataclass(frozen=True)
class EngineOptions:
    """Where a job runs, checked once on creation (BadInput).

    Attributes:
        engine: ``local`` (this process) or ``ray`` (Ray Data actors).
        ray_address: with ``ray``: None starts a local Ray sized to this machine, "auto" joins the
            cluster this node belongs to, HOST:PORT another.
        workers: with ``ray``: actors, each with one ONNX Runtime session (None: Ray's share of the cluster).
        progress_bars: with ``ray``: Ray Data's own progress bars.
    """

    engine: str = "local"
    ray_address: str | None = None
    workers: int | None = None
    progress_bars: bool = False

    def __post_init__(self) -> None:
        check_engine(self.engine, self.ray_address, self.workers)
        if self.workers is not None:
            object.__setattr__(self, "workers", int(self.workers))

    @property
    def on_ray(self) -> bool:
        """True when the job runs on Ray Data actors."""
        return self.engine == "ray"


LOCAL = EngineOptions()
"""This process: every job's default engine."""


@dataclass(frozen=True)
class RunOptions:
    """What to feed the models and how to run them: the options inspect, audit, embed, probe and the
    Ray jobs share, validated once, here (a bad value raises BadInput or ProviderError on creation).

    Attributes:
        max_length: tokens per text (None: each command's default, within the models' positions).
        padding: ``max_length`` (every batch padded to ``max_length``) or ``longest``.
        padding_side: ``auto``, ``right`` or ``left``.
        batch_size: texts per batch (the audit: rows of a neighbour batch, None: its own choice).
        providers: execution providers as asked, without duplicates (names checked).
        threads: ONNX Runtime intra-op threads (None: ORT's).
        allow_fallback: accept a provider ONNX Runtime drops, with a warning.
        tokenizer: a tokenizer folder or tokenizer.json for a bare .onnx (None: the model's own).
        texts_file: the texts file, folder or glob (None: the texts given, or the corpus).
        text_column: the Parquet/CSV column or JSONL field holding the texts (None: "text").
        layers: hidden-state tensors named by the user, embedding output first (None: located).
        engine: where the job runs (``EngineOptions``; default: this process).
    """

    max_length: int | None = None
    padding: str = "max_length"
    padding_side: str = "auto"
    batch_size: int | None = 32
    providers: tuple[str, ...] = ("cpu",)
    threads: int | None = None
    allow_fallback: bool = False
    tokenizer: str | None = None
    texts_file: str | None = None
    text_column: str | None = None
    layers: tuple[str, ...] | None = None
    engine: EngineOptions = field(default=LOCAL)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "providers", tuple(check_options(self.max_length, self.padding, self.padding_side,
                                                    self.batch_size, self.providers, self.threads)))
        if self.batch_size is not None:
            set_(self, "batch_size", int(self.batch_size))
        if self.max_length is not None:
            set_(self, "max_length", int(self.max_length))
        if self.layers is not None:
            set_(self, "layers", tuple(self.layers))
        if not isinstance(self.engine, EngineOptions):
            raise BadInput(f"must be EngineOptions, got {type(self.engine).__name__}", parameter="engine")

    @property
    def encoder_options(self) -> dict:
        """``Encoder.open``'s keywords: allow_fallback, threads, layers."""
        return {"allow_fallback": self.allow_fallback, "threads": self.threads,
                "layers": list(self.layers) if self.layers is not None else None}

    @property
    def layer_list(self) -> list[str] | None:
        """``layers`` as a list (results report it so), or None."""
        return list(self.layers) if self.layers is not None else None
