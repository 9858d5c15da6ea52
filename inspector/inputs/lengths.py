"""One rule for the sequence length texts are truncated (and padded) to, shared by every command."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol, Sequence

from padlens.errors import BadInput
from padlens.inspector.inputs.options import check_counts

log = logging.getLogger(__name__)

#: inspect's and audit's length when none is asked for (pad metrics compare at one length)
DEFAULT_MAX_LENGTH = 128


class HasPositions(Protocol):
    """A model whose length is bounded: an Encoder, embed's runner, or a ``PositionLimit``."""

    label: str
    max_positions: int | None


@dataclass(frozen=True)
class PositionLimit:
    """A bound on the length, from something that is not an opened model (a config, a tokenizer).

    Attributes:
        label: what the bound belongs to, as errors name it.
        max_positions: the most tokens it takes (None: no bound).
    """

    label: str
    max_positions: int | None


def limit_words(model: HasPositions) -> str:
    """``64 position embeddings``, or with the model's ``limit_reason``: ``limit of 64 tokens
    (a 66-row position table, less padding_idx + 1 = 2 rows)``."""
    reason = getattr(model, "limit_reason", None)
    if isinstance(reason, str) and reason:
        return f"limit of {model.max_positions} tokens ({reason})"
    return f"{model.max_positions} position embeddings"


def choose_max_length(asked: int | None, models: Sequence[HasPositions],
                      default: int = DEFAULT_MAX_LENGTH) -> int:
    """The length to truncate to: ``asked`` when every model has that many positions (else
    BadInput naming the model); without one, ``default`` cut to the fewest positions."""
    if asked is not None:
        check_counts(max_length=asked)
        for model in models:
            if model.max_positions is not None and int(asked) > int(model.max_positions):
                raise BadInput(f"{asked} is beyond {model.label}'s {limit_words(model)}", parameter="max_length")
        return int(asked)
    limits = [int(m.max_positions) for m in models if m.max_positions]
    length = min([int(default), *limits])
    if length < int(default):
        log.info("max length %d: the model has %d position embeddings", length, length)
    return length
