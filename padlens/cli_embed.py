"""CLI command `padlens embed`: sentence embeddings to a .npy, without PyTorch."""
from __future__ import annotations

import logging

import click

from padlens.cli_inspect import ENGINE_KEYS, check_output_file, engine_kwargs, engine_options, engine_progress
from padlens.inspector.contract import POOLING_MODES

log = logging.getLogger(__name__)


@click.command("embed")
@click.argument("model", metavar="MODEL")
@click.option("--texts", "texts_file", required=True, metavar="FILE",
              help="Texts: .txt (one per line), .jsonl, .csv or .parquet with a text field; or a folder or glob.")
@click.option("-o", "--output", "out", required=True, metavar="OUT.npy|DIR",
              help="The .npy to write (float32, one row per text); with --engine ray, a folder gets a Parquet "
                   "dataset (index, embedding) instead. Written atomically.")
@click.option("--tokenizer", metavar="PATH", help="Tokenizer for a bare .onnx file.")
@click.option("--pooling", type=click.Choice(["auto", *POOLING_MODES]), default="auto", show_default=True,
              help="auto: a sentence-transformers folder's Pooling module (or the graph's own "
                   "sentence_embedding output), else the export's manifest, else mean. Indices follow "
                   "the mask (lasttoken: the last real token on either padding side).")
@click.option("--normalize/--no-normalize", default=None,
              help="L2-normalise rows (default: what the model's folder or manifest says, "
                   "whatever --pooling is).")
@click.option("--batch-size", type=int, default=32, show_default=True, metavar="N")
@click.option("--max-length", type=int, metavar="N", help="Tokens kept per text (default: the model's).")
@click.option("--provider", "providers", multiple=True, help="Execution provider (default cpu).")
@click.option("--allow-fallback", is_flag=True, help="Accept a provider silently dropped by ONNX Runtime.")
@click.option("--threads", type=int, metavar="N", help="ONNX Runtime intra-op threads.")
@engine_options
@click.option("--keep-text", is_flag=True, help="With --engine ray and a folder: add each text to its row.")
@click.pass_context
def embed_command(ctx, model, texts_file, out, tokenizer, pooling, normalize, batch_size, max_length,
                  providers, allow_fallback, threads, keep_text, **options):
    """Sentence embeddings from an ONNX encoder, streamed to a .npy, without PyTorch.

    MODEL is an export dir (its fp32 model is used), a sentence-transformers folder (its
    onnx/model.onnx; tokenizer, pooling, Normalize and max_seq_length read from the folder)
    or a .onnx file. Texts are read in windows of 64 batches, sorted by length so each batch pads little, and written back in input order: memory holds one window of token ids and one batch of states, whatever the size of the texts file.

    \b
    Examples:
      padlens embed out/minilm --texts corpus.txt -o emb.npy
      padlens embed model.onnx --tokenizer tok/ --texts docs.jsonl -o emb.npy --pooling cls --normalize
      padlens embed my-st-model/ --texts corpus.txt -o emb.npy
      padlens embed my-st-model/onnx/model_O3.onnx --texts corpus.txt -o emb.npy
      padlens embed out/minilm --texts corpus.parquet --engine ray -o emb/ --keep-text
      padlens embed out/minilm --texts 'shards/*.parquet' --text-column body --engine ray --ray-address auto -o emb/
    """
    from padlens.inspector.embed import embed
    from padlens.inspector.inputs.options import check_counts

    check_counts(batch_size=batch_size, max_length=max_length, threads=threads)
    engine = engine_kwargs(ctx, **{key: options.pop(key) for key in ENGINE_KEYS})
    if engine["engine"] == "local" or str(out).lower().endswith(".npy"):
        check_output_file(out, "-o")
    with engine_progress(ctx, engine, texts_file) as progress:
        result = embed(model, texts_file, out, tokenizer=tokenizer, pooling=pooling, normalize=normalize,
                       batch_size=batch_size, max_length=max_length, providers=tuple(providers) or ("cpu",),
                       allow_fallback=allow_fallback, threads=threads, progress=progress, keep_text=keep_text,
                       **engine)
    norm = "normalized" if result.normalize else "not normalized"
    if result.normalize_source and result.normalize_source != result.pooling_source:
        norm += f" ({result.normalize_source})"
    click.echo(f"wrote {result.path}: {result.rows} x {result.dim} float32 ({result.model}, "
               f"{result.pooling} pooling from {result.pooling_source}, {norm}, max length {result.max_length})")
    return 0


COMMANDS = [embed_command]
