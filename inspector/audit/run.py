"""The audit's entry point: per model and provider, gather facts, run every check, then drift."""
from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from padlens.errors import BadInput
from padlens.inspector.audit import graph_checks, invariance, pooling_checks, positions, registry, tokenizer_checks
from padlens.inspector.audit import tolerances as tl
from padlens.inspector.audit.cache import Probe
from padlens.inspector.audit.drift import RunRecord, drift_verdicts
from padlens.inspector.audit.facts import Facts, RunContext, graph_facts, measured
from padlens.inspector.audit.results import AuditResult, CheckResult, DriftPoint, RunSettings, Verdict
from padlens.inspector.audit.variants import Layout, tokenize
from padlens.inspector.inputs.lengths import choose_max_length
from padlens.inspector.inputs.options import RunOptions

log = logging.getLogger(__name__)

#: Texts audited when none are given: the first lines of the built-in corpus.
DEFAULT_TEXTS = 16
#: check name -> the function that measures it on one run (drift compares runs: see drift.py)
RUN_CHECKS = {**invariance.CHECKS, **positions.CHECKS, **pooling_checks.CHECKS, **graph_checks.CHECKS, **tokenizer_checks.CHECKS}


@dataclass(frozen=True)
class Settings:
    """How every run is probed.

    Attributes:
        max_length: ``--max-length`` as asked (None: 128, or the model's positions when fewer).
        padding: ``max_length`` (pad to max length) or ``longest`` (to the longest audited text).
        side: where the pads go, ``right``, ``left`` or ``auto`` (per model: the tokenizer config's,
            else left for a causal model, else right).
        batch_size: rows of a neighbour batch (None: the text between a short and a long neighbour).
        seed: seed of the random pad ids.
    """

    max_length: int | None = None
    padding: str = "max_length"
    side: str = "auto"
    batch_size: int | None = None
    seed: int = 0

    @classmethod
    def of(cls, options: RunOptions, seed: int = 0) -> Settings:
        """The probing settings of checked ``options`` (``RunOptions``)."""
        return cls(options.max_length, options.padding, options.padding_side, options.batch_size, seed)


def result_of(spec: registry.CheckSpec, label: str, verdict: Verdict) -> CheckResult:
    """A check's verdict on one run as the CheckResult the JSON reports."""
    return CheckResult(label, spec.name, spec.severity, bool(verdict.passed), verdict.value,
                       verdict.threshold, verdict.detail, node=verdict.node, evidence=verdict.evidence)


def run_check(spec: registry.CheckSpec, ctx: RunContext) -> CheckResult:
    """One check on one run: not applicable with the reason, or its verdict."""
    reason = spec.applies(ctx.facts)
    if reason is not None:
        return CheckResult.not_applicable(ctx.label, spec.name, spec.severity, reason)
    return result_of(spec, ctx.label, RUN_CHECKS[spec.name](ctx))


def open_layout(encoder, texts: list[str], settings: Settings, compared: bool = False) -> Layout:
    """The run's layout: texts tokenized once and the padded width chosen (nothing run yet);
    ``compared`` keeps the pads' states reference_drift compares with other runs."""
    max_len = choose_max_length(settings.max_length, [encoder])
    seqs = tokenize(encoder, texts, max_len)
    width = max_len if settings.padding == "max_length" else max(len(ids) for ids in seqs.ids)
    return Layout(encoder.tokenizer, seqs, width, encoder.padding_side(settings.side)[0], settings.batch_size,
                  compared)


def open_run(encoder, texts: list[str], settings: Settings, compared: bool = False) -> tuple[Probe, Facts]:
    """The run's probe and facts: the graph read once; each text run alone, and whether the
    model's rows are independent of their batch (then variants, the facts' measurement first,
    run stacked; never tried on a graph with dynamic quantization, whose scales span the batch)."""
    layout = open_layout(encoder, texts, settings, compared)
    facts = graph_facts(encoder, layout)
    probe = Probe.open(encoder, layout, stacking_allowed=not facts.dynamic)
    return probe, measured(facts, probe)


def audit_run(encoder, texts: list[str], settings: Settings, provider: str, label: str,
              overrides: dict[str, float], compared: bool = False
              ) -> tuple[list[CheckResult], RunRecord, list[DriftPoint]]:
    """Every single-run check of one model on one provider, the record drift needs (the pads'
    states only when ``compared`` with other runs), the drift points."""
    probe, facts = open_run(encoder, texts, settings, compared)
    ctx = RunContext(probe, facts, label, overrides, settings.seed)
    results = [run_check(spec, ctx) for spec in registry.SPECS if spec.family != registry.DRIFT]
    log.info("%s: %d forward runs", label, probe.runs)
    record = RunRecord.of(probe, label, ctx.facts.precision, provider)
    return results, record, invariance.drift_points(ctx)


def audit(models: Sequence, texts: Sequence[str] | None = None, *, texts_file=None, tokenizer=None,
          max_length: int | None = None, padding: str = "max_length", padding_side: str = "auto",
          batch_size: int | None = None, providers: Sequence[str] = ("cpu",), threads: int | None = None,
          allow_fallback: bool = False, layers: list[str] | None = None,
          tolerances: dict[str, float] | None = None, limit: int | None = None,
          seed: int = 0, progress=None) -> AuditResult:
    """Audit ``models`` (paths or ModelRefs): every check, per model and provider.

    Texts: ``texts`` and ``texts_file``, else the first ``DEFAULT_TEXTS`` lines of the built-in
    corpus. ``max_length`` defaults to 128, or the model's positions when fewer; ``padding``
    pads the variants to it (``max_length``) or to the longest audited text (``longest``).
    ``batch_size`` sets the rows of the neighbour batches (default: the text between a short and
    a long neighbour). ``padding_side`` ``auto`` pads each model on its tokenizer config's side,
    else on the left for a causal model, else on the right (``AuditResult.runs`` says which). Each text's unpadded reference is computed once per run and shared by
    every check; reference_drift compares runs against the fp32 CPU one. ``progress`` is called
    with the number of (model, provider) runs audited so far. Every option after ``texts`` is a
    keyword, the shared ones in the same order as ``inspect``, ``embed`` and ``probe``.
    """
    overrides = tl.validate(tolerances)
    if not providers:
        raise BadInput("no provider given")
    options = RunOptions(max_length=max_length, padding=padding, padding_side=padding_side, batch_size=batch_size,
                         providers=providers, threads=threads, allow_fallback=allow_fallback, tokenizer=tokenizer,
                         texts_file=texts_file, layers=layers)
    return audit_with(models, options, texts, tolerances=overrides, limit=limit, seed=seed, progress=progress)


def audit_with(models: Sequence, options: RunOptions, texts: Sequence[str] | None = None,
               tolerances: dict[str, float] | None = None, limit: int | None = None, seed: int = 0,
               progress=None) -> AuditResult:
    """``audit()`` with its options already checked (``RunOptions``)."""
    from padlens.inspector.inputs.texts import read_texts

    overrides = tl.validate(tolerances)
    settings = Settings.of(options, seed)
    given = texts or options.texts_file is not None
    texts = read_texts(texts, options.texts_file, limit if given else (limit or DEFAULT_TEXTS))
    results, records, points, runs = [], [], [], []
    refs = _model_refs(models, options)
    compared = len(refs) * len(options.providers) > 1
    for ref, provider, encoder in _encoders(refs, options):
        label = ref.label if len(options.providers) == 1 else f"{ref.label} [{provider}]"
        runs.append(run_settings(encoder, settings, label))
        run_results, record, run_points = audit_run(encoder, texts, settings, provider, label, overrides, compared)
        record.reopen = functools.partial(_open, ref, provider, options)  # a failed drift is traced to its node
        results += run_results
        records.append(record)
        points += run_points
        if progress is not None:
            progress(len(records))
    drift = registry.spec("reference_drift")
    results += [result_of(drift, label, v) for label, v in drift_verdicts(records, overrides)]
    return assemble(results, points, runs)


def _model_refs(models, options: RunOptions) -> list:
    """``models`` (paths or ModelRefs) as ModelRefs, nothing opened yet."""
    from padlens.inspector.inputs.resolve import ModelRef, resolve_models

    refs = [m for m in models if isinstance(m, ModelRef)]
    paths = [m for m in models if not isinstance(m, ModelRef)]
    return refs + (resolve_models(paths, options.tokenizer) if paths else [])


def _encoders(refs: list, options: RunOptions):
    """(ref, provider, encoder) per run, opened one at a time (one model in memory), without ONNX
    Runtime's memory pattern (the audit runs each shape many times: ``create_session``)."""
    for ref in refs:
        for provider in options.providers:
            yield ref, provider, _open(ref, provider, options)


def _open(ref, provider: str, options: RunOptions):
    """``ref``'s encoder on ``provider`` as the audit runs it (hidden states only, no memory pattern)."""
    from padlens.inspector.runtime.encoder import Encoder
    from padlens.inspector.runtime.session import SessionOptions

    return Encoder.open(ref, SessionOptions.of(options, provider, mem_pattern=False), layers=options.layer_list,
                        attention=False)


def run_settings(encoder, settings: Settings, label: str) -> RunSettings:
    """How ``encoder``'s run is fed: the padding side and why, causal, fixed shapes."""
    side, source = encoder.padding_side(settings.side)
    log.info("%s: %s padding (%s)", label, side, source)
    return RunSettings(label, side, source, encoder.graph.structure.causal_evidence, tuple(encoder.notes))


def assemble(results: list[CheckResult], points: list[DriftPoint] | None = None,
             runs: list[RunSettings] | None = None) -> AuditResult:
    """Sort ``results`` by model (as given), then by the registry's order; the verdict."""
    models = list(dict.fromkeys(r.model for r in results))
    results.sort(key=lambda r: (models.index(r.model), registry.ORDER.index(r.name)))
    return AuditResult(all(r.passed for r in results if r.severity == registry.ERROR), results,
                       list(points or []), list(runs or []))
