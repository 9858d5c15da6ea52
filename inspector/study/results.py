"""What ``study`` returns: per model the pad geometry, the probes, the clustering rows and the answers."""
from __future__ import annotations

from dataclasses import dataclass, field

from padlens.errors import BadInput
from padlens.inspector.inputs.options import RunOptions
from padlens.inspector.report.jsonable import NOT_IN_JSON, to_jsonable

#: clustering variants (issue 31): (a) the reference, (b) pads left in, (c) the model's own
#: first/last-token pooling, (d) another file or model, (e) another batch order
VARIANTS = {"a": "masked mean (reference)", "b": "mean with pads left in", "c": "model's own token pooling",
            "d": "other file or model, masked mean", "e": "another batch order, masked mean"}


@dataclass(frozen=True)
class StudyOptions:
    """Everything a study runs with, checked once (BadInput on a bad value).

    Attributes:
        run: what to feed the models and how (``RunOptions``: max length, batch size, providers,
            threads, tokenizer); batches are padded to ``max_length`` (None: 128, or fewer
            positions when a model has fewer).
        corpus: a ``TOPIC<TAB>TEXT`` file, or None for the bundled topic corpus.
        seed: seed of k-means, the probes' split and shuffles, and the second batch order.
        per_text: pad and real-token states each probe samples per text.
    """

    run: RunOptions = field(default_factory=RunOptions)
    corpus: str | None = None
    seed: int = 0
    per_text: int = 2

    def __post_init__(self) -> None:
        if int(self.per_text) < 1:
            raise BadInput(f"per_text must be at least 1, got {self.per_text}")
        if self.run.padding != "max_length":
            raise BadInput("the study pads every batch to max_length (the common setup it studies)")


@dataclass
class LayerGeometry:
    """The pad geometry of one layer (``inspect``'s metrics, DESIGN.md definitions).

    Attributes:
        index: 0 is the embedding output, 1..L the encoder blocks' outputs.
        pad_pad_cos: mean cosine between distinct pads of a text.
        pad_real_cos: mean cosine between a pad and a real token (pad–word).
        pad_anchor_cos: mean cosine between each pad and the pad next to the text (1: pads do
            not change along positions; lower: they drift away from the anchor).
        pad_norm, real_norm: mean state norm over pads, over real tokens.
    """

    index: int
    pad_pad_cos: float
    pad_real_cos: float
    pad_anchor_cos: float
    pad_norm: float
    real_norm: float


@dataclass
class ClusterRow:
    """One clustering of the corpus compared with the one it varies.

    Attributes:
        variant: a key of ``VARIANTS`` ("a" … "e").
        name: what was clustered, in words (e.g. ``int8-dynamic, masked mean``).
        model: the label of the file embedded.
        against: the name of the row it is compared with ("" for a reference).
        ari_topics: adjusted Rand index of its k-means clusters against the topic labels.
        ari_reference: ARI against the clusters of ``against`` (None for a reference).
        moved: share of texts in another cluster than in ``against`` (clusters matched one to one).
        knn_overlap: mean share of each text's k nearest neighbours kept (cosine), vs ``against``.
        knn_k: the k of ``knn_overlap``.
        similarity_spearman: Spearman between the two cosine-similarity matrices (text pairs).
        pooled_cos_min: least cosine between a text's embedding here and in ``against``.
    """

    variant: str
    name: str
    model: str
    against: str
    ari_topics: float
    ari_reference: float | None = None
    moved: float | None = None
    knn_overlap: float | None = None
    knn_k: int = 0
    similarity_spearman: float | None = None
    pooled_cos_min: float | None = None


@dataclass
class BatchOrder:
    """Whether one file embeds the corpus the same in two batch orders (variant (e)).

    Attributes:
        model: the file's label.
        pooled_cos_min: least cosine, over texts, between its masked-mean embeddings in the
            corpus order and in a seeded shuffled order (the same batch size and padding).
        invariant: ``pooled_cos_min`` ≥ ``ORDER_COS`` (rounding only); else an (e) row is added.
    """

    model: str
    pooled_cos_min: float
    invariant: bool


@dataclass
class ModelStudy:
    """Both questions for one MODEL argument: its reference file's pads, and its clusterings.

    Attributes:
        model: the MODEL argument. label: its reference file's label (an export dir's fp32,
            else ``model.onnx``; the only file of a bare .onnx). precision: that file's.
        files: every file of the argument, reference first (the others are (d) rows).
        pooling: the model's own pooling (``auto``: its folder or manifest), and its source.
        padding_side: the side pads went on. max_length: tokens per text, pads included.
        texts_with_pads: corpus texts shorter than ``max_length`` (they have pads).
        geometry: the pad geometry per layer. pooling_damage: ``inspect``'s masked vs
            unmasked pooling numbers (its ``PoolingDamage``, as a dict). pad_content_rsa: Spearman
            over text pairs between pad-mean and real-mean similarities (last layer).
        probe: the probes of the reference file (``ProbeRun.to_dict()``: per layer, per target,
            pads and real tokens, with controls, baselines and 95% intervals).
        clusters: the clustering rows of this model ((a) first).
        orders: the batch-order check of every file.
        pads: the answer to "what do the pads hold?", sentences derived from the numbers.
        effects: the answer to "what do pads do to clusters?", sentences.
        warnings: what the reader must know (probe notes, provider fallbacks).
        timings: seconds: inspect, probe, embed, cluster.
        probe_run, inspect_run: the ``ProbeRun`` and inspect ``RunResult`` behind the numbers
            (for the figures; not in JSON). vectors: the reference's masked-mean embeddings
            [texts, H] (for the comparisons across models; not in JSON).
    """

    model: str
    label: str
    precision: str
    files: list[str]
    pooling: str
    pooling_source: str
    padding_side: str
    max_length: int
    texts_with_pads: int
    geometry: list[LayerGeometry]
    pooling_damage: dict
    pad_content_rsa: float
    probe: dict
    clusters: list[ClusterRow]
    orders: list[BatchOrder]
    pads: list[str] = field(default_factory=list)
    effects: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    probe_run: object = field(default=None, repr=False, metadata=NOT_IN_JSON)
    inspect_run: object = field(default=None, repr=False, metadata=NOT_IN_JSON)
    vectors: object = field(default=None, repr=False, metadata=NOT_IN_JSON)

    def to_dict(self) -> dict:
        return to_jsonable(self)


@dataclass
class StudyResult:
    """A study of one or more models on one topic corpus.

    Attributes:
        models: one ModelStudy per MODEL argument, in the order given.
        across: (d) rows comparing each further model's reference clustering with the first's.
        across_words: those rows in sentences.
        corpus: the corpus: ``name``, ``texts``, ``topics`` (texts per topic).
        settings: seed, k, max length asked, batch size, providers, per_text, k-means restarts.
        timings: seconds in total.
    """

    models: list[ModelStudy]
    across: list[ClusterRow]
    corpus: dict
    across_words: list[str] = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """``{"models": [{"model", "label", "geometry", "probe", "clusters", "pads", "effects", ...}],
        "across", "corpus", "settings", "timings"}``."""
        return {"models": [m.to_dict() for m in self.models], "across": to_jsonable(self.across),
                "across_words": list(self.across_words),
                "corpus": to_jsonable(self.corpus), "settings": to_jsonable(self.settings),
                "timings": to_jsonable(self.timings)}
