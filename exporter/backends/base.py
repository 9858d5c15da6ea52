"""What every export backend is: a name, why it cannot run here (or None), and an fp32 export."""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

#: dynamic axes of every graph input and hidden-state output
OUTPUT_AXES = {0: "batch_size", 1: "sequence_length"}


def output_names(num_layers: int) -> list[str]:
    """``last_hidden_state`` then ``hidden_states.0`` (embeddings) … ``hidden_states.L``."""
    return ["last_hidden_state"] + [f"hidden_states.{i}" for i in range(num_layers + 1)]


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
