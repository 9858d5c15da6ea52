"""The audit's results: one CheckResult per check and run, the AuditResult, its JUnit XML."""
from __future__ import annotations

from dataclasses import dataclass, field
from xml.etree import ElementTree as ET

from padlens.inspector.report.fmt import fmt_measure

ERROR, WARNING = "error", "warning"
NOT_APPLICABLE = "not applicable: "


@dataclass
class CheckResult:
    """The verdict of one check on one model run.

    Attributes:
        model: the run's label (``EXPORTDIR/PRECISION``, a file stem; ``[provider]`` appended
            when several providers are audited).
        name: the check (``padding_invariance``, ...).
        severity: ``error`` (fails the audit) or ``warning`` (reported only).
        passed: whether the check passed (True when it does not apply).
        value: the measured value (a cosine, or a count of graph findings); None when not measured.
        threshold: the value it is held to (minimum cosine, or maximum count).
        detail: one or two sentences naming the worst case and the likely cause; starts with
            ``not applicable: `` and the reason when the check cannot say anything here.
        applicable: False when the check cannot say anything about this model run.
        node: where the leak enters, when a failed invariance check traced it
            (``trace.LeakNode``: layer, name, op_type, inputs, tensor, local_error, accumulated_error), or
            where a failed reference_drift's copy leaves the reference (``trace_drift.DriftNode``: the same
            and reference, reference_tensor, matched, computed_by, drift); else None.
        evidence: the worst case's drift per layer (``Evidence``) for the report's figure; not in the JSON.
    """

    model: str
    name: str
    severity: str
    passed: bool
    value: float | None
    threshold: float | None
    detail: str
    applicable: bool = True
    node: object | None = None
    evidence: Evidence | None = field(default=None, metadata={"json": False})  # jsonable.NOT_IN_JSON

    @classmethod
    def not_applicable(cls, model: str, name: str, severity: str, reason: str) -> CheckResult:
        """A check that cannot say anything here: passed, no value, the reason in ``detail``."""
        return cls(model, name, severity, True, None, None, NOT_APPLICABLE + reason, applicable=False)

    def __bool__(self) -> bool:
        """True when it passed: ``if result:`` reads as ``if result.passed:``."""
        return bool(self.passed)

    @property
    def mark(self) -> str:
        """``PASS``, ``FAIL`` (a failed error), ``WARN`` (a failed warning) or ``n/a``."""
        if not self.applicable:
            return "n/a"
        if self.passed:
            return "PASS"
        return "FAIL" if self.severity == ERROR else "WARN"

    def to_dict(self) -> dict:
        """Plain JSON values (NaN/Inf as null)."""
        from padlens.inspector.report.jsonable import to_jsonable

        return to_jsonable(self)


@dataclass(frozen=True)
class DriftPoint:
    """How far one text's real tokens moved when padded to one width (padding_invariance).

    Attributes:
        model: the run's label.
        precision: the precision its tolerances were chosen for.
        text: the text's index.
        tokens: its real tokens.
        added_pads: pads added.
        min_cos: lowest cosine of a real token's state over every layer.
        pooled_cos: cosine of the masked-mean pooled last layer.
        max_delta: largest |Δ| of a real token's state relative to the state norm (inf on NaN).
    """

    model: str
    precision: str
    text: int
    tokens: int
    added_pads: int
    min_cos: float
    pooled_cos: float
    max_delta: float

    def to_dict(self) -> dict:
        from padlens.inspector.report.jsonable import to_jsonable

        return to_jsonable(self)


@dataclass(frozen=True)
class RunSettings:
    """How one audited run was fed (what the reader needs to read its verdicts).

    Attributes:
        model: the run's label.
        padding_side: the side its variants were padded on.
        padding_side_source: ``option``, ``tokenizer_config``, ``causal`` or ``default``.
        causal: whether the model is causal (real tokens see only earlier positions), and why.
        notes: how the graph's structure shaped the run (one text per batch, a fixed length).
    """

    model: str
    padding_side: str
    padding_side_source: str
    causal: str = ""
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        from padlens.inspector.report.jsonable import to_jsonable

        return to_jsonable(self)


@dataclass
class AuditResult:
    """Every check on every audited model run.

    Attributes:
        passed: True when every error-level check passed (warnings do not fail an audit).
        checks: the results, grouped by model in the order the models were given.
        pad_drift: padding_invariance's measurements, one point per (run, text, pad length);
            the report plots them (not in ``to_dict``: the JSON keys are the contract's).
        runs: how each run was fed (padding side and why, causal, fixed shapes).
    """

    passed: bool
    checks: list[CheckResult] = field(default_factory=list)
    pad_drift: list[DriftPoint] = field(default_factory=list, metadata={"json": False})  # jsonable.NOT_IN_JSON
    runs: list[RunSettings] = field(default_factory=list)

    def __bool__(self) -> bool:
        """``if audit(...):`` reads as "the audit passed" (``passed``), not "a result exists"."""
        return bool(self.passed)

    @property
    def failures(self) -> list[CheckResult]:
        """Failed error-level checks."""
        return [c for c in self.checks if c.mark == "FAIL"]

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(c.model for c in self.checks))

    @property
    def names(self) -> list[str]:
        """The checks present, in the order they were reported."""
        return list(dict.fromkeys(c.name for c in self.checks))

    def to_dict(self) -> dict:
        """``{"passed", "checks", "runs"}``: the contract's keys and how each run was fed (the
        drift points are for the report)."""
        from padlens.inspector.report.jsonable import to_jsonable

        return to_jsonable(self)

    def to_junit(self) -> str:
        """JUnit XML: one testsuite per model, one testcase per check; failed errors are failures."""
        root = ET.Element("testsuites", name="padlens audit", tests=str(len(self.checks)),
                          failures=str(len(self.failures)))
        for model in self.models:
            _junit_suite(root, model, [c for c in self.checks if c.model == model])
        ET.indent(root)
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _junit_suite(root: ET.Element, model: str, results: list[CheckResult]) -> None:
    failed = [c for c in results if c.mark == "FAIL"]
    skipped = [c for c in results if not c.applicable]
    suite = ET.SubElement(root, "testsuite", name=model, tests=str(len(results)),
                          failures=str(len(failed)), errors="0", skipped=str(len(skipped)))
    for c in results:
        case = ET.SubElement(suite, "testcase", classname=f"padlens.audit.{model}", name=c.name)
        summary = f"value={fmt_measure(c.value)} threshold={fmt_measure(c.threshold)} severity={c.severity}"
        if c.mark == "FAIL":
            failure = ET.SubElement(case, "failure", message=c.detail, type=c.name)
            failure.text = f"{summary}\n{c.detail}"
        elif not c.applicable:
            ET.SubElement(case, "skipped", message=c.detail)
        out = ET.SubElement(case, "system-out")
        prefix = "WARNING: " if c.mark == "WARN" else ""
        out.text = f"{prefix}{summary}\n{c.detail}"


@dataclass(frozen=True)
class Evidence:
    """The worst case of an invariance check, layer by layer, against the same text alone.

    Attributes:
        text: the text's name (``text 3 'The kettle...' (9 tokens)``).
        what: what was done to it (``padded to 128 (+119)``).
        one_minus_cos: per layer 0..L, 1 − the lowest cosine of one real token's state.
        delta: per layer 0..L, the largest |Δ| of one real token's state / the state norm.
        cos_floor: the tolerance's minimum cosine (None where unused).
        delta_ceiling: the tolerance's maximum |Δ| (None where unused).
        first_layer: the first layer beyond the tolerance, None when within it everywhere.
        worst_layer: the layer of the lowest cosine.
    """

    text: str
    what: str
    one_minus_cos: tuple[float, ...]
    delta: tuple[float, ...]
    cos_floor: float | None
    delta_ceiling: float | None
    first_layer: int | None
    worst_layer: int


@dataclass(frozen=True)
class Verdict:
    """What one check measured on one run; the runner adds the run's label, the check's name and
    its severity (from the registry) to make the CheckResult.

    Attributes:
        passed: whether the check passed.
        value: the measured value, or None when not measured.
        threshold: the value it is held to.
        detail: the worst case and the likely cause.
        node: where the leak enters (``trace.LeakNode``), when traced.
        evidence: the worst case per layer, for the report.
    """

    passed: bool
    value: float | None
    threshold: float | None
    detail: str
    node: object | None = None
    evidence: Evidence | None = None
