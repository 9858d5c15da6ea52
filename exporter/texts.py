"""Texts the exporter needs: validation sentences, calibration texts and held-out texts."""
from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path

from padlens.errors import BadInput

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

#: Used only when the sample corpus shipped with padlens.inspector cannot be read.
_FALLBACK = (
    "The cat slept on the warm windowsill all afternoon.",
    "Stock markets fell sharply after the central bank raised interest rates.",
    "She finished the marathon in just under four hours.",
    "How do I reset my password if I no longer have access to my email?",
    "The new bridge will connect the two halves of the city by next summer.",
    "Photosynthesis converts light energy into chemical energy stored in sugar.",
    "Our flight was delayed because of a storm over the Atlantic.",
    "He learned to play the violin when he was seven years old.",
    "The recipe calls for two cups of flour and a pinch of salt.",
    "Researchers discovered a new species of frog in the rainforest.",
    "Please send the quarterly report to the finance team by Friday.",
    "The museum reopened after a two-year renovation.",
    "A good night's sleep improves memory and concentration.",
    "The striker scored twice in the final ten minutes of the match.",
    "Electric cars are becoming cheaper to buy and to run.",
    "The library lends laptops to students during exam season.",
    "I can't find my keys anywhere.",
    "The volcano erupted, sending ash high into the atmosphere.",
    "Customers complained that the app crashes when they upload photos.",
    "Fresh bread smells wonderful early in the morning.",
    "The telescope captured images of a galaxy billions of light years away.",
    "The senator announced she would not run for re-election.",
    "Heavy rain caused flooding in several low-lying neighborhoods.",
    "The orchestra performed Beethoven's ninth symphony to a full house.",
    "Vaccines train the immune system to recognize a virus.",
    "Our team shipped the new feature two weeks ahead of schedule.",
    "Where is the nearest train station?",
    "The company reported record profits for the third quarter.",
    "Honeybees communicate the location of flowers through a dance.",
    "The court ruled that the contract was invalid.",
    "Temperatures are expected to drop below freezing tonight.",
    "Regular exercise lowers the risk of heart disease.",
    "The startup raised fifty million dollars in its latest funding round.",
    "Astronauts aboard the space station conducted a six-hour spacewalk.",
    "Traffic was backed up for miles after the accident on the highway.",
    "Thank you for your patience while we investigate the issue.",
    "Scientists warn that coral reefs are bleaching at an alarming rate.",
    "The film won three awards at the festival, including best director.",
    "Wind turbines now supply a large share of the country's electricity.",
    "Negotiations between the union and management broke down on Tuesday.",
    "I would like to book a table for four at seven o'clock.",
    "A balanced diet includes fruits, vegetables, and whole grains.",
    "The airline lost my luggage on the way to Tokyo.",
    "Mountain climbers must acclimatize before attempting the summit.",
    "Owls hunt mostly at night, using their keen hearing.",
    "The algorithm sorts a million records in under a second.",
)

#: At most this many texts calibrate int8-static, and this many are held out to score it.
MAX_CALIBRATION = 96
MAX_USER_CALIBRATION = 1000
MAX_HELDOUT = 48


def read_texts(path: str | Path) -> list[str]:
    """Non-blank lines of a UTF-8 text file; BadInput when it is missing, unreadable or empty."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"text file {path} does not exist")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read {path}: {exc}") from None
    texts = [line.strip() for line in lines if line.strip()]
    if not texts:
        raise BadInput(f"text file {path} is empty")
    return texts


def sample_corpus() -> list[str]:
    """padlens.inspector's sample corpus; the corpus file itself, or a built-in list, as fallbacks."""
    try:
        from padlens.inspector.texts import default_corpus

        texts = list(default_corpus())
    except (ImportError, AttributeError, OSError):
        texts = _corpus_file()
    texts = [t.strip() for t in texts if t and t.strip()]
    if len(texts) < 8:
        log.info("sample corpus not available; using the exporter's built-in texts")
        texts = list(_FALLBACK)
    return texts


def _corpus_file() -> list[str]:
    try:
        data = resources.files("padlens.inspector").joinpath("data", "corpus.txt")
        return data.read_text(encoding="utf-8").splitlines()
    except (ImportError, OSError):
        return []


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
