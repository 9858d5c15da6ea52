"""study.md, study.json and study.html from a StudyResult: the answers first, then tables, then figures."""
from __future__ import annotations

import datetime as _dt
import json
import logging
from pathlib import Path

from padlens import __version__
from padlens.inspector.report.fmt import fmt_num
from padlens.inspector.study.results import VARIANTS, StudyResult
from padlens.inspector.study.words import pct, probe_of

log = logging.getLogger(__name__)

FILES = ("study.md", "study.json", "study.html")
QUESTIONS = ("What do the pad positions hold?", "What do pads do to k-means clusters?")
GEOMETRY_HEAD = ("layer", "pad–pad cos", "pad–word cos", "anchor cos", "pad ‖h‖", "word ‖h‖",
                 "length R² pad (ctrl)", "length R² word", "content cos pad (ctrl)", "content cos word",
                 "first word acc pad (ctrl)", "first word acc word")
CLUSTER_HEAD = ("", "clustered", "ARI vs topics", "ARI vs reference", "moved", "k-NN overlap",
                "similarity Spearman", "least cos")


def _n(value, digits: int = 3) -> str:
    return fmt_num(value, digits)


def _pc(p: dict | None) -> str:
    if not p or p.get("reason"):
        return "n/a"
    return f"{_n(p['score'])} ({_n(p['control'])})"


def _p(p: dict | None) -> str:
    return "n/a" if not p or p.get("reason") else _n(p["score"])


def geometry_rows(one) -> list[list[str]]:
    """One row per layer: the pad geometry, then pad and word probes (score and control)."""
    rows = []
    for g in one.geometry:
        cells = [("0 emb" if g.index == 0 else str(g.index)), _n(g.pad_pad_cos), _n(g.pad_real_cos),
                 _n(g.pad_anchor_cos), fmt_num(g.pad_norm, 2), fmt_num(g.real_norm, 2)]
        for target in ("length", "content", "first_token"):
            cells += [_pc(probe_of(one, g.index, target)), _p(probe_of(one, g.index, target, "real"))]
        rows.append(cells)
    return rows


def cluster_rows(rows) -> list[list[str]]:
    """One row per clustering: variant, what, ARIs, moved share, k-NN overlap, Spearman, least cosine."""
    return [[f"({r.variant})", r.name, _n(r.ari_topics), _n(r.ari_reference), pct(r.moved) if r.moved is not None
             else "-", _n(r.knn_overlap), _n(r.similarity_spearman), _n(r.pooled_cos_min, 4)] for r in rows]


def _md_table(head, rows) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    return lines + ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]


def answers_markdown(result: StudyResult) -> list[str]:
    """The two answers, per model, as markdown lines (what the command prints)."""
    corpus, lines = result.corpus, []
    for number, question in enumerate(QUESTIONS, 1):
        lines += [f"## {number}. {question}", ""]
        for one in result.models:
            said = one.pads if number == 1 else one.effects
            lines += [f"**{one.label}** ({one.precision}, {one.pooling} pooling, {one.padding_side} padding to "
                      f"{one.max_length} tokens, {one.texts_with_pads} of {corpus['texts']} texts with pads):", ""]
            lines += [f"- {s}" for s in said] + [""]
        if number == 2 and result.across_words:
            lines += ["Across models:", ""] + [f"- {s}" for s in result.across_words] + [""]
    return lines


def markdown(result: StudyResult) -> str:
    """study.md: the two answers, then per model the tables behind them, then how it was run."""
    corpus = result.corpus
    topics = ", ".join(f"{name} {n}" for name, n in corpus["topics"].items())
    lines = [f"# padlens study: {', '.join(m.label for m in result.models)}", "",
             f"Corpus: {corpus['name']}, {corpus['texts']} texts in {len(corpus['topics'])} topics ({topics}). "
             f"k-means with k = {result.settings['k']}, {result.settings['kmeans_restarts']} restarts, seed "
             f"{result.settings['seed']}, on L2-normalised embeddings; batches of {result.settings['batch_size']} "
             "padded to the max length.", ""]
    lines += answers_markdown(result)
    for one in result.models:
        lines += [f"## {one.label}: the numbers", "", "### Pads, layer by layer", "",
                  "Pad geometry (`padlens inspect`) and linear probes of ONE state (`padlens probe`: score on "
                  "held-out texts, control = the same probe on shuffled targets in brackets).", ""]
        lines += _md_table(GEOMETRY_HEAD, geometry_rows(one)) + [""]
        damage = one.pooling_damage
        lines += [f"Pooling damage (last layer): cos(masked mean, mean with pads) {_n(damage.get('masked_unmasked_cos'))}"
                  f" (per text {_n(damage.get('masked_unmasked_cos_min'))} – {_n(damage.get('masked_unmasked_cos_max'))}"
                  f"); pad_content_rsa {_n(one.pad_content_rsa)}.", "", "### k-means clusters", ""]
        lines += _md_table(CLUSTER_HEAD, cluster_rows(one.clusters)) + [""]
        lines += ["Batch order: " + "; ".join(f"{o.model} least cos {fmt_num(o.pooled_cos_min, 6)}"
                                               f" ({'invariant' if o.invariant else 'moves'})" for o in one.orders), ""]
        lines += [f"- note: {w}" for w in one.warnings] + ([""] if one.warnings else [])
    if result.across:
        lines += ["## Across models", ""] + _md_table(CLUSTER_HEAD, cluster_rows(result.across)) + [""]
    lines += ["## Key", "", *(f"- ({k}) {v}" for k, v in VARIANTS.items()),
              "- ARI: adjusted Rand index (1 = the same grouping, ~0 = chance). moved: share of texts in another "
              "cluster than the reference's, clusters matched one to one. k-NN overlap: share of each text's "
              f"{result.settings['knn_k']} nearest neighbours kept. least cos: the least cosine between a text's "
              "two embeddings.", "",
              f"padlens {__version__}; timings (s): " + ", ".join(
                  f"{m.label} " + " ".join(f"{k} {v:.1f}" for k, v in m.timings.items()) for m in result.models)
              + f"; total {result.timings.get('total', 0):.1f}.", ""]
    return "\n".join(lines)


def _html_table(head, rows, cls: str) -> str:
    from padlens.inspector.report.html import esc

    body = "".join("<tr>" + "".join(f"<td class='num'>{esc(c)}</td>" if i else f"<td>{esc(c)}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table class='{cls}'><tr>{''.join(f'<th>{esc(h)}</th>' for h in head)}</tr>{body}</table>"


def build_html(result: StudyResult) -> str:
    """study.html: the answers first (the report's look), then the tables and the figures."""
    from padlens.inspector.probe.plots import run_figure
    from padlens.inspector.report import plots as P
    from padlens.inspector.report.html import CSS, esc, plot_html

    title = f"padlens study: {', '.join(m.label for m in result.models)}"
    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    parts = ["<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
             f"<title>{esc(title)}</title><style>{CSS}</style></head><body>",
             f"<h1>{esc(title)}</h1><p class='meta'>padlens {esc(__version__)} · {stamp} · corpus "
             f"{esc(result.corpus['name'])}, {result.corpus['texts']} texts, k = {result.settings['k']}</p>"]
    for number, question in enumerate(QUESTIONS, 1):
        parts.append(f"<h2 id='answer-{number}'>{number}. {esc(question)}</h2>")
        for one in result.models:
            said = one.pads if number == 1 else one.effects
            parts.append(f"<p><b>{esc(one.label)}</b></p><ul class='answers'>"
                         + "".join(f"<li>{esc(s)}</li>" for s in said) + "</ul>")
        if number == 2 and result.across_words:
            parts.append("<ul class='answers'>" + "".join(f"<li>{esc(s)}</li>" for s in result.across_words) + "</ul>")
    for one in result.models:
        parts += [f"<h2>{esc(one.label)}: k-means clusters</h2>", _html_table(CLUSTER_HEAD, cluster_rows(one.clusters),
                                                                            "clusters"),
                  f"<h2>{esc(one.label)}: pads, layer by layer</h2>", _html_table(GEOMETRY_HEAD, geometry_rows(one),
                                                                                "geometry")]
        parts += [f"<p class='note'>{esc(w)}</p>" for w in one.warnings]
        if one.inspect_run is not None:
            parts.append(plot_html(P.layer_curves([one.inspect_run])))
        if one.probe_run is not None:
            parts.append(plot_html(run_figure(one.probe_run, one.label)))
    if result.across:
        parts += ["<h2>Across models</h2>", _html_table(CLUSTER_HEAD, cluster_rows(result.across), "clusters")]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_study(result: StudyResult, out: str | Path, force: bool = False) -> list[Path]:
    """Write study.md, study.json and study.html into the folder ``out`` (new or empty; ``force``
    replaces it), all or nothing: a temporary folder is moved into place once all three exist."""
    from padlens.fsio import atomic_dir

    html = build_html(result)  # the figures first: a failure here leaves nothing behind
    texts = {"study.md": markdown(result), "study.json": json.dumps(result.to_dict(), indent=2, allow_nan=False) + "\n",
             "study.html": html}
    with atomic_dir(out, force) as tmp:
        for name in FILES:
            (tmp / name).write_text(texts[name], encoding="utf-8")
    log.info("wrote %s", ", ".join(str(Path(out) / n) for n in FILES))
    return [Path(out) / n for n in FILES]
