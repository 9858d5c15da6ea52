"""The padded variants the checks compare: each text alone, padded, beside neighbours, with its pads altered.

Every row comes from the model's own tokenizer (``inspector/tokenize.py``); the variants only
alter a tokenized Batch (random ids under the mask, an all-ones mask, a fully masked row).
"""
from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from padlens.inspector.tokenize import Batch

log = logging.getLogger(__name__)


@dataclass
class Sequences:
    """The audited texts, tokenized once without padding.

    Attributes:
        texts: the texts.
        ids: int64 [n_i] token ids per text (special tokens included), truncated to max length.
        pad_id: the tokenizer's pad id.
        pad_type: the token type written at pads.
        vocab: ids below this are valid (random pad ids are drawn from it).
    """

    texts: list[str]
    ids: list[np.ndarray]
    pad_id: int
    pad_type: int
    vocab: int

    def name(self, i: int) -> str:
        text = self.texts[i]
        short = text if len(text) <= 40 else text[:37] + "..."
        return f"text {i + 1} {short!r} ({len(self.ids[i])} tokens)"

    def same_tokens(self, other: Sequences) -> bool:
        return len(self.ids) == len(other.ids) and all(
            np.array_equal(a, b) for a, b in zip(self.ids, other.ids))


def tokenize(encoder, texts: Sequence[str], max_length: int) -> Sequences:
    """Tokenize each text once, truncated to ``max_length``, unpadded."""
    batch = encoder.tokenizer.encode(list(texts), max_length=max_length, padding="longest", side="right")
    vocab = encoder.tokenizer.vocab_size
    if encoder.graph.vocab_size:
        vocab = min(vocab, int(encoder.graph.vocab_size))
    ids = [batch.input_ids[i, :n].copy() for i, n in enumerate(batch.lengths)]
    return Sequences(list(texts), ids, int(batch.pad_id), int(encoder.tokenizer.pad_type_id), int(vocab))


# --------------------------------------------------------------------------- variants of a batch


def with_random_pads(batch: Batch, rng: np.random.Generator, vocab: int) -> Batch:
    """The same batch with every pad id replaced by a random vocabulary id (mask unchanged)."""
    ids = batch.input_ids.copy()
    ids[batch.pad_mask] = rng.integers(0, vocab, int(batch.pad_mask.sum()))
    return replace(batch, input_ids=ids)


def with_full_mask(batch: Batch) -> Batch:
    """The same ids with an attention mask of ones everywhere (pads unmasked)."""
    mask = np.ones_like(batch.attention_mask)
    return replace(batch, attention_mask=mask, lengths=mask.sum(1))


def with_blank_rows(batch: Batch, rows: Sequence[int], pad_type: int) -> Batch:
    """``rows`` turned into pads only: pad ids, pad type, mask all zeros."""
    ids, mask, types = batch.input_ids.copy(), batch.attention_mask.copy(), batch.token_type_ids.copy()
    special, lengths = batch.special_tokens_mask.copy(), batch.lengths.copy()
    ids[rows], mask[rows], types[rows], special[rows], lengths[rows] = batch.pad_id, 0, pad_type, 0, 0
    return replace(batch, input_ids=ids, attention_mask=mask, token_type_ids=types,
                   special_tokens_mask=special, lengths=lengths)


# --------------------------------------------------------------------------- running


class Probe:
    """Runs the padded variants through one encoder and caches what several checks share.

    ``width`` is what texts are padded to: max length, or with ``--pad-to longest`` the
    longest audited text. The unpadded reference of each text (a batch of one, so no padding
    and no neighbour) is computed once; so is each text padded alone to ``width`` on either side.
    ``batch_size`` is the number of rows of a neighbour batch (None: a short and a long neighbour).
    """

    def __init__(self, encoder, seqs: Sequences, width: int, side: str = "right",
                 batch_size: int | None = None):
        self.encoder, self.seqs, self.width, self.side = encoder, seqs, width, side
        self.batch_size = batch_size
        self._refs: dict[int, list[np.ndarray]] = {}
        self._padded: dict[tuple[int, int, str], list[np.ndarray]] = {}
        self.runs = 0

    @property
    def count(self) -> int:
        return len(self.seqs.ids)

    def length(self, i: int) -> int:
        return len(self.seqs.ids[i])

    def has_pads(self, i: int) -> bool:
        return self.length(i) < self.width

    def encode(self, texts: Sequence[str], width: int, side: str | None = None) -> Batch:
        """``texts`` tokenized and padded to ``width`` on ``side`` (each must fit in ``width``)."""
        return self.encoder.tokenizer.encode(list(texts), max_length=width, padding="max_length",
                                             side=side or self.side)

    def rows(self, indices: Sequence[int], width: int, side: str | None = None) -> Batch:
        """The texts ``indices`` as one batch padded to ``width``."""
        return self.encode([self.seqs.texts[i] for i in indices], width, side)

    def forward(self, batch: Batch) -> list[np.ndarray]:
        """Run ``batch``; returns hidden states [B, T, H] for layers 0..L."""
        self.runs += 1
        return self.encoder.run(batch).hidden

    def reference(self, i: int) -> list[np.ndarray]:
        """Text ``i`` alone, unpadded: per-layer [n, H]."""
        if i not in self._refs:
            self._refs[i] = [h[0] for h in self.forward(self.rows([i], self.length(i)))]
        return self._refs[i]

    def padded(self, i: int, width: int | None = None, side: str | None = None,
               keep: bool = True) -> list[np.ndarray]:
        """Text ``i`` alone, padded to ``width``: per-layer [width, H] (cached when ``keep``)."""
        width, side = width or self.width, side or self.side
        key = (i, width, side)
        if key in self._padded:
            return self._padded[key]
        states = [h[0] for h in self.forward(self.rows([i], width, side))]
        if keep:
            self._padded[key] = states
        return states

    def baseline(self, i: int) -> list[np.ndarray]:
        """Text ``i``'s real tokens as it runs alone at the probe's width (unpadded when it fills it)."""
        return self.real(self.padded(i), i) if self.has_pads(i) else self.reference(i)

    def real(self, states: list[np.ndarray], i: int, side: str | None = None) -> list[np.ndarray]:
        """The real-token rows of a padded text's per-layer states."""
        n = self.length(i)
        if (side or self.side) == "right":
            return [h[:n] for h in states]
        return [h[h.shape[0] - n:] for h in states]

    # -- neighbours ------------------------------------------------------------------------

    def filler(self) -> str:
        """A text of ``width`` tokens (the audited texts joined and repeated): the long neighbour."""
        text = " ".join(self.seqs.texts)
        for _ in range(16):
            n = int(self.encode([text], self.width).lengths[0])
            if n >= self.width or not text.strip():
                break
            text = f"{text} {text}"
        return text

    def shortest(self) -> int:
        return min(range(self.count), key=self.length)

    def neighbour_batch(self, i: int) -> tuple[Batch, int]:
        """Text ``i`` padded to ``width`` among neighbours, and its row: a short and a long one,
        then the other texts, ``batch_size`` rows in all (3 when unset)."""
        size = self.batch_size or 3
        texts = [self.seqs.texts[self.shortest()], self.seqs.texts[i], self.filler()]
        if size == 2:
            texts = texts[1:]
        others = [j for j in range(self.count) if j != i] or [i]
        texts += [self.seqs.texts[j] for j in itertools.islice(itertools.cycle(others), max(size - 3, 0))]
        return self.encode(texts, self.width), 0 if size == 2 else 1
