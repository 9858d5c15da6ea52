"""The one validation of the options inspect, audit, embed and the tokenizer share."""
from __future__ import annotations

import logging
from typing import Sequence

from padlens.errors import BadInput
from padlens.inspector.inputs.providers import canonical_provider

log = logging.getLogger(__name__)

#: how a batch is padded: to ``max_length``, or to its longest text
PADDINGS = ("max_length", "longest")
#: which side pads go on
SIDES = ("right", "left")
#: ``--padding-side`` values: a side, or ``auto`` (the tokenizer config's, else left for causal models)
SIDE_OPTIONS = ("auto", *SIDES)
#: the least value each count option takes
LEAST = {"batch_size": 1, "max_length": 2, "threads": 1}


def check_counts(**values: int | None) -> None:
    """``batch_size``, ``max_length``, ``threads`` (None: not given), one wording for every command:
    ``--max-length must be at least 2 (room for [CLS] and [SEP]), got 1``."""
    for name, value in values.items():
        if value is not None and int(value) < LEAST[name]:
            room = " (room for [CLS] and [SEP])" if name == "max_length" else ""
            raise BadInput(f"--{name.replace('_', '-')} must be at least {LEAST[name]}{room}, got {value}")


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
