"""What every export backend is: a name, why it cannot run here (or None), and an fp32 export."""
from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path
from typing import Iterator, Protocol

#: dynamic axes of every graph input and hidden-state output
OUTPUT_AXES = {0: "batch_size", 1: "sequence_length"}


def output_names(num_layers: int) -> list[str]:
    """``last_hidden_state`` then ``hidden_states.0`` (embeddings) … ``hidden_states.L``."""
    return ["last_hidden_state"] + [f"hidden_states.{i}" for i in range(num_layers + 1)]


@contextlib.contextmanager
def quiet_libraries(log: logging.Logger, names: tuple[str, ...], stdout: bool = False) -> Iterator[None]:
    """Hide the libraries' warnings and chatter (loggers ``names``; ``stdout``: their prints too)
    unless ``log`` is at DEBUG (``-vv``)."""
    if log.isEnabledFor(logging.DEBUG):
        yield
        return
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings(), (contextlib.redirect_stdout(None) if stdout else contextlib.nullcontext()):
        warnings.simplefilter("ignore")
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)


class Backend(Protocol):
    """One way to write an encoder's fp32 ONNX file with every layer exposed.

    Attributes:
        name: ``optimum`` or ``torch`` (recorded in padlens.json as ``backend``).
    """

    name: str

    def why_not(self) -> str | None:
        """Why this backend cannot export here (a package missing, a version pin), or None."""

    def architectures(self) -> tuple[str, ...]:
        """The transformers ``model_type`` values this backend exports and padlens validates."""

    def export_fp32(self, folder: Path, architecture: str, target: Path) -> list[Path]:
        """Write ``target`` (model.onnx: inputs with dynamic batch/sequence, outputs ``output_names``),
        with its external data beside it when the weights exceed 2 GB; return every file written.
        BadInput naming the architecture when it cannot be exported."""
