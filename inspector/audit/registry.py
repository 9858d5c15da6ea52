"""Every audit check described once: name, severity, family, when it applies, what fails it.

``padlens audit --help``, the check table of docs/audit.md and each result's ``severity`` come from
here. ``python -m padlens.inspector.audit.registry --markdown`` prints that table.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from padlens.inspector.audit import tokenizer_checks as T
from padlens.inspector.audit.results import ERROR, WARNING

if TYPE_CHECKING:
    from padlens.inspector.audit.facts import Facts


#: check families: runtime comparisons of one run, graph reads, comparisons between runs
INVARIANCE, GRAPH, DRIFT = "invariance", "graph", "drift"
#: the tokenizer settings the model's folder ships (``tokenizer_checks``)
TOKENIZER = "tokenizer"


def always(facts: Facts) -> str | None:
    """Applies to every model."""
    return None


def needs_pads(facts: Facts) -> str | None:
    """Not applicable when no audited text has a pad."""
    if facts.texts_with_pads:
        return None
    return f"every text fills the padded width ({facts.width} tokens): there are no pads to test"


def needs_neighbours(facts: Facts) -> str | None:
    """Not applicable when every text runs alone (batch fixed at 1 in the graph, or --batch-size 1)."""
    if facts.fixed_batch:
        return f"the graph fixes the batch at 1 ({facts.fixed_batch}): every text runs alone"
    if facts.batch_size == 1:
        return "batch size 1: every text runs alone, so it never has a batch neighbour"
    return None


def needs_positions(facts: Facts) -> str | None:
    """Graphs fed position_ids, or counting positions from input ids, with pads to test."""
    if not facts.has_positions_input and not facts.positions_from_ids:
        return ("the graph takes no position_ids and does not count positions from input ids: "
                "its positions cannot follow (or miss) the mask")
    return needs_pads(facts)


def needs_last_token(facts: Facts) -> str | None:
    """Last-token models (lasttoken pooling, or a causal graph), with pads to test."""
    if not facts.last_token:
        return "not a last-token model (no lasttoken pooling configured, and the graph is not causal)"
    return needs_pads(facts)


@dataclass(frozen=True)
class CheckSpec:
    """One audit check.

    Attributes:
        name: the check's name in results, JSON, JUnit and ``--tolerance``.
        severity: ``error`` fails the audit, ``warning`` is reported only.
        family: ``invariance`` (a model against itself), ``graph`` (read from the ONNX graph)
            or ``drift`` (a run against the fp32 CPU run).
        doc: what fails it, in one line (the docs/audit.md table and ``--help``).
        applies: facts -> None when the check can say something, else the reason it cannot.
    """

    name: str
    severity: str
    family: str
    doc: str
    applies: Callable[[Facts], str | None] = always


SPECS: tuple[CheckSpec, ...] = (
    CheckSpec("padding_invariance", ERROR, INVARIANCE,
              "real tokens (any layer) or the pooled embedding move when the text is padded +1, +8, "
              "to max length", needs_pads),
    CheckSpec("batch_neighbour_invariance", ERROR, INVARIANCE,
              "they move when batched beside a short and a max-length neighbour (`--batch-size N`: "
              "in a batch of N rows)", needs_neighbours),
    CheckSpec("mask_honoured", ERROR, INVARIANCE,
              "(a) random ids under the pads move real tokens; (b) an all-ones mask changes nothing "
              "(mask ignored; not applicable to a causal model padded on the right, whose real tokens "
              "never see later pads)", needs_pads),
    CheckSpec("fully_masked_row", ERROR, INVARIANCE,
              "a row with mask all zeros gives NaN/Inf, or changes the other rows", needs_neighbours),
    CheckSpec("position_ids_follow_mask", WARNING, INVARIANCE,
              "graphs fed `position_ids`: `arange` positions instead of mask-derived ones move real tokens "
              "under this padding side (left padding); graphs counting positions from `input_ids != "
              "padding_idx` (RoBERTa, XLM-R): random ids under the pads shift real tokens' positions",
              needs_positions),
    CheckSpec("last_token_pooling", WARNING, INVARIANCE,
              "last-token models: the naive index `sum(mask) - 1` picks another state than the last real "
              "token under this padding side (pooled cosine; both sides reported)", needs_last_token),
    CheckSpec("left_padding", WARNING, INVARIANCE,
              "left- vs right-padded real tokens differ (expected for absolute positions)", needs_pads),
    CheckSpec("mask_honoured_other_side", WARNING, INVARIANCE,
              "random ids under the pads move real tokens when padding is on the *other* side (e.g. ONNX "
              "Runtime's fused `EmbedLayerNormalization` turns the mask into lengths, which assumes right "
              "padding: an ORT-optimized fp16 MiniLM fails it at cosine 0.14)", needs_pads),
    CheckSpec("dynamic_activation_quantization", WARNING, GRAPH,
              "DynamicQuantizeLinear / DynamicQuantizeMatMul / MatMulInteger fed by them (graph read)"),
    CheckSpec("mask_path_quantized", ERROR, GRAPH,
              "a QuantizeLinear on a tensor derived from the attention mask (graph read)"),
    CheckSpec(T.PADDING_LENGTH, WARNING, TOKENIZER,
              "the folder's tokenizer.json pads to a `Fixed` length shorter than its truncation (or with none: "
              "ragged batches on mixed lengths), or longer than the position table", T.needs_fixed_padding),
    CheckSpec(T.TRUNCATION_LENGTH, WARNING, TOKENIZER,
              "the folder's truncation (tokenizer.json, else tokenizer_config.json `model_max_length`) is longer "
              "than the graph's position table", T.needs_truncation_and_table),
    CheckSpec(T.PADDING_SIDE, WARNING, TOKENIZER,
              "last-token models: under the padding side the folder ships, `sum(mask) - 1` is not the last real "
              "token; or tokenizer.json and tokenizer_config.json disagree on the side", T.needs_shipped_side),
    CheckSpec("reference_drift", ERROR, DRIFT,
              "pooled cosine against the fp32 CPU run, when several variants or providers are audited"),
)
BY_NAME: dict[str, CheckSpec] = {s.name: s for s in SPECS}
ORDER: list[str] = [s.name for s in SPECS]


def spec(name: str) -> CheckSpec:
    """The spec of check ``name`` (KeyError for an unknown name: a bug, not bad input)."""
    return BY_NAME[name]


def names(family: str | None = None) -> tuple[str, ...]:
    """Every check's name, in report order (only ``family``'s when given)."""
    return tuple(s.name for s in SPECS if family is None or s.family == family)


def markdown() -> str:
    """The table of docs/audit.md: check, severity, what fails it."""
    rows = ["| check | severity | what fails it |", "|---|---|---|"]
    rows += [f"| `{s.name}` | {s.severity} | {s.doc} |" for s in SPECS]
    return "\n".join(rows) + "\n"


def help_text() -> str:
    """One line per check for ``padlens audit --help`` (click keeps ``\\b`` blocks as written)."""
    width = max(len(s.name) for s in SPECS)
    lines = [f"  {s.name:<{width}}  {s.severity}" for s in SPECS]
    return "\b\nChecks (docs/audit.md says what fails each):\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """`python -m padlens.inspector.audit.registry --markdown`: print docs/audit.md's check table."""
    args = sys.argv[1:] if argv is None else argv
    if args != ["--markdown"]:
        print("usage: python -m padlens.inspector.audit.registry --markdown", file=sys.stderr)
        return 2
    sys.stdout.write(markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
