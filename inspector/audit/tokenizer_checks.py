"""Checks on the tokenizer settings a folder ships: what production runtimes apply, where padlens sets its own.

fastembed, TEI and transformers.js apply tokenizer.json's own ``padding`` and ``truncation`` blocks and
tokenizer_config.json as they are; padlens pads and truncates its own way, so it measures the model
right while the folder makes a runtime feed it wrong. Each check reads ``Facts.shipped``
(``padlens.inspector.inputs.tokenize.ShippedSettings``) and the graph's position table; it is not
applicable, with the reason, where the folder ships no such setting.
"""
from __future__ import annotations

from padlens.inspector.audit.results import Verdict

PADDING_LENGTH, TRUNCATION_LENGTH, PADDING_SIDE = "shipped_padding_length", "shipped_truncation_length", \
    "shipped_padding_side"


def _fixed(facts) -> str | None:
    shipped = facts.shipped
    if shipped is None or shipped.padding is None:
        return "the folder's tokenizer.json ships no padding block (runtimes pad as they choose)"
    if shipped.padding != "fixed":
        return "tokenizer.json pads each batch to its longest text (BatchLongest): no fixed length to fit"
    return None


def needs_fixed_padding(facts) -> str | None:
    """Folders whose tokenizer.json pads to a ``Fixed`` length."""
    return _fixed(facts)


def _shipped_limit(shipped) -> tuple[int, str] | None:
    if shipped is None:
        return None
    if shipped.truncation:
        return shipped.truncation, "tokenizer.json truncation max_length"
    if shipped.model_max_length:
        return shipped.model_max_length, "tokenizer_config.json model_max_length"
    return None


def needs_truncation_and_table(facts) -> str | None:
    """Folders that ship a truncation length, for graphs with a position table."""
    if _shipped_limit(facts.shipped) is None:
        return "the folder ships no truncation (tokenizer.json) nor model_max_length (tokenizer_config.json)"
    if not facts.max_positions:
        return "the graph has no position table (relative or rotary positions): no length it cannot take"
    return None


def needs_shipped_side(facts) -> str | None:
    """Last-token models whose folder says a padding side, with pads to test."""
    if facts.shipped is None or facts.shipped.side is None:
        return "the folder says no padding side (tokenizer.json padding direction, tokenizer_config.json padding_side)"
    if not facts.last_token:
        return "not a last-token model (no lasttoken pooling configured, and the graph is not causal)"
    if not facts.texts_with_pads:
        return f"every text fills the padded width ({facts.width} tokens): there are no pads to test"
    return None


def shipped_padding_length(ctx) -> Verdict:
    """A Fixed padding length shorter than the truncation (or with none): rows longer than it stay
    longer, so a runtime's batches of mixed lengths are ragged (fastembed fails on them); and one
    longer than the position table."""
    shipped, positions = ctx.facts.shipped, ctx.facts.max_positions
    fixed, cut = shipped.padding_length, shipped.truncation
    problems = []
    if cut is None or cut > fixed:
        problems.append(f"texts of {fixed + 1} to {cut if cut else 'any number of'} tokens come out longer than "
                        f"the Fixed {fixed} ({'truncation ' + str(cut) if cut else 'no truncation'}): batches "
                        "mixing them with shorter texts are ragged")
    if positions and fixed > positions:
        problems.append(f"the Fixed {fixed} is beyond the graph's {positions} positions")
    detail = (f"tokenizer.json pads to Fixed {fixed}" + (f", truncates at {cut}" if cut else "") + ": "
              + ("; ".join(problems) + ". Set truncation to the Fixed length, or pad BatchLongest."
                 if problems else "every row fits the fixed length."))
    return Verdict(not problems, float(fixed), float(cut if cut else positions or fixed), detail)


def shipped_truncation_length(ctx) -> Verdict:
    """A truncation longer than the position table: longer texts index past it."""
    length, where = _shipped_limit(ctx.facts.shipped)
    positions = ctx.facts.max_positions
    passed = length <= positions
    detail = f"{where} {length} against the graph's {positions} positions"
    detail += (": within the table." if passed else
               f": texts of {positions + 1} to {length} tokens index past the position table (an error or "
               f"garbage states in a runtime that applies it). Truncate at {positions}.")
    return Verdict(passed, float(length), float(positions), detail)


def shipped_padding_side(ctx) -> Verdict:
    """Under the side the folder ships, the naive last-token index ``sum(mask) - 1`` must be the last
    real token (it is not under left padding); and tokenizer.json and tokenizer_config.json must agree."""
    from padlens.inspector.audit.pooling_checks import side_cosines

    shipped = ctx.facts.shipped
    side, where = shipped.side
    picks = side_cosines(ctx.probe, side)
    missed = [i for cos, i, on_pad in picks if on_pad or not cos >= 1 - 1e-6]
    problems = []
    if missed:
        problems.append(f"with {side} padding ({where}) sum(mask) - 1 is not the last real token in {len(missed)} "
                        f"of {len(picks)} padded texts (e.g. {ctx.seqs.name(missed[0])}): a runtime pooling that "
                        "index embeds them wrongly")
    if shipped.padding_side and shipped.config_side and shipped.padding_side != shipped.config_side:
        problems.append(f"tokenizer.json pads on the {shipped.padding_side}, tokenizer_config.json on the "
                        f"{shipped.config_side}: runtimes reading one or the other pad differently")
    detail = ("; ".join(problems) + ". Pad on the right, or pool the last position whose mask is 1."
              if problems else f"with {side} padding ({where}) sum(mask) - 1 is the last real token of every text.")
    return Verdict(not problems, float(len(missed)), 0.0, detail)


CHECKS = {PADDING_LENGTH: shipped_padding_length, TRUNCATION_LENGTH: shipped_truncation_length,
          PADDING_SIDE: shipped_padding_side}
