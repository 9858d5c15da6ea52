"""What ``inspect`` returns: per-layer pad metrics, pooling damage, faults, runs and settings (plain dataclasses)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from padlens.inspector.report.jsonable import NOT_IN_JSON, to_jsonable
from padlens.inspector.runtime.encoder import EncoderInfo
from padlens.inspector.stats import accumulators as acc
from padlens.inspector.stats import measures


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
        sequences: sequences measured; failed: those with NaN/Inf states, left out of the pad
            metrics (real_norm kept where their real tokens are finite).
        without_pads: sequences with no pad (left out of pad metrics); single_pad: sequences
            with one pad (left out of pad_pad_cos).
        pads, zero_pads: pad states measured, and those exactly zero (norm 0: in pad_norm; no
            direction: left out of the cosines).
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
    pads: int = 0
    zero_pads: int = 0
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
    text_cap: int = acc.TEXT_CAP
    knn_k: int = measures.KNN_K
    stats: str = "graph"
    text_column: str | None = None
    engine: str = "local"
    ray: dict = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, options, stats: str, side_source: str, engine: str = "local", ray: dict | None = None,
           timings: dict[str, float] | None = None) -> InspectSettings:
        """The settings of an inspection run with ``options`` (a ``RunOptions``)."""
        return cls(padding=options.padding, batch_size=options.batch_size, providers=list(options.providers),
                   allow_fallback=options.allow_fallback, layers=options.layer_list, threads=options.threads,
                   tokenizer=options.tokenizer, texts_file=options.texts_file, max_length_asked=options.max_length,
                   padding_side_asked=options.padding_side, padding_side_source=side_source, stats=stats,
                   text_column=options.text_column, engine=engine, ray=dict(ray or {}), timings=dict(timings or {}))


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
