"""Verify a quantized file against its source: the audit's invariance checks, and pooled cosine on held-out texts."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)

#: the audit checks a quantized file must pass (inspector/audit/registry.py)
CHECKS = ("padding_invariance", "batch_neighbour_invariance")
#: texts per batch when embedding the held-out texts
BATCH = 16


@dataclass
class Verification:
    """How the quantized file compares with its source on held-out texts.

    Attributes:
        texts: held-out texts verified on (none calibrated the file).
        checks: the audit's results for ``CHECKS`` on the quantized file (``CheckResult.to_dict``).
        invariant: every one of ``checks`` passed.
        pooled_cosine_mean: mean cosine of pooled embeddings, quantized vs source.
        pooled_cosine_worst: the smallest of those cosines.
        floor_mean: the mean cosine the scheme must reach.
        floor_worst: the worst cosine the scheme must reach.
        pooling: how the embeddings were pooled (the model's own, as ``padlens embed`` pools).
        passed: invariant, and both cosines at or above their floors.
    """

    texts: int
    checks: list[dict] = field(default_factory=list)
    invariant: bool = False
    pooled_cosine_mean: float = float("nan")
    pooled_cosine_worst: float = float("nan")
    floor_mean: float = 0.0
    floor_worst: float = 0.0
    pooling: str = ""
    passed: bool = False

    def failures(self) -> list[str]:
        """Why it did not pass, in words (empty when it passed)."""
        out = [f"{c['name']} failed ({c['detail']})" for c in self.checks if not c["passed"]]
        if not self.pooled_cosine_mean >= self.floor_mean:
            out.append(f"pooled cosine mean {self.pooled_cosine_mean:.4f} < floor {self.floor_mean}")
        if not self.pooled_cosine_worst >= self.floor_worst:
            out.append(f"pooled cosine worst {self.pooled_cosine_worst:.4f} < floor {self.floor_worst}")
        return out


def audit_checks(ref, texts, threads: int | None) -> list[dict]:
    """The audit's ``CHECKS`` on the model ``ref`` over ``texts`` (its own padding side and width)."""
    from padlens.inspector.audit import check_model

    return [result.to_dict() for result in check_model(ref, texts, CHECKS, threads)]


def pooled(ref, texts, threads: int | None, config=None) -> tuple[np.ndarray, object]:
    """Sentence embeddings of ``texts`` as ``padlens embed`` makes them, and how they were pooled:
    ``config`` (a PoolingConfig), else the model's own pooling (its folder's, or the default)."""
    from padlens.inspector.embed import pooling_for, sorted_batches
    from padlens.inspector.inputs.lengths import choose_max_length
    from padlens.inspector.runtime.embed_model import EmbedModel
    from padlens.inspector.runtime.session import SessionOptions

    runner = EmbedModel(ref, SessionOptions(threads=threads), graph_pooling=True)
    config = config or pooling_for(ref, runner, "auto", None)
    own = next((int(c) for c in (config.max_length, runner.tokenizer.model_max_length) if c), 512)
    window = runner.tokenizer.encode(list(texts), max_length=choose_max_length(None, [runner], default=own),
                                     padding="longest", side="right")
    out = None
    for rows, batch in sorted_batches(window, BATCH):
        emb = runner.embed(batch, config.mode, config.normalize)
        out = np.zeros((len(texts), emb.shape[1])) if out is None else out
        out[rows] = emb
    return out, config


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two (n, d) arrays, in float64."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(-1) / np.maximum(np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1), 1e-300)


def verify(source, quantized, texts, floors: tuple[float, float], threads: int | None = None) -> Verification:
    """Audit ``quantized`` (a ModelRef) for invariance and compare its pooled embeddings with
    ``source``'s on ``texts``; ``floors``: (mean, worst) pooled cosine it must reach."""
    checks = audit_checks(quantized, texts, threads)
    base, config = pooled(source, texts, threads)
    new, _ = pooled(quantized, texts, threads, config)  # the source's pooling: the copy sits elsewhere
    cos = cosines(base, new)
    result = Verification(len(texts), checks, all(c["passed"] for c in checks), float(cos.mean()),
                          float(cos.min()), floors[0], floors[1], config.mode)
    result.passed = not result.failures()
    log.info("verified on %d held-out texts: cosine mean %.4f worst %.4f, invariant %s",
             len(texts), result.pooled_cosine_mean, result.pooled_cosine_worst, result.invariant)
    return result
