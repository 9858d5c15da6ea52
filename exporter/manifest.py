"""padlens.json: what an export folder holds, how it was made and how well it matched PyTorch."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from padlens import __version__
from padlens.inspector.contract import MANIFEST, MANIFEST_FORMAT

FORMAT = MANIFEST_FORMAT


@dataclass
class ModelFacts:
    """What the inspector needs to know about the exported encoder.

    Attributes:
        source: SOURCE as given to ``padlens export``.
        recipe: the recipe name, or None.
        architecture: transformers ``model_type``.
        num_layers: encoder blocks (L); outputs are hidden_states.0 … hidden_states.L.
        hidden_size: width of the residual stream.
        max_position_embeddings: position table size from config.json.
        vocab_size: vocabulary size from config.json.
        pad_token_id: the tokenizer's pad id.
        padding_side: the tokenizer's padding side.
        pooling: ``mean``, ``cls`` or ``max``.
        normalize: whether the sentence embedding is L2-normalised.
    """

    source: str
    recipe: str | None
    architecture: str
    num_layers: int
    hidden_size: int
    max_position_embeddings: int | None
    vocab_size: int | None
    pad_token_id: int
    padding_side: str
    pooling: str
    normalize: bool


def build(facts: ModelFacts, *, tokenizer_files: list[str], input_names: list[str],
          output_names: list[str], precisions: dict[str, dict], validation: dict,
          versions: dict, calibration: dict | None = None, backend: str | None = None) -> dict[str, Any]:
    """The padlens.json document (key names are a contract with the inspector)."""
    doc: dict[str, Any] = {"format": FORMAT, "padlens_version": __version__}
    doc.update(
        source=facts.source, recipe=facts.recipe, architecture=facts.architecture,
        num_layers=facts.num_layers, hidden_size=facts.hidden_size,
        max_position_embeddings=facts.max_position_embeddings, vocab_size=facts.vocab_size,
        pad_token_id=facts.pad_token_id, pad_token_type_id=0, padding_side=facts.padding_side,
        pooling=facts.pooling, normalize=facts.normalize,
        tokenizer_files=tokenizer_files, input_names=input_names, output_names=output_names,
        precisions=precisions, validation=validation, versions=versions,
    )
    if backend is not None:  # which export backend wrote the fp32 file: optimum or torch
        doc["backend"] = backend
    if calibration is not None:
        doc["calibration"] = calibration
    return doc


def write(folder: Path, doc: dict[str, Any]) -> Path:
    """Write ``doc`` as folder/padlens.json (NaN and infinities become null)."""
    path = folder / MANIFEST
    path.write_text(json.dumps(_finite(doc), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return path


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
