"""The states a probe reads: a few sampled pad and real-token states per text, streamed per batch.

Only the sampled positions are kept (float32, ``per_text`` pads and ``per_text`` real tokens
per text at every layer) plus each text's content vector (the masked mean of its real
tokens) per layer, so memory is O(texts × layers × (2·per_text + 1) × D), never the batches.

Which positions are sampled, and why:

- **pads** only in the *common pad window*: positions where every probed text has a pad
  (from ``floor`` on under right padding, before ``T − floor`` under left padding, where
  ``floor`` is the length of the longest probed text). A pad's position then says nothing
  about which text it pads, so whatever a pad probe reads beyond its control reached the pad
  through attention. Texts longer than ``floor`` (the longest ``1 − WINDOW_QUANTILE``) are
  left out of the pad probes.
- **real tokens** among the content tokens of the text: real positions that the tokenizer's
  special-tokens mask does not mark ([CLS], [SEP], <s> … are never sampled).

Sampling is seeded per (seed, text index), so results do not depend on the batch size.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

WINDOW_QUANTILE = 0.9
"""The pad window starts after the longest of this fraction of texts (the longest 10% are left out)."""


def pad_floor(lengths: np.ndarray, quantile: float = WINDOW_QUANTILE) -> int:
    """The common pad window's start: the ``quantile`` of the texts' real lengths, rounded up."""
    lengths = np.asarray(lengths)
    if lengths.size == 0:
        return 0
    return int(math.ceil(float(np.quantile(lengths, quantile, method="higher"))))


@dataclass
class StateSet:
    """Sampled states of one kind (pads or real tokens) for every layer.

    Attributes:
        states: per layer, float32 [n, D] states (one row per sampled position).
        text: int [n], the index of the text each state came from.
        position: int [n], the state's position in its padded sequence.
        distance: int [n], |position − position of the text's last real token|.
    """

    states: list[np.ndarray]
    text: np.ndarray
    position: np.ndarray
    distance: np.ndarray

    @property
    def size(self) -> int:
        return int(self.text.size)


@dataclass
class Collected:
    """Everything the probes of one run read.

    Attributes:
        pads: sampled pad states (in the common window).
        reals: sampled real-token states (content tokens only).
        content: per layer, float32 [N, D]: each text's masked mean of its real tokens
            (special tokens included, pads excluded: what mean pooling computes); NaN rows
            for texts left out.
        length: int [N], real tokens per text (special tokens included); 0 for texts left out.
        first_token: int [N], id of the first content token (after [CLS]/BOS), −1 when none.
        kept: bool [N], texts whose real tokens' states were finite at every layer (others are
            left out everywhere); a NaN/Inf pad drops that text's pad samples only, and a zero
            pad state is a valid sample (norm 0: what the pads hold).
        floor: the common pad window's start (see module docstring).
        tensors: the graph tensor each layer was read from.
    """

    pads: StateSet
    reals: StateSet
    content: list[np.ndarray]
    length: np.ndarray
    first_token: np.ndarray
    kept: np.ndarray
    floor: int
    tensors: list[str] = field(default_factory=list)

    @property
    def num_layers(self) -> int:
        return len(self.content)


class Collector:
    """Accumulates a run's sampled states batch by batch (``add``), then ``finish()``."""

    def __init__(self, n_texts: int, floor: int, per_text: int = 4, seed: int = 0):
        self.n_texts, self.floor, self.per_text, self.seed = int(n_texts), int(floor), int(per_text), int(seed)
        self.length = np.zeros(self.n_texts, dtype=np.int64)
        self.first_token = np.full(self.n_texts, -1, dtype=np.int64)
        self.kept = np.zeros(self.n_texts, dtype=bool)
        self.pads = _Parts()
        self.reals = _Parts()
        self.content: list[list[np.ndarray]] = []
        self.content_rows: list[np.ndarray] = []

    def add(self, batch, hidden: list[np.ndarray], offset: int) -> None:
        """Take the sampled states of ``batch`` (texts ``offset`` … ``offset + B − 1``)."""
        mask = batch.attention_mask.astype(bool)
        finite = np.logical_and.reduce([np.isfinite(h).all(axis=2) for h in hidden])  # [B, T]
        rows = np.flatnonzero((finite | ~mask).all(axis=1))  # real tokens finite: a faulty pad never drops them
        pad_rows = np.flatnonzero(finite.all(axis=1))
        ids = offset + rows
        self.kept[ids] = True
        self.length[ids] = mask[rows].sum(axis=1)
        content = mask & (batch.special_tokens_mask == 0)
        self.first_token[ids] = [_first(batch.input_ids[r], content[r]) for r in rows]
        last = _last_real(mask)
        pad_pos = [self._sample(offset + r, self._window(mask[r], batch.side), 0) for r in pad_rows]
        real_pos = [self._sample(offset + r, np.flatnonzero(content[r]), 1) for r in rows]
        self.pads.add(hidden, pad_rows, offset + pad_rows, pad_pos, last)
        self.reals.add(hidden, rows, ids, real_pos, last)
        self._add_content(hidden, mask, rows, ids)

    def _window(self, mask_row: np.ndarray, side: str) -> np.ndarray:
        """Pad positions inside the common window of this row (none for a text past the floor)."""
        width = mask_row.size
        pads = np.flatnonzero(~mask_row)
        if int(mask_row.sum()) > self.floor:
            return pads[:0]
        if side == "left":
            return pads[pads < width - self.floor]
        return pads[pads >= self.floor]

    def _sample(self, text: int, candidates: np.ndarray, stream: int) -> np.ndarray:
        if candidates.size <= self.per_text:
            return candidates
        rng = np.random.default_rng([self.seed, int(text), stream])
        return np.sort(rng.choice(candidates, size=self.per_text, replace=False))

    def _add_content(self, hidden, mask: np.ndarray, rows: np.ndarray, ids: np.ndarray) -> None:
        if not self.content:
            self.content = [[] for _ in hidden]
        weights = mask[rows].astype(np.float64)
        counts = np.maximum(weights.sum(axis=1, keepdims=True), 1.0)
        for store, h in zip(self.content, hidden):
            states = np.where(mask[rows][..., None], h[rows].astype(np.float64), 0.0)  # 0 × NaN pad is NaN
            store.append((np.einsum("bt,btd->bd", weights, states) / counts)
                         .astype(np.float32))
        self.content_rows.append(ids)

    def finish(self, tensors: list[str] | None = None) -> Collected:
        """The collected arrays, content rows in text order (NaN for texts left out)."""
        content = []
        ids = np.concatenate(self.content_rows) if self.content_rows else np.zeros(0, dtype=np.int64)
        for store in self.content:
            full = np.full((self.n_texts, store[0].shape[1]), np.nan, dtype=np.float32)
            full[ids] = np.concatenate(store)
            content.append(full)
        layers = len(content)
        return Collected(self.pads.finish(layers), self.reals.finish(layers), content, self.length,
                         self.first_token, self.kept, self.floor, list(tensors or []))


class _Parts:
    """Chunks of one StateSet while batches stream in."""

    def __init__(self):
        self.states: list[list[np.ndarray]] = []
        self.text: list[np.ndarray] = []
        self.position: list[np.ndarray] = []
        self.distance: list[np.ndarray] = []

    def add(self, hidden, rows: np.ndarray, ids: np.ndarray, positions: list[np.ndarray],
            last: np.ndarray) -> None:
        if not self.states:
            self.states = [[] for _ in hidden]
        counts = np.array([p.size for p in positions], dtype=np.int64)
        r = np.repeat(rows, counts)
        cols = np.concatenate(positions).astype(np.int64) if positions else np.zeros(0, dtype=np.int64)
        for store, h in zip(self.states, hidden):
            store.append(np.asarray(h[r, cols], dtype=np.float32))
        self.text.append(np.repeat(ids, counts))
        self.position.append(cols)
        self.distance.append(np.abs(cols - last[r]))

    def finish(self, layers: int) -> StateSet:
        def cat(chunks, dtype):
            return np.concatenate(chunks).astype(dtype) if chunks else np.zeros(0, dtype=dtype)

        states = [np.concatenate(store) if store else np.zeros((0, 0), np.float32) for store in self.states]
        states += [np.zeros((0, 0), np.float32)] * (layers - len(states))
        return StateSet(states, cat(self.text, np.int64), cat(self.position, np.int64),
                        cat(self.distance, np.int64))


def _first(ids: np.ndarray, content: np.ndarray) -> int:
    where = np.flatnonzero(content)
    return int(ids[where[0]]) if where.size else -1


def _last_real(mask: np.ndarray) -> np.ndarray:
    """Position of each row's last real token (0 for a row with none)."""
    width = mask.shape[1]
    flipped = np.argmax(mask[:, ::-1], axis=1)
    return np.where(mask.any(axis=1), width - 1 - flipped, 0)
