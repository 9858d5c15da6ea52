"""Calibration and held-out texts (never the same text in both), and the unpadded feeds calibration runs on."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from padlens.errors import BadInput

#: texts calibrating int8-static (the corpus' share, or the first of a user's file)
MAX_CALIBRATION = 96
MAX_USER_CALIBRATION = 1000
#: held-out texts the new file is verified on
HELDOUT = 100
#: the longest calibration text, in tokens (longer ones are truncated)
CALIBRATION_LENGTH = 128


@dataclass(frozen=True)
class TextSplit:
    """Which texts calibrate and which verify.

    Attributes:
        calibration: texts calibrating int8-static, one unpadded text per run.
        heldout: texts the quantized file is verified on; none is a calibration text.
        source: ``user`` (``--calibration-texts``) or ``sample corpus``.
        sha256: hash of the calibration texts, one per line, UTF-8.
    """

    calibration: tuple[str, ...]
    heldout: tuple[str, ...]
    source: str
    sha256: str


def texts_hash(texts) -> str:
    """sha256 of ``texts`` joined by newlines (UTF-8)."""
    return hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()


def split_texts(calibration_file: str | Path | None = None, heldout: int = HELDOUT) -> TextSplit:
    """Calibration texts (the user's file, else 3 of every 4 corpus texts) and held-out texts
    (every 4th corpus text that is not a calibration text, at most ``heldout``)."""
    from padlens.inspector.inputs.texts import default_corpus, read_texts

    corpus = list(dict.fromkeys(default_corpus()))
    if calibration_file is not None:
        calibration = list(dict.fromkeys(read_texts(None, calibration_file, MAX_USER_CALIBRATION)))
        source = "user"
    else:
        calibration = [t for i, t in enumerate(corpus) if i % 4 != 3][:MAX_CALIBRATION]
        source = "sample corpus"
    used = set(calibration)
    held = [t for t in corpus[3::4] if t not in used]
    held += [t for t in corpus if t not in used and t not in held] if len(held) < heldout else []
    if not held:
        raise BadInput("no held-out text is left to verify on: the calibration texts hold the whole sample corpus")
    return TextSplit(tuple(calibration), tuple(held[:heldout]), source, texts_hash(calibration))


def calibration_feeds(ref, texts, max_positions: int | None = None) -> list[dict[str, np.ndarray]]:
    """One feed per text, unpadded: ranges come from real tokens only (graph inputs by role);
    each text truncated to CALIBRATION_LENGTH tokens, or the model's ``max_positions`` when fewer."""
    import onnx

    from padlens.inspector.inputs.tokenize import load_tokenizer
    from padlens.inspector.model.loader import recognise_inputs
    from padlens.inspector.runtime.feeds import make_feeds

    model = onnx.load(str(ref.path), load_external_data=False)  # the graph only: weights stay on disk
    inputs = recognise_inputs(Path(ref.path), model.graph)
    del model
    tokenizer = load_tokenizer(ref.tokenizer_path)
    length = min(CALIBRATION_LENGTH, max_positions or CALIBRATION_LENGTH)
    return [make_feeds(inputs, tokenizer.encode([t], max_length=length, padding="longest"))
            for t in texts]
