"""`padlens audit`: does padding leak into real tokens? Checks per model, precision and provider."""
from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Sequence
from xml.etree import ElementTree as ET

import numpy as np

from padlens.errors import BadInput
from padlens.inspector import checks as ck
from padlens.inspector import tolerances as tl

log = logging.getLogger(__name__)

#: Texts audited when none are given: the first lines of the built-in corpus.
DEFAULT_TEXTS = 16
DEFAULT_MAX_LENGTH = 128
ERROR, WARNING = "error", "warning"
SEVERITY = {"padding_invariance": ERROR, "batch_neighbour_invariance": ERROR,
            "mask_honoured": ERROR, "fully_masked_row": ERROR, "left_padding": WARNING,
            "mask_honoured_other_side": WARNING,
            "dynamic_activation_quantization": WARNING, "mask_path_quantized": ERROR,
            "reference_drift": ERROR}
ORDER = list(SEVERITY)


@dataclass
class CheckResult:
    """The verdict of one check on one model run.

    Attributes:
        model: the run's label (``EXPORTDIR/PRECISION``, a file stem; ``[provider]`` appended
            when several providers are audited).
        name: the check (``padding_invariance``, ...).
        severity: ``error`` (fails the audit) or ``warning`` (reported only).
        passed: whether the check passed.
        value: the measured value (a cosine, or a count of graph findings); None when not measured.
        threshold: the value it is held to (minimum cosine, or maximum count).
        detail: one or two sentences naming the worst case and the likely cause.
    """

    model: str
    name: str
    severity: str
    passed: bool
    value: float | None
    threshold: float | None
    detail: str

    def to_dict(self) -> dict:
        d = asdict(self)
        for key in ("value", "threshold"):
            v = d[key]
            d[key] = None if v is None or not math.isfinite(float(v)) else float(v)
        return d


@dataclass
class AuditResult:
    """Every check on every audited model run.

    Attributes:
        passed: True when every error-level check passed (warnings do not fail an audit).
        checks: the results, grouped by model in the order the models were given.
        pad_drift: padding_invariance's measurements, one dict per (run, text, pad length):
            ``model``, ``precision``, ``text``, ``tokens``, ``added_pads``, ``min_cos``,
            ``pooled_cos`` and ``max_delta`` (relative to the state norm); the report plots them
            (not in ``to_dict``: the JSON keys are the contract's).
    """

    passed: bool
    checks: list[CheckResult] = field(default_factory=list)
    pad_drift: list[dict] = field(default_factory=list)

    @property
    def failures(self) -> list[CheckResult]:
        """Failed error-level checks."""
        return [c for c in self.checks if not c.passed and c.severity == ERROR]

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(c.model for c in self.checks))

    def to_dict(self) -> dict:
        return {"passed": self.passed, "checks": [c.to_dict() for c in self.checks]}

    def to_junit(self) -> str:
        """JUnit XML: one testsuite per model, one testcase per check; failed errors are failures."""
        root = ET.Element("testsuites", name="padlens audit", tests=str(len(self.checks)),
                          failures=str(len(self.failures)))
        for model in self.models:
            _junit_suite(root, model, [c for c in self.checks if c.model == model])
        ET.indent(root)
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _junit_suite(root: ET.Element, model: str, results: list[CheckResult]) -> None:
    failed = [c for c in results if not c.passed and c.severity == ERROR]
    suite = ET.SubElement(root, "testsuite", name=model, tests=str(len(results)),
                          failures=str(len(failed)), errors="0", skipped="0")
    for c in results:
        case = ET.SubElement(suite, "testcase", classname=f"padlens.audit.{model}", name=c.name)
        summary = f"value={_fmt(c.value)} threshold={_fmt(c.threshold)} severity={c.severity}"
        if not c.passed and c.severity == ERROR:
            failure = ET.SubElement(case, "failure", message=c.detail, type=c.name)
            failure.text = f"{summary}\n{c.detail}"
        out = ET.SubElement(case, "system-out")
        prefix = "WARNING: " if not c.passed and c.severity == WARNING else ""
        out.text = f"{prefix}{summary}\n{c.detail}"


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.6g}"


# --------------------------------------------------------------------------- inputs


@dataclass
class Sequences:
    """The audited texts, tokenized once without padding.

    Attributes:
        texts: the texts.
        ids: int64 [n_i] token ids per text (special tokens included).
        types: int64 [n_i] token type ids per text.
        pad_id: the tokenizer's pad id.
        pad_type: the token type written at pads.
        vocab: ids below this are valid (random pad ids are drawn from it).
    """

    texts: list[str]
    ids: list[np.ndarray]
    types: list[np.ndarray]
    pad_id: int
    pad_type: int
    vocab: int

    def name(self, i: int) -> str:
        text = self.texts[i]
        short = text if len(text) <= 40 else text[:37] + "..."
        return f"text {i + 1} {short!r} ({len(self.ids[i])} tokens)"

    def same_tokens(self, other: Sequences) -> bool:
        return len(self.ids) == len(other.ids) and all(
            np.array_equal(a, b) for a, b in zip(self.ids, other.ids))


def tokenize(encoder, texts: list[str], max_length: int) -> Sequences:
    """Tokenize each text once, truncated to ``max_length``, unpadded."""
    batch = encoder.tokenizer.encode(texts, max_length=max_length, padding="longest", side="right")
    lengths = [int(n) for n in batch.lengths]
    vocab = encoder.tokenizer.vocab_size
    if encoder.graph.vocab_size:
        vocab = min(vocab, int(encoder.graph.vocab_size))
    return Sequences(list(texts), [batch.input_ids[i, :n].copy() for i, n in enumerate(lengths)],
                     [batch.token_type_ids[i, :n].copy() for i, n in enumerate(lengths)],
                     int(batch.pad_id), int(encoder.tokenizer.pad_type_id), int(vocab))


# --------------------------------------------------------------------------- running


@dataclass
class Row:
    """One row of a batch the audit builds by hand.

    Attributes:
        ids: int64 [T] token ids.
        mask: int64 [T] attention mask.
        types: int64 [T] token type ids.
    """

    ids: np.ndarray
    mask: np.ndarray
    types: np.ndarray


class Probe:
    """Runs hand-built batches through one encoder and caches what several checks share.

    The unpadded reference of each text (a batch of one, so no padding and no neighbour)
    is computed once; so is each text padded alone to ``max_len`` on either side.
    """

    def __init__(self, encoder, seqs: Sequences, max_len: int, side: str = "right"):
        self.encoder, self.seqs, self.max_len, self.side = encoder, seqs, max_len, side
        self._refs: dict[int, list[np.ndarray]] = {}
        self._padded: dict[tuple[int, int, str], list[np.ndarray]] = {}
        self.runs = 0

    def row(self, i: int, width: int, side: str | None = None) -> Row:
        """Text ``i`` padded to ``width`` on ``side`` with the tokenizer's pad id and type."""
        s = self.seqs
        ids, types, n = s.ids[i], s.types[i], len(s.ids[i])
        out = Row(np.full(width, s.pad_id, np.int64), np.zeros(width, np.int64),
                  np.full(width, s.pad_type, np.int64))
        cols = slice(0, n) if (side or self.side) == "right" else slice(width - n, width)
        out.ids[cols], out.mask[cols], out.types[cols] = ids, 1, types
        return out

    def forward(self, rows: Sequence[Row], side: str = "right") -> list[np.ndarray]:
        """Run ``rows`` as one batch; returns hidden states [B, T, H] for layers 0..L."""
        from padlens.inspector.tokenize import Batch

        ids = np.stack([r.ids for r in rows])
        mask = np.stack([r.mask for r in rows])
        types = np.stack([r.types for r in rows])
        positions = np.broadcast_to(np.arange(ids.shape[1], dtype=np.int64), ids.shape).copy()
        batch = Batch(ids, mask, types, positions, np.zeros_like(ids), mask.sum(1), side,
                      self.seqs.pad_id)
        self.runs += 1
        return self.encoder.run(batch).hidden

    def reference(self, i: int) -> list[np.ndarray]:
        """Text ``i`` alone, unpadded: per-layer [n, H]."""
        if i not in self._refs:
            n = len(self.seqs.ids[i])
            self._refs[i] = [h[0] for h in self.forward([self.row(i, n)])]
        return self._refs[i]

    def padded(self, i: int, width: int, side: str | None = None, keep: bool = True) -> list[np.ndarray]:
        """Text ``i`` alone, padded to ``width``: per-layer [width, H] (cached when ``keep``)."""
        side = side or self.side
        key = (i, width, side)
        if key in self._padded:
            return self._padded[key]
        states = [h[0] for h in self.forward([self.row(i, width, side)], side)]
        if keep:
            self._padded[key] = states
        return states

    def real(self, states: list[np.ndarray], i: int, side: str | None = None) -> list[np.ndarray]:
        """The real-token rows of a padded text's per-layer states."""
        n = len(self.seqs.ids[i])
        if (side or self.side) == "right":
            return [h[:n] for h in states]
        return [h[h.shape[0] - n:] for h in states]

    def has_pads(self, i: int) -> bool:
        return len(self.seqs.ids[i]) < self.max_len


# --------------------------------------------------------------------------- verdicts


@dataclass
class Case:
    """One measured comparison: which text, what was done to it, how far it moved.

    Attributes:
        index: the text's index.
        what: what was done, in words ("padded to 17 (+8)").
        diff: the measured movement.
    """

    index: int
    what: str
    diff: ck.StateDiff


def score(diff: ck.StateDiff, tol: tl.Tolerance) -> float:
    """How far past its tolerance a case is: <= 1 passes; NaN/Inf is infinitely bad."""
    if diff.nonfinite_layer is not None:
        return math.inf
    cos_part = (1.0 - diff.worst_cos) / max(1.0 - (tol.cos if tol.cos is not None else 0.0), 1e-15)
    delta_part = diff.max_delta / max(tol.delta, 1e-30) if tol.delta is not None else 0.0
    return max(cos_part, delta_part)


def worst(cases: list[Case], tol: tl.Tolerance) -> tuple[bool, Case | None]:
    """(every case within ``tol``, the worst case)."""
    if not cases:
        return True, None
    scored = [(score(c.diff, tol), c) for c in cases]
    top = max(scored, key=lambda sc: sc[0])
    return all(s <= 1.0 for s, _ in scored), top[1]


def describe(seqs: Sequences, case: Case) -> str:
    """``text 3 'The kettle...' (9 tokens) padded to 17 (+8): min token cos ... at layer 4, ...``"""
    d = case.diff
    head = f"{seqs.name(case.index)} {case.what}"
    if d.nonfinite_layer is not None:
        return f"{head}: NaN/Inf at layer {d.nonfinite_layer}"
    if d.max_delta == 0.0:
        return f"{head}: real tokens bit-identical at every layer"
    return (f"{head}: min token cos {fmt_cos(d.min_cos)} at layer {d.cos_layer}, pooled cos "
            f"{fmt_cos(d.pooled_cos)}, max |Δ| {d.max_delta:.3g} × state norm at layer {d.delta_layer}")


def fmt_cos(v: float) -> str:
    """A cosine readable near 1: ``0.983429``, or ``1 - 3.9e-07``."""
    return f"{v:.6f}" if v < 0.9999 else f"1 - {max(1.0 - v, 0.0):.1e}"


@dataclass
class Findings:
    """What the graph and earlier checks say about a model, to name likely causes.

    Attributes:
        dynamic: dynamic-quantization nodes.
        mask_quantized: quantized mask-derived tensors.
        mask_ignored: an all-ones mask changed nothing.
        has_positions_input: the graph takes position_ids.
        mask_as_lengths: fused nodes (EmbedLayerNormalization) that turn the mask into
            sequence lengths, which assumes right padding.
    """

    dynamic: list[str] = field(default_factory=list)
    mask_quantized: list[str] = field(default_factory=list)
    mask_ignored: bool = False
    has_positions_input: bool = False
    mask_as_lengths: list[str] = field(default_factory=list)


def _names(items: list[str], k: int = 3) -> str:
    more = f" and {len(items) - k} more" if len(items) > k else ""
    return ", ".join(items[:k]) + more


def likely_cause(f: Findings, diff: ck.StateDiff | None, across: str = "padding") -> str:
    """The most probable reason real tokens moved, in one sentence."""
    if diff is not None and diff.nonfinite_layer is not None:
        return ("Likely cause: a softmax over a row that is all -inf, or a 0/0 in masked pooling, "
                f"produced NaN/Inf first at layer {diff.nonfinite_layer}.")
    if f.dynamic:
        return (f"Likely cause: dynamic activation quantization ({len(f.dynamic)} nodes, e.g. "
                f"{_names(f.dynamic, 2)}) takes one scale over the whole tensor, so pads and batch "
                "neighbours set the scale real tokens are rounded with.")
    if f.mask_quantized:
        return f"Likely cause: the attention-mask path is quantized ({_names(f.mask_quantized, 2)})."
    if f.mask_ignored:
        return "Likely cause: the graph ignores the attention mask, so real tokens attend to pads."
    if across == "batch":
        return "Likely cause: an op mixes rows of the batch (a reduction or a scale over the batch axis)."
    return ("Likely cause: an op mixes positions without the mask (attention without the additive "
            "mask, or a mean/max/norm over the sequence axis).")


# --------------------------------------------------------------------------- checks


class Auditor:
    """The checks of one model run, sharing one Probe (references computed once)."""

    def __init__(self, probe: Probe, label: str, precision: str, overrides: dict[str, float],
                 findings: Findings, seed: int = 0):
        self.probe, self.label, self.precision = probe, label, precision
        self.overrides, self.findings, self.seed = overrides, findings, seed
        self.drift: list[dict] = []

    @property
    def seqs(self) -> Sequences:
        return self.probe.seqs

    def tol(self, name: str) -> tl.Tolerance:
        return tl.tolerance_for(name, self.precision, self.overrides)

    def result(self, name: str, passed: bool, value, threshold, detail: str) -> CheckResult:
        return CheckResult(self.label, name, SEVERITY[name], bool(passed), value, threshold, detail)

    def diff(self, ref: list[np.ndarray], states: list[np.ndarray], i: int,
             side: str | None = None) -> ck.StateDiff:
        """Compare the real tokens of padded ``states`` with ``ref``; NaN anywhere counts."""
        d = ck.compare_states(ref, self.probe.real(states, i, side))
        bad = ck.first_nonfinite(states)
        if bad is not None and d.nonfinite_layer is None:
            d.nonfinite_layer, d.min_cos, d.pooled_cos, d.cos_layer = bad, -1.0, -1.0, bad
        return d

    def verdict(self, name: str, cases: list[Case], scope: str, across: str | None = "padding",
                note: str = "") -> CheckResult:
        """Fold ``cases`` into one result that names the worst one and its likely cause."""
        tol = self.tol(name)
        passed, top = worst(cases, tol)
        if top is None:
            return self.result(name, True, None, tol.cos, f"not measured: {note or 'no case applies'}")
        verdict = "within" if passed else "beyond"
        detail = (f"worst of {scope}: {describe(self.seqs, top)} ({verdict} min cos {tol.cos:g}, "
                  f"max |Δ| {tol.delta:g}).")
        if not passed and across is not None:
            detail += " " + likely_cause(self.findings, top.diff, across)
        if note:
            detail += " " + note
        return self.result(name, passed, top.diff.worst_cos, tol.cos, detail)

    # -- padding and neighbours ---------------------------------------------------------

    def pad_targets(self, n: int) -> list[int]:
        m = self.probe.max_len
        return sorted({min(n + 1, m), min(n + 8, m), m} - {n})

    def padding_invariance(self) -> CheckResult:
        cases = []
        for i, ids in enumerate(self.seqs.ids):
            n, ref = len(ids), self.probe.reference(i)
            for width in self.pad_targets(n):
                states = self.probe.padded(i, width, keep=width == self.probe.max_len)
                cases.append(Case(i, f"padded to {width} (+{width - n})", self.diff(ref, states, i)))
                self.drift.append(self._drift_point(i, n, width, cases[-1].diff))
        scope = f"{len(self.seqs.ids)} texts × pad lengths +1, +8 and {self.probe.max_len} " \
                f"({self.probe.side} padding) against each text alone"
        return self.verdict("padding_invariance", cases, scope, note="" if cases else
                            "every text fills max length")

    def _drift_point(self, i: int, n: int, width: int, d: ck.StateDiff) -> dict:
        """One point of the report's drift-against-pad-length plot."""
        return {"model": self.label, "precision": self.precision, "text": i, "tokens": n,
                "added_pads": width - n, "min_cos": float(d.min_cos), "pooled_cos": float(d.pooled_cos),
                "max_delta": math.inf if d.nonfinite_layer is not None else float(d.max_delta)}

    def neighbours(self) -> tuple[Row, Row]:
        """A short neighbour (the shortest text) and a long one filling ``max_len``."""
        seqs, m = self.seqs, self.probe.max_len
        short = min(range(len(seqs.ids)), key=lambda i: len(seqs.ids[i]))
        long_ids = np.resize(np.concatenate(seqs.ids), m).astype(np.int64)
        long = Row(long_ids, np.ones(m, np.int64), np.zeros(m, np.int64))
        return self.probe.row(short, m), long

    def batch_neighbour_invariance(self) -> CheckResult:
        short, long = self.neighbours()
        m, cases = self.probe.max_len, []
        for i in range(len(self.seqs.ids)):
            base = self.probe.padded(i, m) if self.probe.has_pads(i) else self.probe.reference(i)
            ref = self.probe.real(base, i)
            hidden = self.probe.forward([short, self.probe.row(i, m), long], self.probe.side)
            states = [h[1] for h in hidden]
            cases.append(Case(i, f"between a {int(short.mask.sum())}-token and a {m}-token neighbour",
                              self.diff(ref, states, i)))
        scope = (f"{len(cases)} texts, each batched between a short and a {m}-token neighbour, "
                 "against the same text padded alone to the same length")
        return self.verdict("batch_neighbour_invariance", cases, scope, across="batch")

    # -- the mask -------------------------------------------------------------------------

    def mask_effect(self) -> tuple[float, int | None]:
        """(smallest relative move of real tokens when the mask is all ones, text index)."""
        effects = []
        for i in range(len(self.seqs.ids)):
            if not self.probe.has_pads(i):
                continue
            m = self.probe.max_len
            row = self.probe.row(i, m)
            base = self.probe.real(self.probe.padded(i, m), i)
            ones = Row(row.ids, np.ones_like(row.mask), row.types)
            states = [h[0] for h in self.probe.forward([ones], self.probe.side)]
            d = ck.compare_states(base, self.probe.real(states, i))
            effects.append((d.max_delta if d.nonfinite_layer is None else math.inf, i))
        return min(effects) if effects else (math.nan, None)

    def random_pad_cases(self, side: str | None = None) -> list[Case]:
        """Pads (on ``side``) replaced by random vocabulary ids under the same mask, per text."""
        side = side or self.probe.side
        rng, m, cases = np.random.default_rng(self.seed), self.probe.max_len, []
        for i in range(len(self.seqs.ids)):
            if not self.probe.has_pads(i):
                continue
            row = self.probe.row(i, m, side)
            pads = row.mask == 0
            ids = row.ids.copy()
            ids[pads] = rng.integers(0, self.seqs.vocab, int(pads.sum()))
            states = [h[0] for h in self.probe.forward([Row(ids, row.mask, row.types)], side)]
            base = self.probe.real(self.probe.padded(i, m, side), i, side)
            cases.append(Case(i, f"{side}-padded to {m} with random ids under the mask",
                              self.diff(base, states, i, side)))
        return cases

    def mask_honoured(self) -> CheckResult:
        effect, at = self.mask_effect()
        self.findings.mask_ignored = at is not None and effect < tl.MASK_EFFECT
        cases, tol = self.random_pad_cases(), self.tol("mask_honoured")
        passed_a, top = worst(cases, tol)
        if at is None:
            return self.result("mask_honoured", True, None, tol.cos,
                               "not measured: every text fills max length, no pads to replace")
        part_b = (f"(b) an all-ones mask moves {self.seqs.name(at)} by {effect:.3g} × state norm"
                  + (" — the mask is ignored (baked into the graph or unused)."
                     if self.findings.mask_ignored else ": the mask is used."))
        part_a = f"(a) random pad ids, worst: {describe(self.seqs, top)}"
        passed = passed_a and not self.findings.mask_ignored
        detail = f"{part_a} ({'within' if passed_a else 'beyond'} min cos {tol.cos:g}); {part_b}"
        if not passed_a:
            detail += " " + likely_cause(self.findings, top.diff)
        return self.result("mask_honoured", passed, top.diff.worst_cos, tol.cos, detail)

    def fully_masked_row(self) -> CheckResult:
        m, cases = self.probe.max_len, []
        empty = Row(np.full(m, self.seqs.pad_id, np.int64), np.zeros(m, np.int64),
                    np.full(m, self.seqs.pad_type, np.int64))
        for i in range(len(self.seqs.ids)):
            base = self.probe.padded(i, m) if self.probe.has_pads(i) else self.probe.reference(i)
            hidden = self.probe.forward([self.probe.row(i, m), empty], self.probe.side)
            d = self.diff(self.probe.real(base, i), [h[0] for h in hidden], i)
            bad = ck.first_nonfinite([h[1] for h in hidden])
            if bad is not None:
                d.nonfinite_layer, d.min_cos, d.pooled_cos, d.cos_layer = bad, -1.0, -1.0, bad
            cases.append(Case(i, f"beside a {m}-token row whose mask is all zeros", d))
        scope = f"{len(cases)} texts, each batched beside a fully masked row (all pads, mask 0)"
        return self.verdict("fully_masked_row", cases, scope, across="batch")

    def left_padding(self) -> CheckResult:
        m, cases = self.probe.max_len, []
        other = "left" if self.probe.side == "right" else "right"
        for i in range(len(self.seqs.ids)):
            if not self.probe.has_pads(i):
                continue
            base = self.probe.real(self.probe.padded(i, m), i)
            states = self.probe.padded(i, m, other)  # kept: mask_honoured_other_side reuses it
            cases.append(Case(i, f"{other}-padded to {m} vs {self.probe.side}-padded",
                              self.diff(base, states, i, other)))
        passed, _ = worst(cases, self.tol("left_padding"))
        note = "" if passed else self._left_note()
        return self.verdict("left_padding", cases, f"{len(cases)} texts", across=None, note=note)

    def mask_honoured_other_side(self) -> CheckResult:
        """Random pad ids on the other padding side must not move real tokens either."""
        other = "left" if self.probe.side == "right" else "right"
        cases = self.random_pad_cases(other)
        note = ""
        if self.findings.mask_as_lengths:
            note = (f"Likely cause: {_names(self.findings.mask_as_lengths, 2)} turn(s) the mask into "
                    "sequence lengths (ONNX Runtime's fused EmbedLayerNormalization mask index), which "
                    f"assumes right padding: {other}-padded inputs are masked wrongly.")
        scope = f"{len(cases)} texts, {other}-padded, pads replaced by random ids under the mask"
        passed, _ = worst(cases, self.tol("mask_honoured_other_side"))
        return self.verdict("mask_honoured_other_side", cases, scope, across=None,
                            note="" if passed else note)

    def _left_note(self) -> str:
        if self.findings.has_positions_input:
            return ("padlens feeds position_ids = arange(T) on both sides, so absolute positions shift "
                    "with left padding: pad on the right, or compute position ids from the mask.")
        return ("Expected for absolute-position models (BERT, MiniLM): left padding shifts every real "
                "token's position unless position ids are supplied; pad on the right.")

    def run_all(self) -> list[CheckResult]:
        out = [self.mask_honoured(), self.padding_invariance(), self.batch_neighbour_invariance(),
               self.fully_masked_row(), self.left_padding(), self.mask_honoured_other_side()]
        log.info("%s: %d forward runs", self.label, self.probe.runs)
        return out


# --------------------------------------------------------------------------- graph checks


def mask_index_nodes(model) -> list[str]:
    """Fused nodes whose mask output is a sequence length (EmbedLayerNormalization's mask_index)."""
    consumed = {name for node in model.graph.node for name in node.input}
    return [node.name or node.output[0] for node in model.graph.node
            if node.op_type == "EmbedLayerNormalization" and len(node.output) > 1
            and node.output[1] and node.output[1] in consumed]


def graph_checks(label: str, model, masks: list[str] | None = None) -> tuple[list[CheckResult], Findings]:
    """The two checks read from the graph alone (onnx, no session)."""
    dynamic = ck.find_dynamic_quantization(model)
    quantized = ck.find_quantized_mask_path(model, masks)
    found = Findings(dynamic=dynamic, mask_quantized=quantized, mask_as_lengths=mask_index_nodes(model))
    dyn_detail = (f"{len(dynamic)} nodes compute activation scales at run time over a whole tensor, so "
                  f"pads and batch neighbours set the scale: {_names(dynamic, 4)}."
                  if dynamic else "no dynamic activation quantization (DynamicQuantizeLinear, "
                  "DynamicQuantizeMatMul, MatMulInteger fed by them).")
    mask_detail = (f"{len(quantized)} mask-derived tensors are quantized: {_names(quantized, 4)}. "
                   "The additive mask holds values near float32 min at pads; a scale calibrated on them "
                   "rounds every real attention score to one step. Exclude these nodes from quantization "
                   "(or calibrate unpadded)." if quantized
                   else f"no QuantizeLinear on a tensor derived from {', '.join(masks or []) or 'the mask'}.")
    return [CheckResult(label, "dynamic_activation_quantization", WARNING, not dynamic,
                        float(len(dynamic)), 0.0, dyn_detail),
            CheckResult(label, "mask_path_quantized", ERROR, not quantized,
                        float(len(quantized)), 0.0, mask_detail)], found


# --------------------------------------------------------------------------- drift


@dataclass
class RunRecord:
    """What reference_drift needs from one audited run.

    Attributes:
        label: the run's label.
        precision: its precision.
        provider: the provider asked for.
        seqs: its tokenized texts (drift compares only identically tokenized runs).
        refs: per text, per-layer [n, H] states of the text alone.
        padded: per text, per-layer [max_len, H] states padded alone (None when no pads).
        max_len: the padded width.
        pad_drift: padding_invariance points of this run (see ``AuditResult.pad_drift``).
    """

    label: str
    precision: str
    provider: str
    seqs: Sequences
    refs: list[list[np.ndarray]]
    padded: list[list[np.ndarray] | None]
    max_len: int
    pad_drift: list[dict] = field(default_factory=list)


def _record(probe: Probe, label: str, precision: str, provider: str) -> RunRecord:
    refs = [probe.reference(i) for i in range(len(probe.seqs.ids))]
    padded = [probe.padded(i, probe.max_len) if probe.has_pads(i) else None
              for i in range(len(probe.seqs.ids))]
    return RunRecord(label, precision, provider, probe.seqs, refs, padded, probe.max_len)


def _layer_cos(a: list[np.ndarray], b: list[np.ndarray]) -> list[float]:
    return [float(ck._rowwise_cos(np.asarray(x, np.float64), np.asarray(y, np.float64)).mean())
            if len(x) else 1.0 for x, y in zip(a, b)]


def drift(ref: RunRecord, run: RunRecord, overrides: dict[str, float]) -> CheckResult:
    """reference_drift of ``run`` against the fp32 CPU ``ref``: pooled cosine per text, per-layer detail."""
    tol = tl.tolerance_for("reference_drift", run.precision, overrides)
    pooled, real_cos, pad_cos = [], [], []
    for i in range(len(run.refs)):
        a, b = ref.refs[i], run.refs[i]
        pooled.append(ck.cosine(a[-1].astype(np.float64).mean(0), b[-1].astype(np.float64).mean(0)))
        real_cos.append(_layer_cos(a, b))
        if ref.padded[i] is not None and run.padded[i] is not None:
            n = len(run.seqs.ids[i])
            pad_cos.append(_layer_cos([h[n:] for h in ref.padded[i]], [h[n:] for h in run.padded[i]]))
    pooled_arr = np.nan_to_num(np.array(pooled), nan=-1.0)
    at = int(pooled_arr.argmin())
    value = float(pooled_arr[at])
    passed = value >= tol.cos
    real = np.mean(real_cos, 0) if real_cos else []
    pads = np.mean(pad_cos, 0) if pad_cos else []
    detail = (f"against {ref.label} [{ref.provider}]: worst pooled cos {value:.6f} on "
              f"{run.seqs.name(at)} ({'within' if passed else 'beyond'} min {tol.cos:g} for "
              f"{tl.precision_class(run.precision)}); mean token cos per layer 0..L: real "
              f"{_series(real)}; pads {_series(pads) if len(pads) else 'n/a'}.")
    if not passed:
        detail += " Likely cause: the precision's own error; compare against DESIGN.md's measured values."
    return CheckResult(run.label, "reference_drift", ERROR, passed, value, tol.cos, detail)


def _series(values) -> str:
    return "/".join(f"{v:.4f}" for v in values)


def reference_of(records: list[RunRecord]) -> RunRecord | None:
    """The fp32 CPU run, else the first fp32 run; None when there is none."""
    fp32 = [r for r in records if tl.precision_class(r.precision) == "fp32"]
    cpu = [r for r in fp32 if r.provider.lower() in ("cpu", "cpuexecutionprovider")]
    return (cpu or fp32 or [None])[0]


def drift_checks(records: list[RunRecord], overrides: dict[str, float]) -> list[CheckResult]:
    if len(records) < 2:
        return []
    ref = reference_of(records)
    if ref is None:
        log.warning("reference_drift skipped: no fp32 model among those audited")
        return []
    out = []
    for run in records:
        if run is ref:
            continue
        if not run.seqs.same_tokens(ref.seqs) or run.max_len != ref.max_len or \
                len(run.refs[0]) != len(ref.refs[0]) or run.refs[0][0].shape[-1] != ref.refs[0][0].shape[-1]:
            log.warning("reference_drift: %s is not comparable with %s (tokens, layers or width differ)",
                        run.label, ref.label)
            continue
        out.append(drift(ref, run, overrides))
    return out


# --------------------------------------------------------------------------- entry point


def _mask_names(encoder) -> list[str]:
    return [s.name for s in encoder.graph.inputs if s.role == "attention_mask"]


def _max_len(encoder, max_length: int | None) -> int:
    """``max_length`` (default 128), or the model's position count when fewer."""
    limit = encoder.graph.max_positions
    wanted = DEFAULT_MAX_LENGTH if max_length is None else int(max_length)
    if limit is not None and wanted > int(limit):
        if max_length is not None:
            raise BadInput(f"--max-length {wanted} is beyond {encoder.label}'s {limit} position embeddings")
        return int(limit)
    return wanted


def _effective_precision(ref, findings: Findings, model) -> str:
    """A graph holding quantization ops is held to int8 tolerances, whatever its label says."""
    from padlens.inspector.resolve import guess_precision

    if tl.precision_class(ref.precision) == "fp32" and ref.precision in ("fp32", "unknown"):
        guessed = guess_precision(model)
        if tl.precision_class(guessed) == "int8":
            return guessed
    return ref.precision


def audit_run(encoder, texts: list[str], max_length: int | None, provider: str, label: str,
              overrides: dict[str, float], findings: Findings, side: str = "right",
              seed: int = 0) -> tuple[list[CheckResult], RunRecord]:
    """The runtime checks of one model on one provider, and the record drift needs."""
    max_len = _max_len(encoder, max_length)
    seqs = tokenize(encoder, texts, max_len)
    probe = Probe(encoder, seqs, max_len, side)
    precision = _effective_precision(encoder.ref, findings, encoder.graph.model)
    findings.has_positions_input = any(s.role == "position_ids" for s in encoder.graph.inputs)
    auditor = Auditor(probe, label, precision, overrides, findings, seed)
    results = auditor.run_all()
    record = _record(probe, label, precision, provider)
    record.pad_drift = auditor.drift
    return results, record


def audit(models: Sequence, texts: Sequence[str] | None = None, texts_file=None, tokenizer=None,
          max_length: int | None = None, providers: Sequence[str] = ("cpu",),
          tolerances: dict[str, float] | None = None, allow_fallback: bool = False,
          threads: int | None = None, layers: list[str] | None = None, padding_side: str = "right",
          limit: int | None = None, seed: int = 0, progress=None) -> AuditResult:
    """Audit ``models`` (paths or ModelRefs): every check, per model and provider.

    ``progress`` (e.g. ``padlens.progress.ProgressBar``) is called with the number of
    (model, provider) runs audited so far.

    Texts: ``texts`` and ``texts_file``, else the first ``DEFAULT_TEXTS`` lines of the
    built-in corpus. ``max_length`` defaults to 128, or the model's positions when fewer. Each text's unpadded reference is computed once per run and shared
    by every check; reference_drift compares runs against the fp32 CPU one.
    """
    from padlens.inspector.encoder import Encoder
    from padlens.inspector.resolve import ModelRef, resolve_models
    from padlens.inspector.texts import read_texts

    overrides = tl.validate(tolerances)
    if padding_side not in ("right", "left"):
        raise BadInput(f"padding side must be right or left, got {padding_side!r}")
    if not providers:
        raise BadInput("no provider given")
    given = texts or texts_file is not None
    texts = read_texts(texts, texts_file, limit if given else (limit or DEFAULT_TEXTS))
    refs = [m for m in models if isinstance(m, ModelRef)]
    paths = [m for m in models if not isinstance(m, ModelRef)]
    refs += resolve_models(paths, tokenizer) if paths else []
    results, records = [], []
    for ref in refs:
        for k, provider in enumerate(providers):
            encoder = Encoder.open(ref, providers=(provider,), allow_fallback=allow_fallback,
                                   threads=threads, layers=layers)
            label = ref.label if len(providers) == 1 else f"{ref.label} [{provider}]"
            graph_results, findings = graph_checks(label, encoder.graph.model, _mask_names(encoder))
            run_results, record = audit_run(encoder, texts, max_length, provider, label, overrides,
                                            findings, padding_side, seed)
            results += run_results + graph_results
            records.append(record)
            if progress is not None:
                progress(len(records))
            del encoder
    results += drift_checks(records, overrides)
    out = _assemble(results)
    out.pad_drift = [point for record in records for point in record.pad_drift]
    return out


def _assemble(results: list[CheckResult]) -> AuditResult:
    models = list(dict.fromkeys(r.model for r in results))
    results.sort(key=lambda r: (models.index(r.model), ORDER.index(r.name)))
    return AuditResult(all(r.passed for r in results if r.severity == ERROR), results)
