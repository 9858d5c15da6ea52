"""What is cached: the ``Probe`` answers the checks' variants once per run and keeps what several
checks share (each text alone unpadded, each text padded alone, the rows of the batch that showed
rows independent).

A probe is made whole by ``Probe.open``: the layout (``variants.Layout``: what the variants are), a
runner (``running.Runner``: how they run, stacked or not, decided once by measuring whether rows are
independent of their batch) and the caches seeded by that measurement. Nothing set later changes
how a variant runs.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from padlens.inspector.audit import running
from padlens.inspector.audit.running import Independence, Runner
from padlens.inspector.audit.variants import Layout, Row, Sequences, row_keys
from padlens.inspector.inputs.tokenize import Batch


class Probe:
    """The padded variants of one run, each computed once.

    The unpadded reference of each text (a batch of one, so no padding and no neighbour) is
    computed once; so is each text padded alone to any width on either side. ``batched`` says
    whether the runner stacks variants (rows shown independent of their batch); ``runs`` counts
    ONNX Runtime runs. Every cached variant is a ``Row``.
    """

    def __init__(self, layout: Layout, runner: Runner, seed: Independence | None = None):
        seed = seed or Independence()
        self.layout, self.runner = layout, runner
        self._refs: dict[int, Row] = dict(seed.refs)
        self._padded: dict[tuple[int, int, str], Row] = dict(seed.padded)
        self._in_batch: dict[bytes, Row] = dict(seed.in_batch) if runner.stacked else {}

    @classmethod
    def open(cls, encoder, layout: Layout, stacking_allowed: bool = True) -> Probe:
        """The probe of ``layout`` on ``encoder``: rows measured for independence first (each text
        in a batch and alone), unless not ``stacking_allowed``, with a ``batch_size`` (neighbour
        batches as asked) or without texts; stacked only when they are independent."""
        runner = Runner(encoder)
        if not stacking_allowed or layout.batch_size is not None or not layout.count:
            return cls(layout, runner)
        found = running.measure_independence(runner, layout)
        return cls(layout, runner.stacking() if found.same else runner, found)

    # -- the layout and the runner, as the checks read them ----------------------------------

    @property
    def encoder(self):
        return self.runner.encoder

    @property
    def batched(self) -> bool:
        """Whether variants run stacked (fixed when the probe was opened)."""
        return self.runner.stacked

    @property
    def runs(self) -> int:
        return self.runner.runs

    @property
    def seqs(self) -> Sequences:
        return self.layout.seqs

    @property
    def width(self) -> int:
        return self.layout.width

    @property
    def side(self) -> str:
        return self.layout.side

    @property
    def batch_size(self) -> int | None:
        return self.layout.batch_size

    @property
    def count(self) -> int:
        return self.layout.count

    def length(self, i: int) -> int:
        return self.layout.length(i)

    def has_pads(self, i: int) -> bool:
        return self.layout.has_pads(i)

    def rows(self, indices: Sequence[int], width: int, side: str | None = None) -> Batch:
        return self.layout.rows(indices, width, side)

    def neighbour_batch(self, i: int) -> tuple[Batch, int]:
        return self.layout.neighbour_batch(i)

    # -- running ----------------------------------------------------------------------------

    def batch_rows(self, batch: Batch, rows: Sequence[int]) -> list[Row]:
        """Rows ``rows`` of ``batch`` (real tokens as its mask says). With rows independent, a
        batch whose rows all ran in the batch of every text is answered from that batch."""
        if self._in_batch and len(batch.lengths) > 1:
            keys = row_keys(batch)
            if all(k in self._in_batch for k in keys):
                return [self._in_batch[keys[r]] for r in rows]
        return self.runner.rows(batch, rows)

    def run_alone(self, batches: Sequence[Batch], texts: Sequence[int],
                  pads: Sequence[bool] | None = None) -> list[Row]:
        """Per one-row batch of text ``texts[k]``, its row as when it runs alone (``Runner.alone``).
        The real tokens are the text's own (whatever the batch's mask); ``pads[k]`` keeps its pads."""
        return self.runner.alone(batches, [self.length(i) for i in texts], pads or [False] * len(batches))

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

    def prefetch_padded(self, keys: Sequence[tuple[int, int, str]]) -> None:
        """Compute every (text, width, side) not yet cached (together once rows are independent)."""
        todo = [k for k in dict.fromkeys(keys) if k not in self._padded]
        batches = [self.rows([i], width, side) for i, width, side in todo]
        pads = [self.layout.keeps_pads(width, side) for _, width, side in todo]
        for key, row in zip(todo, self.run_alone(batches, [i for i, _, _ in todo], pads)):
            self._padded[key] = row

    def baseline(self, i: int) -> list[np.ndarray]:
        """Text ``i``'s real tokens as it runs alone at the probe's width (unpadded when it fills it)."""
        return (self.padded(i) if self.has_pads(i) else self.reference(i)).real
