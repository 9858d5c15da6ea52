"""A failed run of ONNX Runtime in one line: what ran and, when the graph's structure tells, why."""
from __future__ import annotations

from typing import Callable

import numpy as np

from padlens.errors import ModelLoadError, Param, words
from padlens.inspector.inputs.tokenize import Batch
from padlens.inspector.model.structure import Structure
from padlens.inspector.runtime.shapes import run_shaped


def likely_cause(message: str, structure: Structure, position_rows: int | None, batch: Batch,
                 fed: list[str]) -> str:
    """The probable reason a run failed, from ONNX Runtime's message and the graph's structure."""
    return words(cause_parts(message, structure, position_rows, batch, fed))


def cause_parts(message: str, structure: Structure, position_rows: int | None, batch: Batch,
                fed: list[str]) -> tuple:
    """``likely_cause`` as an error's pieces (the parameters it names as ``Param``); () when unknown."""
    text = message.lower()
    rows, width = batch.shape
    if "missing input" in text or "required input" in text:
        return (f"the graph needs an input padlens does not feed (padlens fed {', '.join(fed)})",)
    if ("indices" in text or "out of bounds" in text or "out of range" in text) and position_rows:
        usable = position_rows - structure.position_offset
        if width + structure.position_offset > position_rows or width > usable:
            return (f"position table too short: {position_rows} rows hold {usable} tokens, the batch "
                    f"has {width}: pass ", Param("max_length", usable), " or less")
    if structure.fixed_batch and rows != structure.fixed_batch:
        return (f"a batch fixed in the graph ({structure.fixed_batch_evidence})",)
    if structure.fixed_length and width != structure.fixed_length:
        return (f"a sequence length fixed in the graph at {structure.fixed_length}",)
    if any(k in text for k in ("reshape", "shape mismatch", "broadcast", "re-use buffer", "invalid dimensions")):
        return ("a batch or length fixed inside the graph (constant Reshape shapes): try ", Param("batch_size", 1),
                ", or ", Param("max_length"), " set to the length the file was exported at")
    return ()


def failure_words(label: str, batch: Batch) -> str:
    """What ran, for an error line: ``m.onnx on a batch of 2 texts x 128 tokens (right-padded)``."""
    rows, width = batch.shape
    return f"{label} on a batch of {rows} text{'s' if rows != 1 else ''} x {width} tokens ({batch.side}-padded)"


def run_explained(run: Callable[[Batch], list[np.ndarray]], batch: Batch, graph) -> list[np.ndarray]:
    """``run_shaped`` on ``graph`` (an EncoderGraph), a failure's likely cause appended when known."""
    try:
        return run_shaped(run, batch, graph.structure)
    except ModelLoadError as exc:
        cause = cause_parts(str(exc), graph.structure, graph.position_rows, batch,
                            [s.name for s in graph.inputs])
        if not cause:
            raise
        raise ModelLoadError(f"{exc}. Likely cause: ", *cause) from exc
