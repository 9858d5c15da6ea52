"""The padded variants the checks compare: each text alone, padded, beside neighbours, with its pads altered.

Every row comes from the model's own tokenizer (``inspector/inputs/tokenize.py``), tokenized once per
text; the variants only alter a padded Batch (random ids under the mask, an all-ones mask, a
fully masked row).

Speed: each text is first run alone, padded to the probe's width; then, for a model that may
batch (no ``--batch-size``, no dynamic quantization read in its graph), every text runs once in
one batch beside the long filler and a fully masked row. When each row of that batch is
bit-identical to the same text alone, the model's rows do not depend on their batch: the
neighbour and fully-masked batches are answered from that batch's rows, and the other
variants (random pads, an all-ones mask, the other side, +1/+8 pads, the unpadded references)
run stacked, many texts per run. Otherwise every variant runs alone, as it is described.

Memory: a run's [B, T, H] outputs are dropped as soon as the rows a check reads are taken from
them (``Row``): the real tokens' states at every layer, the last layer whole, the first layer with
a NaN/Inf. The pads' states at every layer are kept only for runs that reference_drift compares.
At 0.6B (29 layers × [128, 1024]) a whole row is 15 MB; a text's real tokens are a fraction.
"""
from __future__ import annotations

import functools
import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from padlens.errors import ModelLoadError
from padlens.inspector.audit.compare import first_nonfinite
from padlens.inspector.inputs.tokenize import Batch, pad_rows

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


# --------------------------------------------------------------------------- running

#: rows per stacked run once rows are shown independent of their batch
STACK_ROWS = 8
#: rows of one batch that shows whether rows are independent (texts, the filler, a blank row)
INDEPENDENCE_ROWS = 32


class Probe:
    """Runs the padded variants through one encoder and caches what several checks share.

    ``width`` is what texts are padded to: max length, or with ``--pad-to longest`` the
    longest audited text. The unpadded reference of each text (a batch of one, so no padding
    and no neighbour) is computed once; so is each text padded alone to any width on either side.
    ``batch_size`` is the number of rows of a neighbour batch (None: a short and a long neighbour).
    ``keep_pads`` keeps the pads' states of each text padded to ``width`` on ``side`` (what
    reference_drift compares across runs). ``batched`` turns True when ``check_rows_independent``
    finds every text's row in one batch bit-identical to the text alone (see the module
    docstring); ``runs`` counts ONNX Runtime runs. Every cached variant is a ``Row``.
    """

    def __init__(self, encoder, seqs: Sequences, width: int, side: str = "right",
                 batch_size: int | None = None, keep_pads: bool = False):
        self.encoder, self.seqs, self.width, self.side = encoder, seqs, width, side
        self.batch_size, self.keep_pads = batch_size, keep_pads
        self._refs: dict[int, Row] = {}
        self._padded: dict[tuple[int, int, str], Row] = {}
        self._in_batch: dict[bytes, Row] = {}
        self.batched = False
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
        """The texts ``indices`` as one batch padded to ``width`` (from their one tokenization)."""
        seqs = self.seqs
        if not seqs.types or any(self.length(i) > width for i in indices):
            return self.encode([seqs.texts[i] for i in indices], width, side)
        return pad_rows([(seqs.ids[i], seqs.types[i], seqs.special[i]) for i in indices], width,
                        side or self.side, seqs.pad_id, seqs.pad_type)

    # -- running ----------------------------------------------------------------------------

    def batch_rows(self, batch: Batch, rows: Sequence[int]) -> list[Row]:
        """Rows ``rows`` of ``batch`` (real tokens as its mask says). Once rows are independent, a
        batch whose rows all ran in the batch of every text is answered from that batch."""
        if self.batched and len(batch.lengths) > 1:
            keys = row_keys(batch)
            if all(k in self._in_batch for k in keys):
                return [self._in_batch[keys[r]] for r in rows]
        hidden = self._run(batch)
        return [take_row(hidden, r, int(batch.lengths[r]), batch.side) for r in rows]

    def _run(self, batch: Batch) -> list[np.ndarray]:
        """One ONNX Runtime run fetching only the hidden states."""
        enc = self.encoder
        self.runs += 1
        hidden = [np.asarray(h, dtype=np.float32)
                  for h in enc.fetch(enc.hidden_outputs, batch)]
        for index, h in enumerate(hidden):
            if h.ndim != 3 or h.shape[:2] != batch.shape:
                raise ModelLoadError(f"{enc.label}: layer {index} has shape {h.shape}, expected [batch, seq, "
                                     f"hidden] = [{batch.shape[0]}, {batch.shape[1]}, H]")
        return hidden

    def run_alone(self, batches: Sequence[Batch], texts: Sequence[int],
                  pads: Sequence[bool] | None = None) -> list[Row]:
        """Per one-row batch of text ``texts[k]``, its row as when it runs alone: one run each,
        or, once rows are independent, stacked STACK_ROWS at a time with others of its width.
        The real tokens are the text's own (whatever the batch's mask); ``pads[k]`` keeps its pads."""
        pads = pads or [False] * len(batches)

        def take(hidden, row, k):
            return take_row(hidden, row, self.length(texts[k]), batches[k].side, pads[k])

        if not self.batched:
            return [take(self._run(b), 0, k) for k, b in enumerate(batches)]
        out: list[Row] = [None] * len(batches)  # type: ignore[list-item]
        by_width: dict[int, list[int]] = {}
        for k, b in enumerate(batches):
            by_width.setdefault(b.shape[1], []).append(k)
        for ks in by_width.values():
            for start in range(0, len(ks), STACK_ROWS):
                part = ks[start:start + STACK_ROWS]
                hidden = self._run(stack([batches[k] for k in part]))
                for row, k in enumerate(part):
                    out[k] = take(hidden, row, k)
        return out

    # -- cached variants --------------------------------------------------------------------

    def reference(self, i: int) -> Row:
        """Text ``i`` alone, unpadded."""
        if i not in self._refs:
            self.prefetch_references([i])
        return self._refs[i]

    def prefetch_references(self, indices: Sequence[int]) -> None:
        """Compute the references of ``indices`` not yet cached (together once rows are independent)."""
        todo = [i for i in dict.fromkeys(indices) if i not in self._refs]
        for i, row in zip(todo, self.run_alone([self.rows([i], self.length(i)) for i in todo], todo)):
            self._refs[i] = row

    def padded(self, i: int, width: int | None = None, side: str | None = None) -> Row:
        """Text ``i`` alone, padded to ``width`` on ``side`` (cached)."""
        key = (i, width or self.width, side or self.side)
        if key not in self._padded:
            self.prefetch_padded([key])
        return self._padded[key]

    def _keeps_pads(self, width: int, side: str) -> bool:
        return self.keep_pads and (width, side) == (self.width, self.side)

    def prefetch_padded(self, keys: Sequence[tuple[int, int, str]]) -> None:
        """Compute every (text, width, side) not yet cached (together once rows are independent)."""
        todo = [k for k in dict.fromkeys(keys) if k not in self._padded]
        batches = [self.rows([i], width, side) for i, width, side in todo]
        pads = [self._keeps_pads(width, side) for _, width, side in todo]
        for key, row in zip(todo, self.run_alone(batches, [i for i, _, _ in todo], pads)):
            self._padded[key] = row

    def baseline(self, i: int) -> list[np.ndarray]:
        """Text ``i``'s real tokens as it runs alone at the probe's width (unpadded when it fills it)."""
        return (self.padded(i) if self.has_pads(i) else self.reference(i)).real

    # -- neighbours ------------------------------------------------------------------------

    @functools.cached_property
    def _filler(self) -> str:
        text = " ".join(self.seqs.texts)
        for _ in range(16):
            n = int(self.encode([text], self.width).lengths[0])
            if n >= self.width or not text.strip():
                break
            text = f"{text} {text}"
        return text

    def filler(self) -> str:
        """A text of ``width`` tokens (the audited texts joined and repeated): the long neighbour."""
        return self._filler

    @functools.cached_property
    def filler_row(self) -> Batch:
        """The long neighbour as a one-row batch padded to ``width``."""
        return self.encode([self.filler()], self.width)

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

    # -- are rows independent of their batch? ----------------------------------------------

    def _run_alone_exact(self, i: int) -> tuple[list[np.ndarray], Row]:
        """Text ``i`` run alone at the probe's width (unpadded when it fills it), cached as its
        reference or padded variant; returns the run's whole states for an exact comparison."""
        pads = self.has_pads(i)
        width = self.width if pads else self.length(i)
        hidden = self._run(self.rows([i], width))
        row = take_row(hidden, 0, self.length(i), self.side, pads and self._keeps_pads(width, self.side))
        if pads:
            self._padded[(i, width, self.side)] = row
        else:
            self._refs[i] = row
        return hidden, row

    def check_rows_independent(self, allowed: bool = True) -> bool:
        """Run every text once in a batch beside the filler and a fully masked row
        (INDEPENDENCE_ROWS rows at a time) and alone; ``batched`` when every text's row is
        bit-identical in both, pads included. Not tried when not ``allowed`` or with a
        ``batch_size`` (neighbour batches as asked). Only the rows checks read are kept."""
        if not allowed or self.batch_size is not None or not self.count:
            return False
        extra = [self.filler_row, self.blank_row()]
        same, step = True, max(INDEPENDENCE_ROWS - len(extra), 1)
        for start in range(0, self.count, step):
            idx = list(range(start, min(start + step, self.count)))
            batch = stack([self.rows(idx, self.width), *extra])
            hidden, keys = self._run(batch), row_keys(batch)
            for row, i in enumerate(idx):
                alone, kept = self._run_alone_exact(i)
                same = same and all(np.array_equal(h[row], a[0]) for h, a in zip(hidden, alone))
                self._in_batch.setdefault(keys[row], kept)
            for row in range(len(idx), len(keys)):
                self._in_batch.setdefault(keys[row], take_row(hidden, row, int(batch.lengths[row]), batch.side))
            del hidden
        self.batched = same
        if not same:
            self._in_batch.clear()
        log.info("%s: %s", self.encoder.label, "rows are independent of their batch: variants run stacked"
                 if same else "rows depend on their batch: every variant runs alone")
        return same
