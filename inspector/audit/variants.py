"""What a variant is: the audited texts tokenized once, the batches made from them, a run's row.

Every row comes from the model's own tokenizer (``inspector/inputs/tokenize.py``), tokenized once per
text; the variants only alter a padded Batch (random ids under the mask, an all-ones mask, a
fully masked row). ``Layout`` says how texts are laid out in batches (the width, the side, the
neighbours); how a batch is run is ``running.py``'s, what is kept of it ``cache.py``'s.

Memory: a run's [B, T, H] outputs are dropped as soon as the rows a check reads are taken from
them (``Row``): the real tokens' states at every layer, the last layer whole, the first layer with
a NaN/Inf. The pads' states at every layer are kept only for runs that reference_drift compares.
At 0.6B (29 layers × [128, 1024]) a whole row is 15 MB; a text's real tokens are a fraction.
"""
from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from padlens.inspector.audit.compare import first_nonfinite
from padlens.inspector.inputs.tokenize import Batch, pad_rows


@dataclass
class Sequences:
    """The audited texts, tokenized once without padding.

    Attributes:
        texts: the texts.
        ids: int64 [n_i] token ids per text (special tokens included), truncated to max length.
        pad_id: the tokenizer's pad id.
        pad_type: the token type written at pads.
        vocab: ids below this are valid (random pad ids are drawn from it).
        types: int64 [n_i] token type ids per text.
        special: int64 [n_i] special-token masks per text.
    """

    texts: list[str]
    ids: list[np.ndarray]
    pad_id: int
    pad_type: int
    vocab: int
    types: list[np.ndarray] = field(default_factory=list)
    special: list[np.ndarray] = field(default_factory=list)

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
    cut = [slice(0, int(n)) for n in batch.lengths]
    ids, types, special = ([a[i, c].copy() for i, c in enumerate(cut)]
                           for a in (batch.input_ids, batch.token_type_ids, batch.special_tokens_mask))
    return Sequences(list(texts), ids, int(batch.pad_id), int(encoder.tokenizer.pad_type_id), int(vocab),
                     types, special)


def stack(batches: Sequence[Batch]) -> Batch:
    """Batches of one width as one batch, rows in order."""
    first = batches[0]
    arrays = {name: np.concatenate([getattr(b, name) for b in batches]) for name in
              ("input_ids", "attention_mask", "token_type_ids", "position_ids", "special_tokens_mask", "lengths")}
    return replace(first, **arrays)


@dataclass(frozen=True)
class Row:
    """One row of a run as the checks read it, in arrays of its own (the run's outputs are freed).

    Attributes:
        real: per layer 0..L, [n, H]: the real tokens' states.
        last: [T, H]: the last layer, pads included (last_token_pooling's naive pick may be a pad).
        nonfinite: the first layer holding NaN or Inf anywhere in the row, pads included; None when finite.
        pads: per layer 0..L, [T - n, H]: the pads' states; only where kept (reference_drift), else None.
    """

    real: list[np.ndarray]
    last: np.ndarray
    nonfinite: int | None = None
    pads: list[np.ndarray] | None = None


def take_row(hidden: Sequence[np.ndarray], row: int, n: int, side: str, pads: bool = False) -> Row:
    """Row ``row`` of per-layer states [B, T, H] with ``n`` real tokens padded on ``side``, copied out."""
    width = hidden[0].shape[1]
    n = min(n, width)
    real, rest = (slice(0, n), slice(n, width)) if side == "right" else (slice(width - n, width), slice(0, width - n))
    last = hidden[-1][row].copy()
    return Row([h[row, real].copy() for h in hidden[:-1]] + [last[real]], last,
               first_nonfinite([h[row] for h in hidden]),
               [h[row, rest].copy() for h in hidden] if pads else None)


def row_keys(batch: Batch) -> list[bytes]:
    """One key per row: what the model sees of it (ids, mask, types; positions follow the width)."""
    both = np.concatenate([batch.input_ids, batch.attention_mask, batch.token_type_ids], axis=1)
    return [row.tobytes() for row in both]


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


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class Layout:
    """How the audited texts are laid out in batches (nothing is run here).

    Attributes:
        tokenizer: the model's tokenizer (texts longer than a width are tokenized again).
        seqs: the texts, tokenized once.
        width: what texts are padded to: max length, or with ``--pad-to longest`` the longest text.
        side: the side the variants are padded on.
        batch_size: rows of a neighbour batch (None: a short and a long neighbour).
        keep_pads: keep the pads' states of each text padded to ``width`` on ``side`` (what
            reference_drift compares across runs).
    """

    tokenizer: object
    seqs: Sequences
    width: int
    side: str = "right"
    batch_size: int | None = None
    keep_pads: bool = False

    @property
    def count(self) -> int:
        return len(self.seqs.ids)

    def length(self, i: int) -> int:
        return len(self.seqs.ids[i])

    def has_pads(self, i: int) -> bool:
        return self.length(i) < self.width

    def keeps_pads(self, width: int, side: str) -> bool:
        """Whether a text padded to ``width`` on ``side`` keeps its pads' states."""
        return self.keep_pads and (width, side) == (self.width, self.side)

    def encode(self, texts: Sequence[str], width: int, side: str | None = None) -> Batch:
        """``texts`` tokenized and padded to ``width`` on ``side`` (each must fit in ``width``)."""
        return self.tokenizer.encode(list(texts), max_length=width, padding="max_length", side=side or self.side)

    def rows(self, indices: Sequence[int], width: int, side: str | None = None) -> Batch:
        """The texts ``indices`` as one batch padded to ``width`` (from their one tokenization)."""
        seqs = self.seqs
        if not seqs.types or any(self.length(i) > width for i in indices):
            return self.encode([seqs.texts[i] for i in indices], width, side)
        return pad_rows([(seqs.ids[i], seqs.types[i], seqs.special[i]) for i in indices], width,
                        side or self.side, seqs.pad_id, seqs.pad_type)

    @functools.cached_property
    def filler(self) -> str:
        """A text of ``width`` tokens (the audited texts joined and repeated): the long neighbour."""
        text = " ".join(self.seqs.texts)
        for _ in range(16):
            n = int(self.encode([text], self.width).lengths[0])
            if n >= self.width or not text.strip():
                break
            text = f"{text} {text}"
        return text

    @functools.cached_property
    def filler_row(self) -> Batch:
        """The long neighbour as a one-row batch padded to ``width``."""
        return self.encode([self.filler], self.width)

    def blank_row(self) -> Batch:
        """A one-row batch of pads only (pad ids, pad type, mask all zeros)."""
        return with_blank_rows(self.rows([0], self.width), [0], self.seqs.pad_type)

    def shortest(self) -> int:
        return min(range(self.count), key=self.length)

    def neighbour_batch(self, i: int) -> tuple[Batch, int]:
        """Text ``i`` padded to ``width`` among neighbours, and its row: a short and a long one,
        then the other texts, ``batch_size`` rows in all (3 when unset)."""
        size = self.batch_size or 3
        first = [i] if size == 2 else [self.shortest(), i]
        others = [j for j in range(self.count) if j != i] or [i]
        more = list(itertools.islice(itertools.cycle(others), max(size - 3, 0)))
        parts = [self.rows(first, self.width), self.filler_row] + ([self.rows(more, self.width)] if more else [])
        return stack(parts), 0 if size == 2 else 1
