"""inspect(): run encoders side by side on the same padded batches and measure their pads."""
from __future__ import annotations

import dataclasses
import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from padlens.errors import BadInput, ModelLoadError
from padlens.inspector.inputs import lengths
from padlens.inspector.inputs.options import check_options
from padlens.inspector.inputs.resolve import ModelRef, resolve_models
from padlens.inspector.inputs.texts import batches_of, default_corpus, iter_texts, read_texts
from padlens.inspector.inputs.tokenize import Batch
from padlens.inspector.ray import check_engine
from padlens.inspector.report.jsonable import NOT_IN_JSON, to_jsonable
from padlens.inspector.runtime.encoder import Encoder, EncoderInfo, Forward
from padlens.inspector.runtime.memory import check_memory
from padlens.inspector.stats import ingraph
from padlens.inspector.stats import metrics as M

log = logging.getLogger(__name__)

DEFAULT_MAX_LENGTH = lengths.DEFAULT_MAX_LENGTH
VERIFY_ROWS = 4  # rows of the first batch re-run on the unmodified model to check exposure
MAX_FAULTS = 10  # NaN/Inf failures named per run (all are counted in LayerMetrics.failed)
SIMILARITY_TEXTS = 12  # texts in the report's masked vs unmasked similarity matrices
ATTENTION_FIELDS = tuple(f"attn_{name}" for name in M.ATTENTION_METRICS)
STATS = ("graph", "numpy")  # where the pad statistics are computed (``inspect(stats=...)``)


# ---------------------------------------------------------------- results

@dataclass
class LayerMetrics:
    """Pad metrics of one layer of one run (means over sequences, DESIGN.md definitions).

    Attributes:
        index: 0 is the embedding output, 1..L the encoder blocks' outputs.
        tensor: the graph tensor the states were read from.
        pad_pad_cos: mean over pairs of distinct pads of cos(h_p, h_q).
        pad_real_cos: mean over (pad, real) pairs of cos(h_p, h_r).
        pad_norm: mean ‖h‖ over pads.
        real_norm: mean ‖h‖ over real positions (special tokens included).
        pad_anchor_cos: mean cos between each pad and the pad next to the content (the
            anchor); 1 means pad states do not depend on position.
        pad_step: mean ‖h_p − h_{p+1}‖ over neighbouring pads; 0 means no change along positions.
        pad_anchor_cos_by_offset: cos(h_p, h_anchor) by offset |p − anchor| bucket ("1", "2",
            "3-4", "5-8", …), pooled over every pad at that offset.
        attn_pad_to_cls, attn_pad_to_sep, attn_pad_to_content, attn_pad_to_pad: attention mass
            pad queries put on [CLS] (first real), [SEP] (last real), the other real tokens and
            pads, averaged over heads; None where no attention probabilities were located
            (layer 0 never has them).
        attn_real_to_pad: mass real queries put on pad keys (≈ 0 when the mask works).
        sequences: sequences measured; failed: those with NaN/Inf/zero states, left out.
        without_pads: sequences with no pad (left out of pad metrics); single_pad: sequences
            with one pad (left out of pad_pad_cos).
        pad_position_mean: [max_length, H] mean pad state per absolute position (NaN rows
            where no pad was seen), for heatmaps; not written to JSON (``pad_position_norm`` is).
    """

    index: int
    tensor: str
    pad_pad_cos: float
    pad_real_cos: float
    pad_norm: float
    real_norm: float
    pad_anchor_cos: float
    pad_step: float
    pad_anchor_cos_by_offset: dict[str, float]
    attn_pad_to_cls: float | None = None
    attn_pad_to_sep: float | None = None
    attn_pad_to_content: float | None = None
    attn_pad_to_pad: float | None = None
    attn_real_to_pad: float | None = None
    sequences: int = 0
    failed: int = 0
    without_pads: int = 0
    single_pad: int = 0
    pad_position_mean: np.ndarray | None = field(default=None, repr=False, metadata=NOT_IN_JSON)

    @property
    def pad_position_norm(self) -> list[float]:
        """‖mean pad state‖ per absolute position (NaN where no pad was seen)."""
        if self.pad_position_mean is None:
            return []
        return [float(v) for v in np.linalg.norm(self.pad_position_mean, axis=1)]

    def to_dict(self) -> dict:
        """The JSON fields, then ``pad_position_norm``."""
        return to_jsonable({**to_jsonable(self), "pad_position_norm": self.pad_position_norm})


@dataclass
class PoolingDamage:
    """What mean pooling over pads does to the last layer's sentence embeddings.

    Attributes:
        masked_unmasked_cos: mean over texts of cos(masked mean, unmasked mean);
            ``_min`` and ``_max`` over texts.
        cls_masked_cos: mean over texts of cos(first state, masked mean).
        texts_compared: texts in the cross-text comparisons below.
        knn_k: neighbours compared (0 with fewer than two texts).
        knn_overlap: mean overlap of each text's k nearest neighbours, masked vs unmasked.
        similarity_spearman: Spearman between the masked and unmasked similarity matrices.
        similarity_mean_masked, similarity_mean_unmasked: mean off-diagonal similarity.
    """

    masked_unmasked_cos: float
    masked_unmasked_cos_min: float
    masked_unmasked_cos_max: float
    cls_masked_cos: float
    texts_compared: int
    knn_k: int
    knn_overlap: float
    similarity_spearman: float
    similarity_mean_masked: float
    similarity_mean_unmasked: float


@dataclass
class Fault:
    """A (layer, text) whose states held NaN or Inf; those states are left out of every metric.

    Attributes:
        layer: the layer index (0 = embedding output).
        tensor: the graph tensor of that layer.
        text_index: the text's position in the input, from 0.
        text: the text.
    """

    layer: int
    tensor: str
    text_index: int
    text: str


@dataclass
class InspectSettings:
    """The options an inspection ran with, and its overall timings.

    Attributes:
        padding: "max_length" or "longest".
        batch_size: texts per batch.
        providers: providers as asked, without duplicates.
        allow_fallback: whether a dropped provider was accepted as a warning.
        layers: tensors named with ``--layers``, or None (located).
        threads: ONNX Runtime intra-op threads, or None.
        tokenizer: the ``--tokenizer`` given, or None.
        texts_file: the ``--texts`` file, or None.
        max_length_asked: ``--max-length`` as given (None: chosen).
        padding_side_asked: ``--padding-side`` as given (``auto``: chosen per model).
        padding_side_source: where the side used came from: ``option``, ``tokenizer_config``,
            ``causal`` (a decoder pads on the left) or ``default`` (right).
        text_cap: texts kept for the cross-text metrics.
        knn_k: neighbours in the k-NN overlap.
        text_column: the Parquet/CSV column or JSONL field read (None: "text").
        engine: "local" (this process) or "ray" (Ray Data actors: ``padlens.inspector.ray``).
        ray: with engine "ray": address, workers, CPUs and threads per worker, texts per shard.
        stats: ``graph`` (reductions inside the session where they can be built; each run's
            ``encoder.stats`` says where they ran) or ``numpy`` (the float64 reference path).
        timings: seconds: tokenize, total.
    """

    padding: str = "max_length"
    batch_size: int = 32
    providers: list[str] = field(default_factory=lambda: ["cpu"])
    allow_fallback: bool = False
    layers: list[str] | None = None
    threads: int | None = None
    tokenizer: str | None = None
    texts_file: str | None = None
    max_length_asked: int | None = None
    padding_side_asked: str = "auto"
    padding_side_source: str = "default"
    text_cap: int = M.TEXT_CAP
    knn_k: int = M.KNN_K
    stats: str = "graph"
    text_column: str | None = None
    engine: str = "local"
    ray: dict = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class RunResult:
    """One model file on one execution provider, measured on every batch.

    Attributes:
        model: the .onnx file.
        precision: fp32, fp16, int8-dynamic, int8-static, int8-weight or unknown.
        provider: the provider as asked (e.g. "cpu", "cuda").
        label: how reports name the model (``ModelRef.label``).
        layers: one LayerMetrics per hidden layer, index 0 = embedding output.
        pooling: last-layer pooling damage (``PoolingDamage``).
        pad_content_rsa: Spearman over text pairs between pad-mean and real-mean similarities
            (last layer, first ``texts_compared`` texts that have pads).
        exposure_max_abs_diff: max |Δ| of the model's own outputs, instrumented vs unmodified,
            on the first rows (``VERIFY_ROWS``) of the first batch.
        n_texts: texts measured; n_tokens: real tokens; n_pad_tokens: pad positions.
        warnings: things the reader must know (provider fallback, failures, caps).
        timings: seconds: load, verify, forward, metrics.
        encoder: ``Encoder.describe()``: inputs, outputs, tensors, providers used.
        faults: the first ``MAX_FAULTS`` NaN/Inf failures (``Fault``); those states are left
            out of every metric.
        similarity: ``{"masked", "unmasked"}`` cosine matrices ``[n, n]`` between the first
            ``SIMILARITY_TEXTS`` texts' pooled last layers, for the report's heatmaps; not
            written to JSON (the pooling dict summarises them).
    """

    model: str
    precision: str
    provider: str
    label: str
    layers: list[LayerMetrics]
    pooling: PoolingDamage
    pad_content_rsa: float
    exposure_max_abs_diff: float | None
    n_texts: int
    n_tokens: int
    n_pad_tokens: int
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    encoder: EncoderInfo | None = None
    faults: list[Fault] = field(default_factory=list)
    similarity: dict[str, np.ndarray] | None = field(default=None, repr=False, metadata=NOT_IN_JSON)

    @property
    def has_attention(self) -> bool:
        return any(layer.attn_pad_to_pad is not None for layer in self.layers)

    def to_dict(self) -> dict:
        """The JSON of one run (layers with their ``pad_position_norm``)."""
        return {**to_jsonable(self), "layers": [layer.to_dict() for layer in self.layers]}


@dataclass
class InspectResult:
    """Every run of one ``inspect`` call, measured on the same batches.

    Attributes:
        runs: one RunResult per (model file × provider), in the order asked.
        texts_count: texts read from the source.
        max_length: the length texts were truncated (and, with "max_length" padding, padded) to.
        padding_side: "right" or "left".
        settings: the other options (``InspectSettings``).
    """

    runs: list[RunResult]
    texts_count: int
    max_length: int
    padding_side: str
    settings: InspectSettings = field(default_factory=InspectSettings)

    def to_dict(self) -> dict:
        """DESIGN.md's JSON: ``{"runs": [{"model", "precision", "provider", "layers": [...]}]}``."""
        return {**to_jsonable(self), "runs": [run.to_dict() for run in self.runs]}


# ---------------------------------------------------------------- texts

def text_source(texts: Iterable[str] | None, texts_file: str | None,
                text_column: str | None = None) -> Iterator[str]:
    """The texts to measure, streamed: ``texts`` first, then the file's; by default the corpus.

    A file (or an iterator passed as ``texts``) is read lazily, never held whole; blank
    texts are skipped. An empty list of texts is a BadInput, not the corpus.
    """
    if isinstance(texts, (list, tuple)):
        if not texts and texts_file is None:
            raise BadInput("no texts given")
        texts = read_texts(list(texts), None) if texts else []
    if texts_file is not None:
        return itertools.chain(texts or [], iter_texts(texts_file, text_column))  # checks the file exists now
    if texts is None:
        return iter(default_corpus())
    return (t for t in texts if t.strip())


def _first_chunk(chunks: Iterator[list[str]], texts_file: str | None) -> list[str]:
    first = next(chunks, None)
    if first is None:
        raise BadInput(f"no texts: {texts_file} is empty" if texts_file else "no texts given")
    return first


# ---------------------------------------------------------------- runs

@dataclass
class _Run:
    """Accumulators of one run while batches stream through."""

    ref: ModelRef
    provider: str
    encoder: Encoder
    pads: list[M.PadStats]
    attention: list[M.AttentionStats | None]
    texts: M.TextStats
    timings: dict[str, float]
    warnings: list[str]
    exposure: float | None = None
    faults: list[Fault] = field(default_factory=list)
    n_texts: int = 0
    n_tokens: int = 0
    n_pad_tokens: int = 0


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
        log.warning("the models prefer different padding sides; padding on the %s for all (pass "
                    "--padding-side to choose)", side)
    log.info("padding side: %s (%s)", side, source)
    return side, source


def _open_encoders(refs: list[ModelRef], providers: list[str], options: dict) -> list[tuple]:
    """(ref, provider, encoder, seconds to open) for every run, in the order asked; the pad
    statistics are computed in the graph unless ``options`` says ``stats=False``."""
    options = {"stats": True, **options}
    runs = list(itertools.product(refs, providers))
    opened = []
    for ref, provider in runs:
        start = time.perf_counter()
        # one run: the unmodified session for the exposure check is made while this one loads
        # (with several, each would stay in memory beside every instrumented session)
        enc = Encoder.open(ref, providers=(provider,), keep_model=False, plain_ahead=len(runs) == 1, **options)
        opened.append((ref, provider, enc, time.perf_counter() - start))
    return opened


def _new_run(ref: ModelRef, provider: str, enc: Encoder, load_s: float, max_length: int) -> _Run:
    n = enc.num_layers + 1
    return _Run(ref, provider, enc, [M.PadStats(max_positions=max_length) for _ in range(n)],
                [None] + [M.AttentionStats() for _ in range(n - 1)], M.TextStats(),
                {"load": load_s, "verify": 0.0, "forward": 0.0, "metrics": 0.0},
                list(enc.session.warnings) + enc.notes)


def _measure(run: _Run, batch: Batch, first: bool, texts: Sequence[str] = ()) -> None:
    start = time.perf_counter()
    sums = _run_stats(run, batch)
    forward = run.encoder.run(batch) if sums is None else None
    run.timings["forward"] += time.perf_counter() - start
    if first:
        start = time.perf_counter()
        run.exposure = run.encoder.verify_exposure(_head(batch, VERIFY_ROWS))
        run.timings["verify"] += time.perf_counter() - start
    start = time.perf_counter()
    if sums is not None:
        _accumulate_sums(run, sums, batch.attention_mask)
    else:
        _accumulate(run, forward, batch.attention_mask)
        _record_faults(run, forward, texts)
    run.n_texts += batch.shape[0]
    run.n_tokens += int(batch.attention_mask.sum())
    run.n_pad_tokens += int((batch.attention_mask == 0).sum())
    run.timings["metrics"] += time.perf_counter() - start


def _head(batch: Batch, n: int) -> Batch:
    """The first ``n`` rows of ``batch`` (exposure is checked on a few rows, not a whole batch)."""
    if batch.shape[0] <= n:
        return batch
    rows = {name: getattr(batch, name)[:n] for name in ("input_ids", "attention_mask", "token_type_ids",
                                                        "position_ids", "special_tokens_mask", "lengths")}
    return dataclasses.replace(batch, **rows)


def _record_faults(run: _Run, forward: Forward, texts: Sequence[str]) -> None:
    """Name the first MAX_FAULTS (layer, text) pairs whose states hold NaN or Inf."""
    if len(run.faults) >= MAX_FAULTS:
        return  # the accumulators still count them; no more scans once the list is full
    for layer, h in enumerate(forward.hidden):
        bad = np.flatnonzero(~np.isfinite(h).all(axis=(1, 2)))
        for row in bad[: max(0, MAX_FAULTS - len(run.faults))]:
            text = texts[row] if row < len(texts) else ""
            run.faults.append(Fault(layer, str(run.encoder.graph.layers.hidden[layer]),
                                    run.n_texts + int(row), text))


def _run_stats(run: _Run, batch: Batch) -> ingraph.BatchSums | None:
    """The batch's in-graph statistics; None when the numpy path must measure it: no in-graph
    statistics, a layer with NaN/Inf/zero states (faults are named from the states), or a
    failed run (the numpy path then runs for good, and says why in ``encoder.stats``)."""
    enc = run.encoder
    if not enc.uses_stats:
        return None
    try:
        sums = enc.run_stats(batch)
    except ModelLoadError as exc:
        enc.stats_note = f"the statistics graph failed to run ({exc})"
        log.warning("%s: pad statistics in numpy from now on: %s", enc.label, enc.stats_note)
        return None
    return sums if sums.valid else None


def _accumulate_sums(run: _Run, sums: ingraph.BatchSums, mask: np.ndarray) -> None:
    attention = run.attention if _attention_fits(run, len(sums.attention), len(sums.layers)) else []
    ingraph.accumulate(sums, mask, run.pads, attention, run.texts)


def _attention_fits(run: _Run, n_attention: int, n_hidden: int) -> bool:
    """One attention map per block; otherwise the masses are left out, with a warning."""
    if n_attention and n_attention != n_hidden - 1:
        note = f"{n_attention} attention tensors for {n_hidden - 1} blocks: attention masses left out"
        if note not in run.warnings:
            run.warnings.append(note)
        return False
    return bool(n_attention)


def _accumulate(run: _Run, forward: Forward, mask: np.ndarray) -> None:
    for stats, h in zip(run.pads, forward.hidden):
        stats.add(h, mask)
    if _attention_fits(run, len(forward.attention), len(forward.hidden)):
        for stats, probs in zip(run.attention[1:], forward.attention):
            stats.add(probs, mask)
    run.texts.add(forward.hidden[-1], mask)


def _layer_metrics(index: int, tensor: str, pads: M.PadStats, attn: M.AttentionStats | None) -> LayerMetrics:
    layer = LayerMetrics(index=index, tensor=tensor, **pads.means(),
                         pad_anchor_cos_by_offset=pads.offset_curve(), sequences=pads.sequences,
                         failed=pads.failed, without_pads=pads.without_pads, single_pad=pads.single_pad,
                         pad_position_mean=pads.position_means())
    if attn is not None and attn.sequences:
        for name, value in attn.means().items():
            setattr(layer, f"attn_{name}", value)
    return layer


def _run_warnings(run: _Run, layers: list[LayerMetrics]) -> list[str]:
    notes = list(run.warnings)
    for layer in layers:
        if layer.failed:
            notes.append(f"layer {layer.index}: {layer.failed} of {layer.sequences} sequences had "
                         "NaN, Inf or zero states and were left out")
    for fault in run.faults:
        notes.append(f"layer {fault.layer} ({fault.tensor}): NaN/Inf in the states of text "
                     f"{fault.text_index + 1} {_quote(fault.text)}")
    if layers and layers[0].sequences and layers[0].without_pads == layers[0].sequences - layers[0].failed:
        notes.append("no text has pads (each filled max length, or padding to the longest of one): "
                     "pad metrics are undefined")
    if run.texts.texts > run.texts.kept + run.texts.failed:
        notes.append(f"pad_content_rsa, k-NN overlap and similarity Spearman use the first "
                     f"{run.texts.kept} of {run.texts.texts} texts")
    return notes


def _quote(text: str, width: int = 60) -> str:
    return repr(text if len(text) <= width else text[: width - 1] + "…")


def _finish(run: _Run) -> RunResult:
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


def _similarity(texts: M.TextStats, n: int = SIMILARITY_TEXTS) -> dict | None:
    """Masked and unmasked pooled cosine matrices of the first ``n`` kept texts."""
    if texts.kept < 1:
        return None
    return {key: M.cosine_matrix(texts.stacked(key)[:n]) for key in ("masked", "unmasked")}


def _tokenizer_groups(runs: list[_Run]) -> dict[str, list[_Run]]:
    """Runs that share a tokenizer share its batches: tokenize once per tokenizer."""
    groups: dict[str, list[_Run]] = {}
    for run in runs:
        groups.setdefault(str(run.ref.tokenizer_path), []).append(run)
    return groups


def _stream(runs: list[_Run], chunks: Iterable[list[str]], length: int, padding: str, side: str,
            progress: Callable[[int], None] | None) -> tuple[int, float]:
    """Feed every chunk, tokenized once per tokenizer, to every run: (texts done, seconds tokenizing)."""
    count, tokenize_s = 0, 0.0
    for index, chunk in enumerate(chunks):
        for group in _tokenizer_groups(runs).values():
            start = time.perf_counter()
            batch = group[0].encoder.tokenizer.encode(chunk, max_length=length, padding=padding, side=side)
            tokenize_s += time.perf_counter() - start
            for run in group:
                _measure(run, batch, first=index == 0, texts=chunk)
        count += len(chunk)
        if progress is not None:
            progress(count)
    return count, tokenize_s


def _inspect_on_ray(args: dict) -> InspectResult:
    """``inspect()`` with ``engine="ray"``: the same result from Ray Data actors (the ``ray`` extra)."""
    from padlens.inspector.ray.inspect_job import inspect_ray

    if args["texts"] is not None:
        raise BadInput("--engine ray reads a corpus: pass --texts FILE, FOLDER or GLOB, not --text")
    keys = ("models", "texts_file", "text_column", "tokenizer", "max_length", "padding", "padding_side", "providers",
            "allow_fallback", "batch_size", "layers", "threads", "progress", "stats", "ray_address", "workers")
    return inspect_ray(**{key: args[key] for key in keys}, show_progress=args["progress_bars"])


def inspect(
    models: list[str],
    texts: list[str] | Iterable[str] | None = None,
    texts_file: str | None = None,
    tokenizer: str | None = None,
    max_length: int | None = None,
    padding: str = "max_length",
    padding_side: str = "auto",
    providers: Sequence[str] = ("cpu",),
    allow_fallback: bool = False,
    batch_size: int = 32,
    layers: list[str] | None = None,
    threads: int | None = None,
    progress: Callable[[int], None] | None = None,
    stats: str = "graph",
    text_column: str | None = None,
    engine: str = "local",
    ray_address: str | None = None,
    workers: int | None = None,
    progress_bars: bool = False,
) -> InspectResult:
    """Measure what the pad positions of each model hold, every model on the same batches.

    Every (model file × provider) is a run. Texts stream from ``texts`` then ``texts_file``
    (or the bundled corpus) in batches of ``batch_size``; each batch is tokenized once per
    tokenizer and fed to every run, so memory does not grow with the number of texts.
    ``max_length`` None means 128, or fewer when a model has fewer position embeddings.
    ``padding_side`` ``auto``: the tokenizer config's, else left for a causal model, else right.
    ``progress`` is called with the number of texts done after each batch.
    ``stats``: ``graph`` computes the pad statistics inside the ONNX Runtime session where the
    graph allows it (``padlens.inspector.stats.ingraph``; else numpy, with the reason in the run's
    ``encoder.stats``), ``numpy`` from the copied-out states (the float64 reference path).
    ``text_column`` names the Parquet/CSV column or JSONL field holding the texts.
    ``engine="ray"`` measures on Ray Data actors (``ray_address``: None starts a local Ray,
    "auto" joins a cluster; ``workers``; ``progress_bars``: Ray's own) with the same result.
    """
    check_engine(engine, ray_address, workers)
    if engine == "ray":
        return _inspect_on_ray(locals())
    started = time.perf_counter()
    providers = check_options(max_length, padding, padding_side, batch_size, providers, threads)
    if stats not in STATS:
        raise BadInput(f"stats must be one of {', '.join(STATS)}, got {stats!r}")
    chunks = batches_of(text_source(texts, texts_file, text_column), int(batch_size))
    first = _first_chunk(chunks, texts_file)
    opened = _open_encoders(resolve_models(models, tokenizer), providers,
                            {"allow_fallback": allow_fallback, "threads": threads, "layers": layers,
                             "stats": stats == "graph"})
    length = choose_max_length(max_length, [enc for _, _, enc, _ in opened])
    asked_side = padding_side
    padding_side, side_source = resolve_side(asked_side, [enc for _, _, enc, _ in opened])
    check_memory([enc for _, _, enc, _ in opened], int(batch_size), length)
    runs = [_new_run(*item, length) for item in opened]
    count, tokenize_s = _stream(runs, itertools.chain([first], chunks), length, padding, padding_side, progress)
    settings = InspectSettings(
        padding=padding, batch_size=int(batch_size), providers=providers, allow_fallback=allow_fallback,
        layers=layers, threads=threads, tokenizer=tokenizer, texts_file=texts_file, max_length_asked=max_length,
        padding_side_asked=asked_side, padding_side_source=side_source, stats=stats, text_column=text_column,
        timings={"tokenize": round(tokenize_s, 4), "total": round(time.perf_counter() - started, 4)})
    return InspectResult([_finish(run) for run in runs], count, length, padding_side, settings)
