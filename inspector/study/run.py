"""study(): both questions of the forum thread, composed from inspect, probe, pooling and k-means.

For each MODEL argument: its reference file (an export dir's fp32, a folder's model.onnx, the
only file of a bare .onnx) is inspected (pad geometry) and probed (length, distance, content,
first word, with controls) on the topic corpus; then every file of the argument embeds the
corpus (``embeddings``) and k-means (k = topics, fixed seed) clusters each variant:
(a) masked mean, the reference; (b) the mean with pads left in; (c) the model's own cls /
lasttoken pooling; (d) every other file of the argument, and each further MODEL's reference
against the first's; (e) a file whose embeddings change with the batch order, in the other order.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from padlens.errors import BadInput, MissingExtra, Param
from padlens.inspector.inputs.options import RunOptions
from padlens.inspector.inputs.resolve import resolve_models
from padlens.inspector.runtime.embed_model import pick_ref
from padlens.inspector.stats import measures
from padlens.inspector.stats.cosine import row_cosines
from padlens.inspector.study.corpus import TopicCorpus, read_corpus
from padlens.inspector.study.embeddings import Embedded, embed_corpus
from padlens.inspector.study.results import (
    BatchOrder,
    ClusterRow,
    LayerGeometry,
    ModelStudy,
    StudyOptions,
    StudyResult,
)

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'padlens[probe]'"
ORDER_COS = 0.9999
"""A file whose masked-mean embeddings agree this closely in two batch orders is batch-invariant
(rounding only: fp32 ~1e-7, fp16 ~1e-5); below it, an (e) row clusters the other order."""


def clusterer():
    """``study.cluster`` (scikit-learn), or MissingExtra naming the extra to install."""
    import importlib

    try:
        return importlib.import_module("padlens.inspector.study.cluster")
    except ImportError as exc:
        raise MissingExtra(f"padlens study needs scikit-learn: {INSTALL_HINT}") from exc


def study(models: Sequence[str], out: str | Path | None = None, corpus: str | None = None,
          max_length: int | None = None, batch_size: int = 32, providers: Sequence[str] = ("cpu",),
          threads: int | None = None, allow_fallback: bool = False, tokenizer: str | None = None,
          seed: int = 0, per_text: int = 2, force: bool = False,
          progress: Callable[[str], None] | None = None) -> StudyResult:
    """Answer "what do the pads hold?" and "what do pads do to k-means clusters?" for ``models``.

    ``corpus``: a ``TOPIC<TAB>TEXT`` file (default: the bundled topic corpus). Batches are padded
    to ``max_length`` (default 128, or a model's positions if fewer). With ``out``, writes
    study.md, study.json and study.html into that folder (new or empty; ``force`` replaces it),
    all or nothing. ``progress`` is called with a line per stage. Needs scikit-learn.
    """
    options = StudyOptions(RunOptions(max_length=max_length, padding="max_length", batch_size=batch_size,
                                      providers=tuple(providers), threads=threads, allow_fallback=allow_fallback,
                                      tokenizer=tokenizer), corpus, seed, per_text)
    if out is not None:
        from padlens.fsio import check_output_dir

        check_output_dir(out, force)
    result = study_with(list(models), options, progress)
    if out is not None:
        from padlens.inspector.study.render import write_study

        write_study(result, out, force)
    return result


def study_with(models: list[str], options: StudyOptions,
               progress: Callable[[str], None] | None = None) -> StudyResult:
    """``study()`` with its options already checked; writes nothing."""
    from padlens.inspector.probe.run import fitter
    from padlens.inspector.study.words import across_sentences, cluster_sentences, pad_sentences

    fitter()  # the probes' scikit-learn, said once before any work
    clusterer()
    if not models:
        raise BadInput("no model given")
    say = progress or (lambda line: log.info("%s", line))
    started = time.perf_counter()
    corpus = read_corpus(options.corpus)
    groups = [(model, resolve_models([model], options.run.tokenizer)) for model in models]
    studies = []
    for model, refs in groups:
        one = _study_model(model, refs, corpus, options, say)
        one.pads, one.effects = pad_sentences(one), cluster_sentences(one)
        studies.append(one)
    across = _across(studies, corpus, options.seed)
    settings = {"seed": options.seed, "k": len(corpus.names), "max_length_asked": options.run.max_length,
                "batch_size": options.run.batch_size, "providers": list(options.run.providers),
                "per_text": options.per_text, "kmeans_restarts": clusterer().N_INIT, "order_cos": ORDER_COS,
                "knn_k": measures.KNN_K, "padding": "max_length", "normalized": True}
    result = StudyResult(studies, across, {"name": corpus.name, "texts": len(corpus.texts),
                                           "topics": corpus.counts()}, settings=settings)
    result.across_words = across_sentences(result)
    result.timings["total"] = round(time.perf_counter() - started, 3)
    return result


# ---------------------------------------------------------------- one model

def _study_model(model: str, refs: list, corpus: TopicCorpus, options: StudyOptions,
                 say: Callable[[str], None]) -> ModelStudy:
    primary = pick_ref(refs)
    files = [primary] + [r for r in refs if r is not primary]
    timings: dict[str, float] = {}
    texts = list(corpus.texts)
    start = time.perf_counter()
    say(f"[{primary.label}] embedding the corpus ({len(texts)} texts, two batch orders)")
    embedded = [embed_corpus(ref, texts, options.run, options.seed) for ref in files]
    timings["embed"] = time.perf_counter() - start
    reference = embedded[0]
    _check_pads(reference)
    run_options = RunOptions(max_length=reference.max_length, padding="max_length", padding_side=reference.side,
                             batch_size=options.run.batch_size, providers=options.run.providers,
                             threads=options.run.threads, allow_fallback=options.run.allow_fallback,
                             tokenizer=str(primary.tokenizer_path))
    say(f"[{primary.label}] inspecting the pads")
    inspected, timings["inspect"] = _timed(lambda: _inspect(primary, texts, run_options))
    say(f"[{primary.label}] probing the pads (length, distance, content, first word, with controls)")
    probed, timings["probe"] = _timed(lambda: _probe(primary, texts, run_options, options))
    say(f"[{primary.label}] k-means on every variant")
    (rows, orders), timings["cluster"] = _timed(lambda: _cluster_rows(embedded, corpus, options.seed))
    warnings = list(inspected.warnings) + [w for w in probed.warnings if w not in inspected.warnings]
    return ModelStudy(
        model=str(model), label=primary.label, precision=inspected.precision,
        files=[r.label for r in files], pooling=reference.pooling, pooling_source=reference.pooling_source,
        padding_side=reference.side, max_length=reference.max_length,
        texts_with_pads=int((reference.lengths < reference.max_length).sum()),
        geometry=[LayerGeometry(la.index, la.pad_pad_cos, la.pad_real_cos, la.pad_anchor_cos, la.pad_norm,
                                la.real_norm) for la in inspected.layers],
        pooling_damage=vars(inspected.pooling).copy(), pad_content_rsa=inspected.pad_content_rsa,
        probe={**probed.to_dict(), "label": primary.label}, clusters=rows, orders=orders, warnings=warnings,
        timings={k: round(v, 3) for k, v in timings.items()}, probe_run=probed, inspect_run=inspected,
        vectors=reference.vectors["masked"])


def _timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def _check_pads(reference: Embedded) -> None:
    if not (reference.lengths < reference.max_length).any():
        raise BadInput(f"{reference.label}: no text of the corpus has a pad at ", Param("max_length"),
                       f" {reference.max_length} (every text fills it): there is nothing to study; raise max_length or use shorter texts")


def _inspect(ref, texts: list[str], options: RunOptions):
    from padlens.inspector.inspect import inspect_with

    return inspect_with([str(ref.path)], options, texts).runs[0]


def _probe(ref, texts: list[str], options: RunOptions, study_options: StudyOptions):
    from padlens.inspector.probe.run import probe_with

    return probe_with([str(ref.path)], options, texts, seed=study_options.seed,
                      per_text=study_options.per_text).runs[0]


# ---------------------------------------------------------------- clustering

def _cluster_rows(embedded: list[Embedded], corpus: TopicCorpus, seed: int) -> tuple[list[ClusterRow], list[BatchOrder]]:
    fit = clusterer()
    k, labels = len(corpus.names), corpus.labels
    reference = embedded[0]
    ref_vectors = reference.vectors["masked"]
    ref_assign = fit.kmeans(ref_vectors, k, seed)
    ref_name = f"{reference.label}, masked mean"
    rows = [ClusterRow("a", ref_name, reference.label, "", fit.ari(ref_assign, labels))]
    variants = [("b", f"{reference.label}, mean with pads", reference, reference.vectors["unmasked"])]
    if "own" in reference.vectors:
        variants.append(("c", f"{reference.label}, {reference.pooling} token", reference, reference.vectors["own"]))
    variants += [("d", f"{e.label}, masked mean", e, e.vectors["masked"]) for e in embedded[1:]]
    for variant, name, emb, vectors in variants:
        rows.append(compare(variant, name, emb.label, vectors, ref_name, ref_vectors, ref_assign, labels, k, seed))
    orders = []
    for emb in embedded:
        cos = emb.order_cos_min
        orders.append(BatchOrder(emb.label, cos, bool(cos >= ORDER_COS)))
        if cos < ORDER_COS:
            own = fit.kmeans(emb.vectors["masked"], k, seed) if emb is not reference else ref_assign
            rows.append(compare("e", f"{emb.label}, masked mean, other batch order", emb.label,
                                emb.vectors["masked_reordered"], f"{emb.label}, masked mean",
                                emb.vectors["masked"], own, labels, k, seed))
    return rows, orders


def compare(variant: str, name: str, model: str, vectors: np.ndarray, against: str, ref_vectors: np.ndarray,
            ref_assign: np.ndarray, labels: list[int], k: int, seed: int, same_space: bool = True) -> ClusterRow:
    """Cluster ``vectors`` and compare them with the reference's vectors and clusters."""
    fit = clusterer()
    assign = fit.kmeans(vectors, k, seed)
    sim_ref, sim = measures.cosine_matrix(ref_vectors), measures.cosine_matrix(vectors)
    overlap, knn_k = measures.knn_overlap(sim_ref, sim)
    spearman = measures.spearman(measures.upper_triangle(sim_ref), measures.upper_triangle(sim))
    cos_min = float(np.min(row_cosines(ref_vectors, vectors))) if same_space else None
    return ClusterRow(variant, name, model, against, fit.ari(assign, labels), fit.ari(assign, ref_assign),
                      fit.moved_share(ref_assign, assign), overlap, knn_k, spearman, cos_min)


def _across(studies: list[ModelStudy], corpus: TopicCorpus, seed: int) -> list[ClusterRow]:
    """(d) rows: each further model's masked-mean clustering against the first model's."""
    if len(studies) < 2:
        return []
    first = studies[0]
    fit = clusterer()
    k, labels = len(corpus.names), corpus.labels
    ref_assign = fit.kmeans(first.vectors, k, seed)
    return [compare("d", f"{s.label}, masked mean", s.label, s.vectors, first.clusters[0].name,
                    first.vectors, ref_assign, labels, k, seed, same_space=False) for s in studies[1:]]
