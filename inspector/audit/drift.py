"""reference_drift: each variant or provider against the fp32 CPU run, on the same texts."""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from padlens.errors import ModelLoadError
from padlens.inspector.audit import tolerances as tl
from padlens.inspector.audit.cache import Probe
from padlens.inspector.audit.compare import compare_states, cosines
from padlens.inspector.audit.results import Evidence, Verdict
from padlens.inspector.audit.variants import Sequences
from padlens.inspector.report.fmt import fmt_cos

log = logging.getLogger(__name__)


@dataclass
class RunRecord:
    """What reference_drift needs from one audited run.

    Attributes:
        label: the run's label.
        precision: its precision.
        provider: the provider asked for.
        seqs: its tokenized texts (drift compares only identically tokenized runs).
        refs: per text, per-layer [n, H] states of the text alone.
        pads: per text, per-layer [width - n, H] states of its pads, padded alone to the width
            (None when it has none, or when the probe did not keep them).
        width: the padded width.
        side: the side its pads are on (pads are compared only between runs padded on one side).
        reopen: opens the run's encoder again (graph kept) when a failed check is traced to its node;
            None where it cannot be reopened (nothing is traced then).
    """

    label: str
    precision: str
    provider: str
    seqs: Sequences
    refs: list[list[np.ndarray]]
    pads: list[list[np.ndarray] | None]
    width: int
    side: str
    reopen: Callable[[], object] | None = field(default=None, repr=False)

    @classmethod
    def of(cls, probe: Probe, label: str, precision: str, provider: str) -> RunRecord:
        refs = [probe.reference(i).real for i in range(probe.count)]
        pads = [probe.padded(i).pads if probe.has_pads(i) else None for i in range(probe.count)]
        return cls(label, precision, provider, probe.seqs, refs, pads, probe.width, probe.side)

    def comparable(self, other: RunRecord) -> bool:
        """Same tokens, width, layer count and hidden size."""
        return (self.seqs.same_tokens(other.seqs) and self.width == other.width
                and len(self.refs[0]) == len(other.refs[0])
                and self.refs[0][0].shape[-1] == other.refs[0][0].shape[-1])


def _layer_cos(a: list[np.ndarray], b: list[np.ndarray]) -> list[float]:
    return [float(cosines(x, y).mean()) if len(x) else 1.0 for x, y in zip(a, b)]


def _series(values) -> str:
    return "/".join(f"{v:.4f}" for v in values)


def _pooled(ref: RunRecord, run: RunRecord) -> np.ndarray:
    """Per text, the cosine of the masked-mean pooled last layer of ``run`` against ``ref`` (NaN: -1)."""
    pooled = [float(cosines(a[-1].astype(np.float64).mean(0), b[-1].astype(np.float64).mean(0))[0])
              for a, b in zip(ref.refs, run.refs)]
    return np.nan_to_num(np.array(pooled), nan=-1.0)


def worst_text(ref: RunRecord, run: RunRecord) -> int:
    """The text whose pooled embedding drifts most (the one reference_drift reports)."""
    return int(_pooled(ref, run).argmin())


def reference_drift(ref: RunRecord, run: RunRecord, overrides: dict[str, float]) -> Verdict:
    """``run`` against the fp32 CPU ``ref``: pooled cosine per text, per-layer detail."""
    tol = tl.tolerance_for("reference_drift", run.precision, overrides)
    real_cos, pad_cos = [], []
    for i in range(len(run.refs)):
        real_cos.append(_layer_cos(ref.refs[i], run.refs[i]))
        if ref.pads[i] is not None and run.pads[i] is not None and ref.side == run.side:
            pad_cos.append(_layer_cos(ref.pads[i], run.pads[i]))
    pooled_arr = _pooled(ref, run)
    at = int(pooled_arr.argmin())
    value = float(pooled_arr[at])
    passed = value >= tol.cos
    real = np.mean(real_cos, 0) if real_cos else []
    pads = np.mean(pad_cos, 0) if pad_cos else []
    ev = drift_evidence(ref, run, at, tol.cos)
    first = "" if ev.first_layer is None else f", its real tokens first beyond it at layer {ev.first_layer}"
    detail = (f"against {ref.label} [{ref.provider}]: worst pooled cos {fmt_cos(value, precise=True)} on "
              f"{run.seqs.name(at)} ({'within' if passed else 'beyond'} min {tol.cos:.10g} for "
              f"{tl.precision_class(run.precision)}{first}); mean token cos per layer 0..L: real "
              f"{_series(real)}; pads {_series(pads) if len(pads) else 'n/a'}.")
    if not passed:
        detail += " Likely cause: the precision's own error; compare against DESIGN.md's measured values."
    return Verdict(passed, value, tol.cos, detail, evidence=ev)


def drift_evidence(ref: RunRecord, run: RunRecord, at: int, floor: float) -> Evidence:
    """Text ``at``'s real tokens in ``run`` against ``ref`` per layer (1 − min token cos, max |Δ| / state
    norm), the first layer whose lowest token cosine is below ``floor``, and the worst layer."""
    diff = compare_states(ref.refs[at], run.refs[at])
    first = diff.nonfinite_layer if diff.nonfinite_layer is not None else diff.first_beyond(floor, None)
    return Evidence(run.seqs.name(at), f"against {ref.label} [{ref.provider}]",
                    tuple(1.0 - c for c in diff.layer_cos), tuple(diff.layer_delta), floor, None, first,
                    diff.cos_layer)


def traced(ref: RunRecord, run: RunRecord, verdict: Verdict, opened: dict) -> Verdict:
    """A failed ``verdict`` with the node where ``run`` leaves ``ref`` (``trace_drift``): both encoders
    reopened (``opened`` keeps the reference's for the next run), the worst text run alone through both,
    in the first layer beyond the tolerance (else the worst); unchanged when it cannot be traced."""
    ev = verdict.evidence
    if verdict.passed or ev is None or ref.reopen is None or run.reopen is None:
        return verdict
    from padlens.inspector.audit.trace import Side
    from padlens.inspector.audit.trace_drift import trace_drift
    from padlens.inspector.inputs.tokenize import pad_rows

    at = worst_text(ref, run)
    seqs, n = run.seqs, len(run.seqs.ids[at])
    batch = pad_rows([(seqs.ids[at], seqs.types[at], seqs.special[at])], n, "right", seqs.pad_id, seqs.pad_type)
    layer = ev.first_layer if ev.first_layer is not None else ev.worst_layer
    try:
        if "ref" not in opened:
            opened["ref"] = ref.reopen()
        node = trace_drift(opened["ref"], run.reopen(), layer, Side(batch, 0, n), verdict.threshold)
    except ModelLoadError as exc:  # ONNX Runtime cannot run a graph with the layer exposed: the verdict stands
        log.warning("%s: reference_drift not traced: %s", run.label, exc)
        return replace(verdict, detail=f"{verdict.detail} Not traced: {exc}.")
    if node is None:
        return verdict
    return replace(verdict, detail=f"{verdict.detail} Traced: {node.words()}.", node=node)


def reference_of(records: list[RunRecord]) -> RunRecord | None:
    """The fp32 CPU run, else the first fp32 run; None when there is none."""
    fp32 = [r for r in records if tl.precision_class(r.precision) == "fp32"]
    cpu = [r for r in fp32 if r.provider.lower() in ("cpu", "cpuexecutionprovider")]
    return (cpu or fp32 or [None])[0]


def drift_verdicts(records: list[RunRecord], overrides: dict[str, float]) -> list[tuple[str, Verdict]]:
    """(run label, verdict) of every run comparable with the reference run."""
    if len(records) < 2:
        return []
    ref = reference_of(records)
    if ref is None:
        log.warning("reference_drift skipped: no fp32 model among those audited")
        return []
    out, opened = [], {}
    for run in records:
        if run is ref:
            continue
        if not run.comparable(ref):
            log.warning("reference_drift: %s is not comparable with %s (tokens, layers or width differ)",
                        run.label, ref.label)
            continue
        out.append((run.label, traced(ref, run, reference_drift(ref, run, overrides), opened)))
    return out
