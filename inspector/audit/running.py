"""How a variant is run: one ONNX Runtime run per batch, counted, its rows taken out; and whether
the model's rows are independent of their batch, which decides (once) whether runs may be stacked.

Speed: each text is first run alone, padded to the layout's width; then, for a model that may
batch (no ``--batch-size``, no dynamic quantization read in its graph), every text runs once in
one batch beside the long filler and a fully masked row. When each row of that batch is
bit-identical to the same text alone, the model's rows do not depend on their batch: the
neighbour and fully-masked batches are answered from that batch's rows (``cache.py``), and the
other variants (random pads, an all-ones mask, the other side, +1/+8 pads, the unpadded references)
run stacked, many texts per run (a ``Runner`` made ``stacked``). Otherwise every variant runs
alone, as it is described.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from padlens.errors import ModelLoadError
from padlens.inspector.audit.variants import Layout, Row, row_keys, stack, take_row
from padlens.inspector.inputs.tokenize import Batch

log = logging.getLogger(__name__)

#: rows per stacked run once rows are shown independent of their batch
STACK_ROWS = 8
#: rows of one batch that shows whether rows are independent (texts, the filler, a blank row)
INDEPENDENCE_ROWS = 32


class Runner:
    """Runs batches through one encoder, fetching only the hidden states; ``runs`` counts them.

    ``stacked`` (fixed when the runner is made) runs one-row variants STACK_ROWS at a time with
    others of their width; only a model shown to keep its rows independent gets a stacked runner.
    """

    def __init__(self, encoder, stacked: bool = False, runs: int = 0):
        self.encoder, self._stacked, self.runs = encoder, stacked, runs

    @property
    def stacked(self) -> bool:
        return self._stacked

    def stacking(self) -> Runner:
        """A stacked runner on the same encoder, its run count carried on."""
        return Runner(self.encoder, True, self.runs)

    def run(self, batch: Batch) -> list[np.ndarray]:
        """One ONNX Runtime run fetching only the hidden states, [B, T, H] per layer."""
        enc = self.encoder
        self.runs += 1
        hidden = [np.asarray(h, dtype=np.float32) for h in enc.fetch(enc.hidden_outputs, batch)]
        for index, h in enumerate(hidden):
            if h.ndim != 3 or h.shape[:2] != batch.shape:
                raise ModelLoadError(f"{enc.label}: layer {index} has shape {h.shape}, expected [batch, seq, "
                                     f"hidden] = [{batch.shape[0]}, {batch.shape[1]}, H]")
        return hidden

    def rows(self, batch: Batch, rows: Sequence[int]) -> list[Row]:
        """Rows ``rows`` of ``batch`` run together (real tokens as its mask says)."""
        hidden = self.run(batch)
        return [take_row(hidden, r, int(batch.lengths[r]), batch.side) for r in rows]

    def alone(self, batches: Sequence[Batch], lengths: Sequence[int], pads: Sequence[bool]) -> list[Row]:
        """Per one-row batch, its row as when it runs alone, with ``lengths[k]`` real tokens (the
        text's own, whatever the batch's mask) and its pads' states when ``pads[k]``: one run each,
        or, when ``stacked``, STACK_ROWS at a time with others of its width."""
        def take(hidden, row, k):
            return take_row(hidden, row, lengths[k], batches[k].side, pads[k])

        if not self.stacked:
            return [take(self.run(b), 0, k) for k, b in enumerate(batches)]
        out: list[Row] = [None] * len(batches)  # type: ignore[list-item]
        by_width: dict[int, list[int]] = {}
        for k, b in enumerate(batches):
            by_width.setdefault(b.shape[1], []).append(k)
        for ks in by_width.values():
            for start in range(0, len(ks), STACK_ROWS):
                part = ks[start:start + STACK_ROWS]
                hidden = self.run(stack([batches[k] for k in part]))
                for row, k in enumerate(part):
                    out[k] = take(hidden, row, k)
        return out


@dataclass(frozen=True)
class Independence:
    """What the independence measurement found and ran (the cache starts from it).

    Attributes:
        same: every text's row in a batch beside the filler and a blank row was bit-identical
            to the text alone (pads included): rows are independent of their batch.
        refs: text -> its row alone unpadded (texts that fill the width).
        padded: (text, width, side) -> its row alone padded to the width.
        in_batch: row key (``variants.row_keys``) -> that row as it ran in the batch; empty
            unless ``same``.
    """

    same: bool = False
    refs: dict[int, Row] = field(default_factory=dict)
    padded: dict[tuple[int, int, str], Row] = field(default_factory=dict)
    in_batch: dict[bytes, Row] = field(default_factory=dict)


def _alone_exact(runner: Runner, layout: Layout, i: int, found: Independence) -> tuple[list[np.ndarray], Row]:
    """Text ``i`` run alone at the layout's width (unpadded when it fills it), kept in ``found``
    as its reference or padded variant; returns the run's whole states (for an exact comparison) and the row."""
    pads = layout.has_pads(i)
    width = layout.width if pads else layout.length(i)
    hidden = runner.run(layout.rows([i], width))
    row = take_row(hidden, 0, layout.length(i), layout.side, pads and layout.keeps_pads(width, layout.side))
    if pads:
        found.padded[(i, width, layout.side)] = row
    else:
        found.refs[i] = row
    return hidden, row


def measure_independence(runner: Runner, layout: Layout) -> Independence:
    """Run every text once in a batch beside the filler and a fully masked row
    (INDEPENDENCE_ROWS rows at a time) and alone; ``same`` when every text's row is
    bit-identical in both, pads included. Only the rows checks read are kept."""
    found = Independence()
    extra = [layout.filler_row, layout.blank_row()]
    same, step = True, max(INDEPENDENCE_ROWS - len(extra), 1)
    for start in range(0, layout.count, step):
        idx = list(range(start, min(start + step, layout.count)))
        batch = stack([layout.rows(idx, layout.width), *extra])
        hidden, keys = runner.run(batch), row_keys(batch)
        for row, i in enumerate(idx):
            alone, kept = _alone_exact(runner, layout, i, found)
            same = same and all(np.array_equal(h[row], a[0]) for h, a in zip(hidden, alone))
            found.in_batch.setdefault(keys[row], kept)
        for row in range(len(idx), len(keys)):
            found.in_batch.setdefault(keys[row], take_row(hidden, row, int(batch.lengths[row]), batch.side))
        del hidden
    if not same:
        found.in_batch.clear()
    log.info("%s: %s", runner.encoder.label, "rows are independent of their batch: variants run stacked"
             if same else "rows depend on their batch: every variant runs alone")
    return Independence(same, found.refs, found.padded, found.in_batch)
