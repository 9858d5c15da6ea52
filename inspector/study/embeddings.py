"""One file's sentence embeddings of the corpus, pooled every way the study compares.

One pass over the corpus in its own order (batches padded to ``max_length``, as the common
setup does) gives the masked mean, the mean with pads left in and the model's own first/last-token
pooling from the same token states; a second pass in a seeded shuffled order gives the masked
mean again (variant (e)). Pooling is ``stats.pooling.pool``; the session is ``EmbedModel``'s.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from padlens.inspector.inputs.lengths import choose_max_length
from padlens.inspector.inputs.options import RunOptions
from padlens.inspector.inputs.tokenize import choose_side
from padlens.inspector.runtime.embed_model import EmbedModel
from padlens.inspector.runtime.session import SessionOptions
from padlens.inspector.stats.cosine import row_cosines
from padlens.inspector.stats.pooling import pool, resolve_pooling

log = logging.getLogger(__name__)

#: the model's own poolings that get a (c) row (they read one token, not a mean)
TOKEN_POOLINGS = ("cls", "lasttoken")


@dataclass
class Embedded:
    """The corpus embedded by one file.

    Attributes:
        label: the file's label. max_length: tokens per text. side: the padding side.
        pooling: the model's own pooling mode; pooling_source: where it came from.
        lengths: real tokens per text.
        vectors: name -> [n, H] float64: ``masked``, ``unmasked``, ``own`` (only for a cls or
            lasttoken model) and ``masked_reordered`` (the shuffled order, rows put back).
    """

    label: str
    max_length: int
    side: str
    pooling: str
    pooling_source: str
    lengths: np.ndarray
    vectors: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def order_cos_min(self) -> float:
        """Least cosine between a text's masked mean in the two batch orders."""
        return float(np.min(row_cosines(self.vectors["masked"], self.vectors["masked_reordered"])))


def open_model(ref, options: RunOptions) -> EmbedModel:
    """The file's session fetching its token states (never a graph-pooled output)."""
    return EmbedModel(ref, SessionOptions.of(options), graph_pooling=False)


def embed_corpus(ref, texts: list[str], options: RunOptions, seed: int, runner: EmbedModel | None = None) -> Embedded:
    """Embed ``texts`` with ``ref`` in the corpus order and in a seeded shuffled order."""
    runner = runner or open_model(ref, options)
    config = resolve_pooling(ref.path, ref.manifest, "auto", None)
    length = choose_max_length(options.max_length, [runner])
    side = choose_side(options.padding_side, runner.tokenizer, runner.graph.causal)[0]
    own = config.mode if config.mode in TOKEN_POOLINGS else None
    first = _pass(runner, texts, np.arange(len(texts)), length, side, options.batch_size, own)
    order = np.random.default_rng([int(seed), 31]).permutation(len(texts))
    second = _pass(runner, texts, order, length, side, options.batch_size, None)
    vectors = {"masked": first["masked"], "unmasked": first["unmasked"], "masked_reordered": second["masked"]}
    if own:
        vectors["own"] = first["own"]
    return Embedded(ref.label, length, side, config.mode, config.source, first["lengths"], vectors)


def _pass(runner: EmbedModel, texts: list[str], order: np.ndarray, length: int, side: str, batch_size: int,
          own: str | None) -> dict[str, np.ndarray]:
    """Pooled rows of ``texts`` run in ``order`` (rows returned in the texts' order)."""
    parts: dict[str, list[np.ndarray]] = {"masked": [], "unmasked": [], "own": [], "lengths": []}
    for start in range(0, len(order), int(batch_size)):
        rows = order[start:start + int(batch_size)]
        batch = runner.tokenizer.encode([texts[i] for i in rows], max_length=length, padding="max_length",
                                        side=side)
        states = runner.run(batch)
        parts["masked"].append(pool(states, batch.attention_mask, "mean"))
        parts["unmasked"].append(pool(states, np.ones_like(batch.attention_mask), "mean"))
        if own:
            parts["own"].append(pool(states, batch.attention_mask, own))
        parts["lengths"].append(batch.lengths)
    back = np.argsort(order)
    return {name: np.concatenate(chunks)[back] for name, chunks in parts.items() if chunks}
