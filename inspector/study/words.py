"""The study's answers in words: every sentence is derived from the numbers of a ModelStudy.

Nothing here measures. A probe *reads* a target when its selectivity (score − control) is at
least ``MIN_SELECTIVITY`` and the lower end of its 95% interval is above 0; everything else is
said as "no better than its control". Change a number, and the sentence changes with it.
"""
from __future__ import annotations

from padlens.inspector.report.fmt import finite, fmt_num

MIN_SELECTIVITY = 0.2
"""Selectivity (in the metric's units) a probe needs before a sentence says a state reads a target."""
ALIKE, UNLIKE = 0.7, 0.3
"""pad–pad cosine above ALIKE and pad–word cosine below UNLIKE: "pads look alike and unlike the words"."""
STILL = 0.95
"""pad_anchor_cos at or above this: pad states barely change along positions."""
RECOVERS, MOSTLY = 0.9, 0.5
"""ARI against the topics: "recovers" the topics at RECOVERS, "mostly" at MOSTLY, else "does not"."""
DESCRIBE = {"length": "the text's length", "content": "the text's content (its mean real-token state)",
            "first_token": "the text's first word", "distance": "its distance to the text's last token"}
UNITS = {"r2": "R²", "cosine": "cosine", "accuracy": "accuracy"}


def num(value, digits: int = 2) -> str:
    """A number for a sentence: ``0.94``; ``n/a`` when missing."""
    return fmt_num(value, digits, missing="n/a")


def pct(value) -> str:
    """A share as a percentage: ``12%``, ``0.7%``; ``n/a`` when missing."""
    v = finite(value)
    if v is None:
        return "n/a"
    return f"{100 * v:.1f}%" if 0 < v < 0.1 else f"{100 * v:.0f}%"


# ---------------------------------------------------------------- probes (JSON form)

def probe_of(one, layer: int, target: str, states: str = "pad") -> dict | None:
    """The probe dict of ``one.probe`` at ``layer`` for (target, states), or None."""
    for entry in one.probe.get("layers", []):
        if entry["index"] == layer:
            return next((p for p in entry["probes"] if p["target"] == target and p["states"] == states), None)
    return None


def reads(p: dict | None) -> bool:
    """The probe reads its target: selectivity ≥ MIN_SELECTIVITY and its interval above 0."""
    if not p or p.get("reason"):
        return False
    sel, ci = finite(p.get("selectivity")), p.get("selectivity_ci") or [None, None]
    lo = finite(ci[0])
    return sel is not None and sel >= MIN_SELECTIVITY and (lo is None or lo > 0)


def _layers(one) -> list[int]:
    return [entry["index"] for entry in one.probe.get("layers", [])]


def _scored(p: dict | None) -> str:
    if not p or p.get("reason"):
        return "not applicable" + (f" ({p['reason']})" if p and p.get("reason") else "")
    return f"{UNITS.get(p['metric'], p['metric'])} {num(p['score'])} vs control {num(p['control'])}"


# ---------------------------------------------------------------- question 1

def pad_sentences(one) -> list[str]:
    """What the pads hold: geometry, length, content, first word, content RSA, the layer-0 sanity."""
    out = [geometry_sentence(one)]
    for target in ("length", "content", "first_token"):
        out.append(target_sentence(one, target))
    rsa = finite(one.pad_content_rsa)
    if rsa is not None:
        follow = "follow" if rsa >= 0.5 else "weakly follow" if rsa >= 0.2 else "do not follow"
        out.append(f"Across text pairs, the similarities of the texts' mean pad states {follow} the similarities "
                   f"of their real tokens (Spearman {num(rsa)}, last layer).")
    out.append(sanity_sentence(one))
    return out


def geometry_sentence(one) -> str:
    """Pad–pad and pad–word cosines from the embeddings to the last layer, and the anchor drift."""
    if not one.geometry:
        return "No layer was measured."
    first, last = one.geometry[0], one.geometry[-1]
    pp, pr = finite(last.pad_pad_cos), finite(last.pad_real_cos)
    if pp is not None and pr is not None and pp > ALIKE and pr < UNLIKE:
        head = "Pads look alike and unlike the words"
    elif pp is not None and pr is not None and pp > pr:
        head = "Pads resemble each other more than the words"
    else:
        head = "Pads are as close to the words as to each other"
    anchor = finite(last.pad_anchor_cos)
    drift = ("" if anchor is None else
             f"; along positions they barely change (anchor cosine {num(anchor)})" if anchor >= STILL else
             f"; along positions they drift away from the pad next to the text (anchor cosine {num(anchor)})")
    return (f"{head}: pad–pad cosine {num(first.pad_pad_cos)} at the embeddings and {num(last.pad_pad_cos)} "
            f"at the last layer (layer {last.index}), pad–word cosine {num(first.pad_real_cos)} → "
            f"{num(last.pad_real_cos)}{drift}.")


def target_sentence(one, target: str) -> str:
    """Whether one pad state reads ``target``, from which layer on, and beside a real token."""
    layers = [i for i in _layers(one) if i > 0]
    if not layers:
        return f"{DESCRIBE[target].capitalize()}: no encoder layer was probed."
    reading = [i for i in layers if reads(probe_of(one, i, target))]
    last = layers[-1]
    p_last, r_last = probe_of(one, last, target), probe_of(one, last, target, "real")
    real = f"; one real token: {_scored(r_last)}" if r_last and not r_last.get("reason") else ""
    if not reading:
        best = max((probe_of(one, i, target) for i in layers),
                   key=lambda p: finite(p.get("score")) if p and finite(p.get("score")) is not None else -1e9)
        where = next((i for i in layers if probe_of(one, i, target) is best), last)
        return (f"At no layer does one pad state read {DESCRIBE[target]} better than its control "
                f"(best: {_scored(best)} at layer {where}){real}.")
    start = next(i for i in layers if all(j in reading for j in layers if j >= i)) if reading[-1] == last else None
    if start is None:
        return (f"One pad state reads {DESCRIBE[target]} at layer(s) {', '.join(map(str, reading))} but not at "
                f"the last layer ({_scored(p_last)}){real}.")
    p_start = probe_of(one, start, target)
    span = (f"from layer {start} on" if start < last else f"at the last layer (layer {last}) only")
    at = (f"{_scored(p_start)} at layer {start}, {_scored(p_last)} at layer {last}" if start < last
          else _scored(p_last))
    compare = ""
    if r_last and not r_last.get("reason") and finite(r_last.get("score")) is not None:
        better = finite(p_last.get("score")) is not None and p_last["score"] > r_last["score"]
        compare = f"; better than one real token does ({num(r_last['score'])})" if better else \
            f"; less well than one real token does ({num(r_last['score'])})"
    return f"{span.capitalize()}, one pad state reads {DESCRIBE[target]}: {at}{compare}."


def sanity_sentence(one) -> str:
    """Layer 0 (the embedding output, before attention): a pad state must read nothing of its text."""
    probes = {t: probe_of(one, 0, t) for t in ("length", "content", "first_token")}
    if not any(p and not p.get("reason") for p in probes.values()):
        return "Sanity check not applicable: layer 0 was not probed."
    leaks = [t for t, p in probes.items() if reads(p)]
    values = "; ".join(f"{t.replace('_', ' ')} {_scored(p)}" for t, p in probes.items() if p and not p.get("reason"))
    if not leaks:
        return (f"Sanity check passed: at layer 0 (the embedding output, before any attention) one pad state "
                f"reads nothing of its text ({values}), as it must; what later layers read came through attention.")
    return (f"Sanity check FAILED: at layer 0, before any attention, one pad state already reads "
            f"{', '.join(DESCRIBE[t] for t in leaks)} ({values}); the probes see something besides attention "
            "(position, a shared window), so read the later layers with care.")


# ---------------------------------------------------------------- question 2

def quality(ari) -> str:
    """``recovers`` / ``mostly recovers`` / ``does not recover`` the topics, from the ARI."""
    v = finite(ari)
    if v is None:
        return "cannot be scored against"
    return "recovers" if v >= RECOVERS else "mostly recovers" if v >= MOSTLY else "does not recover"


def cluster_sentences(one) -> list[str]:
    """What pads do to k-means clusters: the reference, pads left in, own pooling, files, batch order."""
    if not one.clusters:
        return ["No clustering was run."]
    ref = one.clusters[0]
    out = [f"Masked mean pooling (the reference) {quality(ref.ari_topics)} the topics: ARI {num(ref.ari_topics)} "
           "against the topic labels."]
    what = {"b": "Leaving the pads in the mean (the common mistake)", "c": None, "d": None}
    for row in one.clusters[1:]:
        if row.variant == "e":
            continue
        subject = what.get(row.variant) or (f"The model's own pooling ({one.pooling})" if row.variant == "c"
                                            else f"{row.model}")
        out.append(change_sentence(subject, row, ref))
    out.append(order_sentence(one))
    return out


def change_sentence(subject: str, row, ref) -> str:
    """How a variant's clusters differ from the reference's, in one sentence."""
    if finite(row.moved) == 0 and finite(row.ari_reference) == 1.0:
        cos = f" although it moves the embeddings (least cosine {num(row.pooled_cos_min, 3)})" \
            if finite(row.pooled_cos_min) is not None and row.pooled_cos_min < 0.9999 else ""
        return f"{subject} changes no cluster (ARI 1.00 against the reference){cos}."
    delta = (finite(row.ari_topics) or 0.0) - (finite(ref.ari_topics) or 0.0)
    verb = "keeps" if abs(delta) < 0.005 else "raises" if delta > 0 else "lowers"
    return (f"{subject} moves {pct(row.moved)} of the texts to another cluster (ARI {num(row.ari_reference)} "
            f"against the reference clusters) and {verb} the ARI against the topics "
            f"{'at' if verb == 'keeps' else 'to'} {num(row.ari_topics)} (reference {num(ref.ari_topics)}); "
            f"k-NN overlap {num(row.knn_overlap)} (k={row.knn_k}), similarity Spearman {num(row.similarity_spearman)}.")


def order_sentence(one) -> str:
    """Whether every file embeds the same in another batch order, else what k-means makes of it."""
    moving = [o for o in one.orders if not o.invariant]
    if not moving:
        least = min((o.pooled_cos_min for o in one.orders), default=None)
        return (f"Every file embeds the corpus the same in another batch order (least cosine between the two "
                f"orders {num(least, 6)}), so batch order cannot move a cluster.")
    parts = []
    for order in moving:
        row = next((r for r in one.clusters if r.variant == "e" and r.model == order.model), None)
        effect = "" if row is None else (
            f": k-means moves {pct(row.moved)} of the texts (ARI {num(row.ari_reference)} against its own clusters "
            f"in the first order)")
        parts.append(f"{order.model} embeds differently in another batch order (least cosine "
                     f"{num(order.pooled_cos_min, 4)}){effect}")
    return "; ".join(parts) + "."


def across_sentences(result) -> list[str]:
    """Each further model's clusters against the first model's (different models, same corpus)."""
    if not result.across:
        return []
    first = result.models[0]
    return [f"{row.model} and {first.label} group the corpus alike with ARI {num(row.ari_reference)} "
            f"({pct(row.moved)} of the texts grouped differently; against the topics {num(row.ari_topics)} vs "
            f"{num(first.clusters[0].ari_topics)}); k-NN overlap {num(row.knn_overlap)}, similarity "
            f"Spearman {num(row.similarity_spearman)}." for row in result.across]
