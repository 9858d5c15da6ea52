"""Feed graphs whose batch or sequence length is fixed inside them.

A batch fixed at N runs N rows at a time (the last chunk filled with copies of its first row,
dropped from the outputs); a fixed length pads each batch to it (pads masked, on the batch's
side) and cuts the outputs back, so callers see the shapes they asked for.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

import numpy as np

from padlens.inspector.inputs.tokenize import Batch, mask_positions
from padlens.inspector.model.structure import Structure

ROW_FIELDS = ("input_ids", "attention_mask", "token_type_ids", "position_ids", "special_tokens_mask", "lengths")


def needs_shaping(structure: Structure, batch: Batch) -> bool:
    """Whether ``batch``'s rows or width differ from what the graph fixes."""
    rows, width = batch.shape
    return bool((structure.fixed_batch and rows != structure.fixed_batch)
                or (structure.fixed_length and width != structure.fixed_length))


def run_shaped(run: Callable[[Batch], list[np.ndarray]], batch: Batch, structure: Structure) -> list[np.ndarray]:
    """``run(batch)`` within the graph's fixed batch and length; outputs as for ``batch``."""
    if not needs_shaping(structure, batch):
        return run(batch)
    width = batch.shape[1]
    padded = pad_to_length(batch, structure.fixed_length) if structure.fixed_length else batch
    size = structure.fixed_batch or padded.shape[0]
    parts = [_run_rows(run, padded, start, size) for start in range(0, padded.shape[0], size)]
    joined = [np.concatenate(outs, axis=0) if outs[0].ndim else outs[0] for outs in zip(*parts)]
    return [cut_length(a, padded.shape[1], width, batch.side) for a in joined]


def _run_rows(run, batch: Batch, start: int, size: int) -> list[np.ndarray]:
    """Rows ``start:start+size`` of ``batch``, the chunk filled to ``size`` with its first row."""
    take = list(range(start, min(start + size, batch.shape[0])))
    real = len(take)
    take += [start] * (size - real)
    chunk = replace(batch, **{f: getattr(batch, f)[take] for f in ROW_FIELDS})
    return [a[:real] if a.ndim and a.shape[0] == size else a for a in run(chunk)]


def pad_to_length(batch: Batch, width: int) -> Batch:
    """``batch`` with pads added on its side up to ``width`` (mask 0, pad id, positions from the mask)."""
    extra = int(width) - batch.shape[1]
    if extra <= 0:
        return batch
    where = (0, extra) if batch.side == "right" else (extra, 0)

    def grow(a: np.ndarray, value) -> np.ndarray:
        return np.pad(a, ((0, 0), where), constant_values=value)

    mask = grow(batch.attention_mask, 0)
    types = grow(batch.token_type_ids, int(batch.token_type_ids[batch.pad_mask][0])
                 if batch.pad_mask.any() else 0)
    return replace(batch, input_ids=grow(batch.input_ids, batch.pad_id), attention_mask=mask,
                   token_type_ids=types, position_ids=mask_positions(mask),
                   special_tokens_mask=grow(batch.special_tokens_mask, 0))


def cut_length(a: np.ndarray, padded: int, width: int, side: str) -> np.ndarray:
    """Cut the sequence axes (1, or both of a ``[B, heads, T, T]`` attention) back to ``width``."""
    if padded == width or a.ndim < 2:
        return a
    keep = slice(0, width) if side == "right" else slice(padded - width, padded)
    if a.ndim == 4 and a.shape[-2:] == (padded, padded):
        return a[:, :, keep, keep]
    return a[:, keep] if a.shape[1] == padded else a
