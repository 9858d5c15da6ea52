"""What the checks of one run may read: facts about the graph and the run, gathered once, frozen.

Facts are computed before any check runs (graph reads, and one measurement: does an all-ones
mask move real tokens?); checks read them and the probe's measurements, and never set state
that another check reads, so their order does not matter.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace

from padlens.inspector.audit import graph_checks as G
from padlens.inspector.audit import tolerances as tl
from padlens.inspector.audit.cache import Probe
from padlens.inspector.audit.compare import Case, compare_states
from padlens.inspector.audit.invariance import measure_padding
from padlens.inspector.audit.variants import Layout, with_full_mask


@dataclass(frozen=True)
class Facts:
    """Facts about one model run, gathered before any check.

    Attributes:
        precision: the precision its tolerances are chosen for (a graph holding quantization
            ops is held to int8 tolerances whatever its label says).
        mask_inputs: the graph inputs fed the attention mask.
        dynamic: dynamic-quantization nodes.
        mask_quantized: quantized mask-derived tensors.
        mask_as_lengths: fused nodes (EmbedLayerNormalization) that turn the mask into
            sequence lengths, which assumes right padding.
        has_positions_input: the graph takes position_ids.
        mask_effect: smallest relative move of a text's real tokens when the mask is all ones
            (NaN when no text has pads).
        mask_effect_text: the text it was measured on, None when none has pads.
        width: what texts are padded to (max length, or the longest text with pad-to longest).
        texts_with_pads: how many texts are shorter than ``width``.
        batch_size: rows of a neighbour batch (None: a short and a long neighbour).
        side: the side the variants are padded on.
        causal: why the model is causal (real tokens see only earlier positions), "" when not.
        positions_from_ids: how the graph counts positions from input ids (RoBERTa, XLM-R), or "".
        fixed_batch: why the graph runs one text at a time (a batch fixed inside it), or "".
        last_token: why the model pools its last token (its pooling config, or a causal graph), or "".
        shipped: the padding and truncation the model's folder ships (``tokenize.ShippedSettings``), None
            when unknown; max_positions: the tokens the graph's position table takes (None: unbounded).
    """

    precision: str
    mask_inputs: tuple[str, ...]
    dynamic: tuple[str, ...]
    mask_quantized: tuple[str, ...]
    mask_as_lengths: tuple[str, ...]
    has_positions_input: bool
    mask_effect: float
    mask_effect_text: int | None
    width: int
    texts_with_pads: int
    batch_size: int | None
    side: str = "right"
    causal: str = ""
    positions_from_ids: str = ""
    fixed_batch: str = ""
    last_token: str = ""
    shipped: object = None
    max_positions: int | None = None

    @property
    def mask_probe_blind(self) -> bool:
        """A causal model padded on the right: real tokens never see the later pads, so an
        all-ones mask cannot move them (the probe says nothing about the mask)."""
        return bool(self.causal) and self.side == "right"

    @property
    def mask_ignored(self) -> bool:
        """An all-ones mask changed nothing: the graph ignores the mask (or has it baked in)."""
        return (self.mask_effect_text is not None and self.mask_effect < tl.MASK_EFFECT
                and not self.mask_probe_blind)


def effective_precision(precision: str, model) -> str:
    """A graph holding quantization ops is held to its quantized class's tolerances, whatever its label says."""
    from padlens.inspector.inputs.resolve import guess_precision

    if precision in ("fp32", "unknown"):
        guessed = guess_precision(model)
        if tl.precision_class(guessed) in ("int8", "int4"):
            return guessed
    return precision


def measure_mask_effect(probe: Probe) -> tuple[float, int | None]:
    """(smallest relative move of real tokens when the mask is all ones, text index)."""
    effects = []
    texts = [i for i in range(probe.count) if probe.has_pads(i)]
    ones = [with_full_mask(probe.rows([i], probe.width)) for i in texts]
    for i, row in zip(texts, probe.run_alone(ones, texts)):
        d = compare_states(probe.baseline(i), row.real)
        effects.append((d.max_delta if d.nonfinite_layer is None else math.inf, i))
    return min(effects) if effects else (math.nan, None)


def graph_facts(encoder, layout: Layout) -> Facts:
    """The facts read from the graph and the run's layout, before anything runs (the
    all-ones mask's effect is NaN, on no text, until ``measured``)."""
    model = encoder.graph.model
    masks = tuple(s.name for s in encoder.graph.inputs if s.role == "attention_mask")
    return Facts(
        precision=effective_precision(encoder.ref.precision, model), mask_inputs=masks,
        dynamic=tuple(G.find_dynamic_quantization(model)),
        mask_quantized=tuple(G.find_quantized_mask_path(model, masks)),
        mask_as_lengths=tuple(G.mask_index_nodes(model)),
        has_positions_input=any(s.role == "position_ids" for s in encoder.graph.inputs),
        mask_effect=math.nan, mask_effect_text=None, width=layout.width,
        texts_with_pads=sum(layout.has_pads(i) for i in range(layout.count)), batch_size=layout.batch_size,
        **structure_facts(encoder, layout.side))


def measured(facts: Facts, probe: Probe) -> Facts:
    """``facts`` with the one measurement: does an all-ones mask move real tokens?"""
    effect, at = measure_mask_effect(probe)
    return replace(facts, mask_effect=effect, mask_effect_text=at)


def structure_facts(encoder, side: str) -> dict:
    """The facts read from the graph's structure and the model's pooling config."""
    s = encoder.graph.structure
    batch = s.fixed_batch_evidence if s.fixed_batch == 1 else ""
    return {"side": side, "causal": s.causal_evidence, "positions_from_ids": s.positions_from_ids,
            "fixed_batch": batch, "last_token": last_token_reason(encoder),
            "shipped": getattr(encoder.tokenizer, "shipped", None), "max_positions": encoder.graph.max_positions}


def last_token_reason(encoder) -> str:
    """Why ``encoder`` pools its last token: its folder, manifest or recipe says ``lasttoken``,
    or the graph is causal (decoder embedders pool the last token); "" otherwise."""
    from padlens.errors import PadlensError
    from padlens.inspector.stats.pooling import pooling_config

    try:
        config = pooling_config(encoder.ref.path, encoder.ref.manifest)
    except PadlensError:
        config = None
    if config is not None and config.mode == "lasttoken":
        return f"lasttoken pooling ({config.source})"
    if config is not None and config.source != "default":
        return ""  # its folder or manifest says another pooling
    if encoder.graph.causal:
        return f"a causal model ({encoder.graph.structure.causal_evidence}): decoder embedders pool the last token"
    return ""


class RunContext:
    """What a check of one run reads: the probe, the facts, the tolerances; measurements that
    several checks share are computed on first use and cached (each is a pure function of the
    probe, so the order checks run in does not matter)."""

    def __init__(self, probe: Probe, facts: Facts, label: str, overrides: dict[str, float], seed: int = 0):
        self.probe, self.facts, self.label = probe, facts, label
        self.overrides, self.seed = overrides, seed

    @property
    def seqs(self):
        return self.probe.seqs

    def tol(self, name: str) -> tl.Tolerance:
        return tl.tolerance_for(name, self.facts.precision, self.overrides)

    @functools.cached_property
    def padding_cases(self) -> list[Case]:
        """padding_invariance's measurements (also the report's drift points)."""
        return measure_padding(self.probe)
