"""The study's topic corpus: short texts with a topic label each (bundled: ``data/topics.txt``)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from padlens.errors import BadInput

log = logging.getLogger(__name__)

BUNDLED = "topics.txt"
#: the study needs at least this many topics (k-means with k = 1 says nothing) and texts per topic
MIN_TOPICS, MIN_PER_TOPIC = 2, 2


@dataclass(frozen=True)
class TopicCorpus:
    """Texts and their topics, in file order.

    Attributes:
        name: the file's name (``topics.txt`` for the bundled corpus).
        texts: the texts.
        topics: the topic of each text.
        names: the distinct topics, in the order they first appear.
    """

    name: str
    texts: tuple[str, ...]
    topics: tuple[str, ...]
    names: tuple[str, ...]

    @property
    def labels(self) -> list[int]:
        """The topic of each text as an index into ``names``."""
        index = {name: i for i, name in enumerate(self.names)}
        return [index[t] for t in self.topics]

    def counts(self) -> dict[str, int]:
        """Texts per topic."""
        return {name: self.topics.count(name) for name in self.names}


def parse_corpus(text: str, name: str) -> TopicCorpus:
    """``TOPIC<TAB>TEXT`` lines (``#`` comments and blank lines skipped) as a TopicCorpus.

    BadInput for a line without a tab or with an empty side, fewer than MIN_TOPICS topics, or a
    topic with fewer than MIN_PER_TOPIC texts.
    """
    texts, topics = [], []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        topic, tab, body = line.partition("\t")
        if not tab or not topic.strip() or not body.strip():
            raise BadInput(f"corpus {name} line {number}: expected TOPIC<TAB>TEXT, got {line[:60]!r}")
        topics.append(topic.strip())
        texts.append(" ".join(body.split()))
    names = tuple(dict.fromkeys(topics))
    if len(names) < MIN_TOPICS:
        raise BadInput(f"corpus {name} has {len(names)} topic(s); clustering needs at least {MIN_TOPICS}")
    found = TopicCorpus(name, tuple(texts), tuple(topics), names)
    small = [t for t, n in found.counts().items() if n < MIN_PER_TOPIC]
    if small:
        raise BadInput(f"corpus {name}: topic(s) {', '.join(small[:3])} have fewer than {MIN_PER_TOPIC} texts")
    return found


def read_corpus(path: str | Path | None = None) -> TopicCorpus:
    """The corpus at ``path`` (``TOPIC<TAB>TEXT`` lines, UTF-8), or the bundled one when None."""
    if path is None:
        return parse_corpus((files("padlens.inspector") / "data" / BUNDLED).read_text(encoding="utf-8"), BUNDLED)
    p = Path(path)
    if not p.is_file():
        raise BadInput(f"corpus {p} is not a file")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"corpus {p} cannot be read as UTF-8 text: {exc}") from None
    return parse_corpus(text, p.name)
