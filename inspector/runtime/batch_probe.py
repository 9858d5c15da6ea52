"""One tiny run at open: does the graph run two rows at once?

``model.structure.fixed_batch`` reads a batch fixed where the graph spells it (a fixed input
dimension, a constant Reshape shape). Some exports keep the batch they were traced at in shape
arithmetic that no constant shows (inputs declared ``[batch, sequence]``, two rows failing in
an Add deep inside). One run of two rows x ``PROBE_TOKENS`` tokens on the session already made
finds those: when two rows fail and one row runs, the structure fixes the batch at 1, so every
fixed-batch path applies (texts run one at a time, said once in the notes; batch checks n/a).
"""
from __future__ import annotations

import logging
import re
from dataclasses import replace
from typing import Callable

import numpy as np

from padlens.errors import ModelLoadError
from padlens.inspector.inputs.tokenize import Batch, mask_positions
from padlens.inspector.model.structure import Structure
from padlens.inspector.runtime.session import first_line
from padlens.inspector.runtime.shapes import run_shaped

log = logging.getLogger(__name__)

#: tokens per row the probe feeds (the tokenizer's pad id, every token attended)
PROBE_TOKENS = 4
#: characters of ONNX Runtime's reason kept in the evidence
REASON_MAX = 160

_ORT_CODE = re.compile(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ")
_NODE = re.compile(r"while running (\w+) node\. Name:'([^']*)' Status Message: (.*)$")
_SOURCE = re.compile(r"^\S+:\d+ .*? was false\. ")  # ORT's source line and the failed condition


def probe_batch(run: Callable[[Batch], list[np.ndarray]], pad_id: int, structure: Structure) -> Structure:
    """``structure``, with the batch fixed at 1 when ``run`` (one session run, raising
    ModelLoadError) fails on two rows of ``probe_rows`` and runs one; unchanged when the structure fixes a batch
    already, when two rows run, or when one row fails too (the real run then says why)."""
    if structure.fixed_batch:
        return structure
    two = probe_rows(pad_id, 2, structure)
    failed = _fails(run, two, structure)
    if not failed:
        return structure
    alone = _fails(run, probe_rows(pad_id, 1, structure), structure)
    if alone:
        log.debug("neither two rows nor one ran at open (%s; %s)", failed, alone)
        return structure
    evidence = f"two rows failed at open, one row ran: {failed}"
    log.debug("batch fixed at 1: %s", evidence)
    return replace(structure, fixed_batch=1, fixed_batch_evidence=evidence)


def probe_rows(pad_id: int, rows: int, structure: Structure) -> Batch:
    """``rows`` rows of ``PROBE_TOKENS`` tokens (at most a fixed length), each the pad id (a
    real id of every vocabulary), every token attended: no tokenizer call, nothing to pad."""
    width = min(PROBE_TOKENS, structure.fixed_length or PROBE_TOKENS)
    mask = np.ones((rows, width), np.int64)
    zeros = np.zeros_like(mask)
    return Batch(np.full_like(mask, int(pad_id)), mask, zeros, mask_positions(mask), zeros,
                 np.full(rows, width, np.int64), "right", int(pad_id))


def _fails(run: Callable[[Batch], list[np.ndarray]], batch: Batch, structure: Structure) -> str:
    """"" when ``run`` runs ``batch`` and returns one row per row, else why not, in a few words."""
    try:
        outputs = run_shaped(run, batch, structure)
    except ModelLoadError as exc:
        return short_reason(exc)
    rows = batch.shape[0]
    wrong = next((a.shape for a in outputs if a.ndim and a.shape[0] != rows), None)
    return f"{rows} rows gave an output of shape {list(wrong)}" if wrong is not None else ""


def short_reason(exc: BaseException) -> str:
    """ONNX Runtime's reason for a failed run on one short line: the node and its message,
    without the error code, the source line or the failed condition."""
    text = _ORT_CODE.sub("", first_line(exc.__cause__ or exc))
    node = _NODE.search(text)
    if node:
        text = f"{node[1]} node {node[2]!r}: {_SOURCE.sub('', node[3])}"
    return text if len(text) <= REASON_MAX else text[:REASON_MAX - 1].rstrip() + "…"
