"""`padlens study`: what the pads hold and what they do to k-means clusters (thin over study())."""
from __future__ import annotations

import click

from padlens.errors import BadInput


@click.command("study")
@click.argument("models", metavar="MODEL...", nargs=-1, required=True)
@click.option("-o", "--out", "out", metavar="DIR", required=True,
              help="Folder for study.md, study.json and study.html (new or empty; --force replaces it).")
@click.option("--corpus", metavar="FILE",
              help="TOPIC<TAB>TEXT lines to cluster and probe. Default: the topic corpus shipped with padlens.")
@click.option("--tokenizer", metavar="PATH", help="Tokenizer folder or tokenizer.json (for a bare .onnx).")
@click.option("--max-length", type=int, metavar="N",
              help="Truncate and pad every text to N tokens. [default: 128, or the model's positions if fewer]")
@click.option("--batch-size", type=int, default=32, show_default=True, metavar="N")
@click.option("--provider", "providers", metavar="NAME", multiple=True, default=("cpu",), show_default=True,
              help="ONNX Runtime execution provider (repeatable).")
@click.option("--allow-fallback", is_flag=True, help="Warn, instead of failing, when ONNX Runtime drops a provider.")
@click.option("--threads", type=int, metavar="N", help="ONNX Runtime intra-op threads (default: ORT's).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of k-means, the probes and the batch order.")
@click.option("--per-text", type=int, default=2, show_default=True, metavar="N",
              help="Pad and real-token states each probe samples per text.")
@click.option("--force", is_flag=True, help="Replace DIR when it is not empty.")
@click.pass_context
def study_cmd(ctx: click.Context, models: tuple[str, ...], out: str, corpus: str | None, tokenizer: str | None,
              max_length: int | None, batch_size: int, providers: tuple[str, ...], allow_fallback: bool,
              threads: int | None, seed: int, per_text: int, force: bool) -> None:
    """What do the [PAD] positions of each MODEL hold, and what do they do to k-means clusters?

    For each MODEL, its reference file (an export dir's fp32, a folder's model.onnx) is
    inspected (pad-pad and pad-word cosines per layer) and probed (can ONE pad state read
    the text's length, content, first word? against shuffled-target controls). Then every
    file embeds a topic corpus and k-means (k = topics, fixed seed) clusters (a) the masked
    mean, (b) the mean with pads left in, (c) the model's own CLS / last-token pooling, (d)
    each other file or MODEL, (e) a file that embeds differently in another batch order.
    Adjusted Rand index against the reference and the topics, texts moved, k-NN overlap,
    similarity Spearman. Writes DIR/study.md, study.json and study.html, all or nothing.
    Needs scikit-learn and matplotlib: pip install 'padlens[probe,report]'.

    \b
    Examples:
      padlens study out/minilm -o study
      padlens study out/minilm out/mpnet -o study --force
      padlens study model.onnx --tokenizer tok/ --corpus topics.tsv -o study
    """
    from padlens.fsio import check_output_dir
    from padlens.inspector.inputs.options import RunOptions
    from padlens.inspector.report.html import check_available
    from padlens.inspector.study.render import answers_markdown, write_study
    from padlens.inspector.study.results import StudyOptions
    from padlens.inspector.study.run import study_with

    if per_text < 1:
        raise BadInput(f"--per-text must be at least 1, got {per_text}")
    options = StudyOptions(RunOptions(max_length=max_length, padding="max_length", batch_size=batch_size,
                                      providers=tuple(providers) or ("cpu",), threads=threads,
                                      allow_fallback=allow_fallback, tokenizer=tokenizer), corpus, seed, per_text)
    check_output_dir(out, force)
    check_available()  # a missing matplotlib is one Error line before any work
    quiet = (ctx.obj or {}).get("quiet", False)
    result = study_with(list(models), options, None if quiet else (lambda line: click.echo(line, err=True)))
    write_study(result, out, force)
    click.echo("\n".join(answers_markdown(result)))
    click.echo(f"wrote {out}/study.md, study.json, study.html")


COMMANDS = [study_cmd]
