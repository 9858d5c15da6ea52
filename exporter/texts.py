"""Texts the exporter needs: validation sentences, calibration texts and held-out texts."""
from __future__ import annotations

import logging

from padlens.inspector.inputs.texts import read_texts  # noqa: F401  (the one text reader; re-exported)

log = logging.getLogger(__name__)

#: The padded batch every exposed layer is checked on: lengths differ so every row but
#: the longest has pads.
VALIDATION_TEXTS = (
    "Padding should not change what a sentence means.",
    "Cats sleep a lot.",
    "The committee postponed its decision on the new budget until the spring meeting, "
    "citing uncertainty about tax revenue.",
    "Hi",
    "Where is the nearest train station?",
    "Researchers found that the model's pad tokens collapse onto one direction.",
)

#: At most this many texts calibrate int8-static, and this many are held out to score it.
MAX_CALIBRATION = 96
MAX_USER_CALIBRATION = 1000
MAX_HELDOUT = 48


def sample_corpus() -> list[str]:
    """padlens.inspector's sample corpus (shipped with the package)."""
    from padlens.inspector.inputs.texts import default_corpus

    return default_corpus()


def calibration_split(calibration: list[str] | None) -> tuple[list[str], list[str]]:
    """(calibration texts, held-out texts) with no text in both.

    User texts calibrate; the sample corpus minus those texts is held out. Without user
    texts the sample corpus is split: every fourth text is held out, the rest calibrate.
    """
    corpus = list(dict.fromkeys(sample_corpus()))
    if calibration:
        used = set(calibration)
        heldout = [t for t in corpus if t not in used]
        if len(calibration) > MAX_USER_CALIBRATION:
            log.info("calibrating on the first %d of %d texts", MAX_USER_CALIBRATION, len(calibration))
        return list(calibration)[:MAX_USER_CALIBRATION], heldout[:MAX_HELDOUT]
    heldout = corpus[3::4]
    train = [t for i, t in enumerate(corpus) if i % 4 != 3]
    return train[:MAX_CALIBRATION], heldout[:MAX_HELDOUT]
