"""The steps of an inspection, public so that in-process ``inspect`` and the Ray actors run the same code.

``open_encoders`` (one Encoder per model × provider), ``plan_batches`` (one length and padding side
for every run, memory checked), ``new_run`` (fresh accumulators), ``tokenizer_groups`` (runs that
share batches), ``measure`` (one batch into a run's accumulators) and ``finish`` (a run's
accumulators into its RunResult). Accumulators merge exactly (``padlens.inspector.stats.accumulators``),
so a run measured in parts by several processes finishes like one measured here.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from padlens.errors import ModelLoadError, Param
from padlens.inspector.inputs import lengths
from padlens.inspector.inputs.resolve import ModelRef
from padlens.inspector.inputs.tokenize import Batch
from padlens.inspector.results import Fault, LayerMetrics, PoolingDamage, RunResult
from padlens.inspector.runtime.encoder import Encoder, Forward
from padlens.inspector.runtime.memory import check_memory
from padlens.inspector.stats import accumulators as acc
from padlens.inspector.stats import ingraph, measures
from padlens.inspector.stats import notes as words

log = logging.getLogger(__name__)

DEFAULT_MAX_LENGTH = lengths.DEFAULT_MAX_LENGTH
VERIFY_ROWS = 4  # rows of the first batch re-run on the unmodified model to check exposure
MAX_FAULTS = 10  # NaN/Inf failures named per run (all are counted in LayerMetrics.failed)
SIMILARITY_TEXTS = 12  # texts in the report's masked vs unmasked similarity matrices


@dataclass
class Run:
    """One run's accumulators while batches stream through (what ``measure`` fills and ``finish`` reads).

    Attributes:
        ref, provider: the model file and the provider as asked.
        encoder: the opened Encoder (on a Ray driver: a stand-in with its graph and description).
        pads, attention, texts: the mergeable accumulators, one per layer (attention: None at layer 0).
        timings: seconds: load, verify, forward, metrics.
        warnings: notes for the reader.
        exposure: max |Δ| of the exposure check on the first batch.
        faults: the first MAX_FAULTS NaN/Inf (layer, text) pairs.
        n_texts, n_tokens, n_pad_tokens: counts.
        pending: the last batch's accumulation while it runs beside the next batch (``measure(defer=True)``);
            ``settle`` waits for it.
    """

    ref: ModelRef
    provider: str
    encoder: Encoder
    pads: list[acc.PadStats]
    attention: list[acc.AttentionStats | None]
    texts: acc.TextStats
    timings: dict[str, float]
    warnings: list[str]
    exposure: float | None = None
    faults: list[Fault] = field(default_factory=list)
    n_texts: int = 0
    n_tokens: int = 0
    n_pad_tokens: int = 0
    pending: Future | None = field(default=None, repr=False, compare=False)


def choose_max_length(asked: int | None, encoders: Sequence[Encoder]) -> int:
    """``asked`` when every encoder has that many positions (else BadInput); without a
    value, DEFAULT_MAX_LENGTH or the fewest position embeddings among the encoders
    (``padlens.inspector.inputs.lengths.choose_max_length``, the one rule)."""
    return lengths.choose_max_length(asked, encoders, DEFAULT_MAX_LENGTH)


def resolve_side(asked: str, encoders: Sequence[Encoder]) -> tuple[str, str]:
    """(side, source): one padding side for every run (they share batches); ``auto`` takes
    each model's choice (``Encoder.padding_side``), the first model's when they disagree."""
    chosen = [enc.padding_side(asked) for enc in encoders] or [(asked if asked != "auto" else "right", "default")]
    side, source = chosen[0]
    if len({c[0] for c in chosen}) > 1:
        log.warning("the models prefer different padding sides; padding on the %s for all (pass %s to choose)",
                    side, Param("padding_side"))
    log.info("padding side: %s (%s)", side, source)
    return side, source


def open_encoders(refs: list[ModelRef], providers: Sequence[str], options: dict) -> list[tuple]:
    """(ref, provider, encoder, seconds to open) for every run, in the order asked; the pad
    statistics are computed in the graph unless ``options`` says ``stats=False``."""
    from padlens.inspector.runtime.session import SessionOptions

    options = {"stats": True, **options}
    session = SessionOptions(allow_fallback=options.pop("allow_fallback", False), threads=options.pop("threads", None))
    runs = list(itertools.product(refs, providers))
    opened = []
    for ref, provider in runs:
        start = time.perf_counter()
        # the exposure check runs at open, its unmodified session released before the instrumented one exists
        enc = Encoder.open(ref, session.replace(providers=(provider,)), keep_model=False, check_exposure=True,
                           **options)
        opened.append((ref, provider, enc, time.perf_counter() - start))
    return opened


def empty_run(ref: ModelRef, provider: str, encoder, layers: int, max_length: int, load_s: float = 0.0,
              warnings: Sequence[str] = ()) -> Run:
    """A Run with empty accumulators for ``layers`` hidden states (embedding output included)."""
    return Run(ref, provider, encoder, [acc.PadStats(max_positions=max_length) for _ in range(layers)],
               [None] + [acc.AttentionStats() for _ in range(layers - 1)], acc.TextStats(),
               {"load": load_s, "verify": 0.0, "forward": 0.0, "metrics": 0.0}, list(warnings))


def new_run(ref: ModelRef, provider: str, enc: Encoder, load_s: float, max_length: int,
            side: str | None = None, padding: str = "max_length") -> Run:
    """A Run of an opened encoder: empty accumulators, the session's warnings, the model's notes, and
    a line where padlens pads (``side``, ``padding`` to ``max_length``) other than the folder ships."""
    shipped = enc.tokenizer.shipped.difference(side, max_length, padding) if side else None
    return empty_run(ref, provider, enc, enc.num_layers + 1, max_length, load_s,
                     list(enc.session.warnings) + enc.notes + ([shipped] if shipped else []))


def measure(run: Run, batch: Batch, first: bool, texts: Sequence[str] = (), defer: bool = False) -> None:
    """Measure ``batch`` into ``run``'s accumulators; ``first``: also check the exposure on its first rows.

    ``defer=True``: the in-graph sums are added to the accumulators on padlens' metrics thread while the
    caller goes on to the next batch (ONNX Runtime runs it without the GIL, so the numpy work of one
    batch overlaps the next batch's run); ``settle(run)`` waits for it, and every later ``measure``
    and ``finish`` settle first, so the batches are added in order and the result is the same."""
    start = time.perf_counter()
    sums = _run_stats(run, batch)
    forward = run.encoder.run(batch) if sums is None or not sums.valid else None
    run.timings["forward"] += time.perf_counter() - start
    settle(run)  # the previous batch's sums are in before this batch's (and its errors raised here)
    if first:
        start = time.perf_counter()
        run.exposure = run.encoder.verify_exposure(_head(batch, VERIFY_ROWS))
        run.timings["verify"] += time.perf_counter() - start
    if forward is None and defer:
        run.pending = _metrics_thread().submit(_timed, run, _accumulate_sums, run, sums, batch.attention_mask)
    elif forward is None:
        _timed(run, _accumulate_sums, run, sums, batch.attention_mask)
    else:  # the attention maps stay in the graph when it has the statistics: their masses come from there
        _timed(run, _accumulate, run, forward, batch.attention_mask, sums.attention if sums is not None else [])
        _record_faults(run, forward, texts)
    run.n_texts += batch.shape[0]
    run.n_tokens += int(batch.attention_mask.sum())
    run.n_pad_tokens += int((batch.attention_mask == 0).sum())


def settle(run: Run) -> None:
    """Wait for ``run``'s deferred accumulation (``measure(defer=True)``), raising what it raised."""
    pending, run.pending = run.pending, None
    if pending is not None:
        pending.result()


@functools.cache
def _metrics_thread() -> ThreadPoolExecutor:
    """One thread, made on first use (by the caller's thread): batches are added in the order given."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="padlens-metrics")


def _timed(run: Run, add: Callable, *args) -> None:
    """``add(*args)``, its seconds counted in ``run.timings["metrics"]``."""
    start = time.perf_counter()
    add(*args)
    run.timings["metrics"] += time.perf_counter() - start


def _head(batch: Batch, n: int) -> Batch:
    """The first ``n`` rows of ``batch`` (exposure is checked on a few rows, not a whole batch)."""
    if batch.shape[0] <= n:
        return batch
    rows = {name: getattr(batch, name)[:n] for name in ("input_ids", "attention_mask", "token_type_ids",
                                                        "position_ids", "special_tokens_mask", "lengths")}
    return dataclasses.replace(batch, **rows)


def _record_faults(run: Run, forward: Forward, texts: Sequence[str]) -> None:
    """Name the first MAX_FAULTS (layer, text) pairs whose states hold NaN or Inf."""
    if len(run.faults) >= MAX_FAULTS:
        return  # the accumulators still count them; no more scans once the list is full
    for layer, h in enumerate(forward.hidden):
        bad = np.flatnonzero(~np.isfinite(h).all(axis=(1, 2)))
        for row in bad[: max(0, MAX_FAULTS - len(run.faults))]:
            text = texts[row] if row < len(texts) else ""
            run.faults.append(Fault(layer, str(run.encoder.graph.layers.hidden[layer]),
                                    run.n_texts + int(row), text))


def _run_stats(run: Run, batch: Batch) -> ingraph.BatchSums | None:
    """The batch's in-graph statistics (not ``valid`` when a layer has NaN/Inf/zero states: the numpy
    path measures its states, faults are named from them); None when the numpy path must measure
    it all: no in-graph statistics, or a failed run (the numpy path then runs for good, and says
    why in ``encoder.stats``)."""
    enc = run.encoder
    if not enc.uses_stats:
        return None
    try:
        return enc.run_stats(batch)
    except ModelLoadError as exc:
        enc.drop_stats(f"the statistics graph failed to run ({exc})")
        log.warning("%s: pad statistics in numpy from now on: %s", enc.label, enc.stats_note)
        return None


def _accumulate_sums(run: Run, sums: ingraph.BatchSums, mask: np.ndarray) -> None:
    attention = run.attention if _attention_fits(run, len(sums.attention), len(sums.layers)) else []
    ingraph.accumulate(sums, mask, run.pads, attention, run.texts)


def _attention_fits(run: Run, n_attention: int, n_hidden: int) -> bool:
    """One attention map per block; otherwise the masses are left out, with a warning."""
    if n_attention and n_attention != n_hidden - 1:
        note = f"{n_attention} attention tensors for {n_hidden - 1} blocks: attention masses left out"
        if note not in run.warnings:
            run.warnings.append(note)
        return False
    return bool(n_attention)


def _accumulate(run: Run, forward: Forward, mask: np.ndarray, masses: Sequence[np.ndarray] = ()) -> None:
    """Add ``forward``'s states and attention maps to ``run``; ``masses``: the attention masses the
    graph measured, for maps it did not return."""
    for stats, h in zip(run.pads, forward.hidden):
        stats.add(h, mask)
    if _attention_fits(run, len(forward.attention), len(forward.hidden)):
        for stats, probs in zip(run.attention[1:], forward.attention):
            stats.add(probs, mask)
    elif not forward.attention and _attention_fits(run, len(masses), len(forward.hidden)):
        acc.add_attention_masses(run.attention[1:1 + len(masses)], list(masses), mask)
    run.texts.add(forward.hidden[-1], mask)


def _layer_metrics(index: int, tensor: str, pads: acc.PadStats, attn: acc.AttentionStats | None) -> LayerMetrics:
    layer = LayerMetrics(index=index, tensor=tensor, **pads.means(),
                         pad_anchor_cos_by_offset=pads.offset_curve(), sequences=pads.sequences,
                         failed=pads.failed, without_pads=pads.without_pads, single_pad=pads.single_pad,
                         pads=pads.pads, zero_pads=pads.zero_pads,
                         pad_position_mean=pads.position_means())
    if attn is not None and attn.sequences:
        for name, value in attn.means().items():
            setattr(layer, f"attn_{name}", value)
    return layer


def _run_warnings(run: Run, layers: list[LayerMetrics]) -> list[str]:
    notes = list(run.warnings) + words.pad_notes(run.pads) + words.attention_notes(run.attention)  # each said once
    for fault in run.faults:
        notes.append(f"layer {fault.layer} ({fault.tensor}): NaN/Inf in the states of text "
                     f"{fault.text_index + 1} {_quote(fault.text)}")
    if run.texts.texts > run.texts.kept + run.texts.failed:
        notes.append(f"pad_content_rsa, k-NN overlap and similarity Spearman use the first "
                     f"{run.texts.kept} of {run.texts.texts} texts")
    return notes


def _quote(text: str, width: int = 60) -> str:
    return repr(text if len(text) <= width else text[: width - 1] + "…")


def finish(run: Run) -> RunResult:
    """The RunResult of a run's accumulators: layer metrics, pooling damage, warnings, similarity matrices."""
    settle(run)
    tensors = list(run.encoder.graph.layers.hidden)
    layers = [_layer_metrics(i, str(tensors[i]), pads, attn)
              for i, (pads, attn) in enumerate(zip(run.pads, run.attention))]
    describe = run.encoder.describe()
    pooling, rsa = run.texts.pooling_and_rsa()
    return RunResult(
        model=str(run.ref.path), precision=run.ref.precision, provider=run.provider, label=run.ref.label,
        layers=layers, pooling=PoolingDamage(**pooling), pad_content_rsa=rsa,
        exposure_max_abs_diff=run.exposure, n_texts=run.n_texts, n_tokens=run.n_tokens,
        n_pad_tokens=run.n_pad_tokens, warnings=_run_warnings(run, layers), faults=list(run.faults),
        timings={k: round(v, 4) for k, v in run.timings.items()}, encoder=describe,
        similarity=_similarity(run.texts))


def _similarity(texts: acc.TextStats, n: int = SIMILARITY_TEXTS) -> dict | None:
    """Masked and unmasked pooled cosine matrices of the first ``n`` kept texts."""
    if texts.kept < 1:
        return None
    return {key: measures.cosine_matrix(texts.stacked(key)[:n]) for key in ("masked", "unmasked")}


def tokenizer_groups(runs: list[Run]) -> dict[str, list[Run]]:
    """Runs that share a tokenizer share its batches: tokenize once per tokenizer."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(str(run.ref.tokenizer_path), []).append(run)
    return groups


def plan_batches(asked_length: int | None, asked_side: str, encoders: Sequence[Encoder],
                 batch_size: int) -> tuple[int, str, str]:
    """(length, side, side source) every run shares, checked against each model's positions and the memory."""
    length = choose_max_length(asked_length, encoders)
    side, source = resolve_side(asked_side, encoders)
    check_memory(encoders, int(batch_size), length)
    return length, side, source


def measure_chunk(runs: list[Run], chunk: Sequence[str], length: int, padding: str, side: str, first: bool,
                  before: Callable[[Run], None] | None = None, defer: bool = False) -> float:
    """Tokenize ``chunk`` once per tokenizer and measure it into every run (``before(run)`` first, when
    given, on the run's settled accumulators); ``first``: the chunk holds the first texts (the exposure
    check); ``defer``: as ``measure``'s. Returns seconds tokenizing."""
    seconds = 0.0
    for group in tokenizer_groups(runs).values():
        start = time.perf_counter()
        batch = group[0].encoder.tokenizer.encode(list(chunk), max_length=length, padding=padding, side=side)
        seconds += time.perf_counter() - start
        for run in group:
            if before is not None:
                settle(run)
                before(run)
            measure(run, batch, first=first, texts=chunk, defer=defer)
    return seconds
