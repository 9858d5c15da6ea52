"""`padlens study`: the forum thread's two questions answered on real models, in words and numbers.

What do the pad positions hold (``inspect``'s pad geometry, ``probe``'s probes with controls),
and what do pads do to k-means clusters of sentence embeddings (``cluster``: scikit-learn)?
``corpus`` reads the topic corpus, ``embeddings`` pools one model's token states every way the
study compares, ``run`` composes them into ``study()``, ``words`` turns the numbers into
sentences, ``render`` writes study.md and study.html. Names are imported lazily:
``from padlens.inspector.study import study, StudyResult``.

May import: inputs/, runtime/, stats/, report/, probe/ and the inspect step. Never ray/ or audit/.
"""
from __future__ import annotations

import importlib

_EXPORTS = {"study": "run", "study_with": "run", "StudyOptions": "results", "StudyResult": "results",
            "ModelStudy": "results", "ClusterRow": "results", "LayerGeometry": "results",
            "BatchOrder": "results", "TopicCorpus": "corpus", "read_corpus": "corpus"}
__all__ = [*_EXPORTS]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
