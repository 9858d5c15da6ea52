"""CLI command `padlens embed`: sentence embeddings to a .npy, without PyTorch."""
from __future__ import annotations

import click

from padlens.cli_inspect import check_output_file, engine_options, engine_progress
from padlens.cli_options import retune, run_options
from padlens.inspector.contract import POOLING_MODES

#: what the shared input options mean for embed (every text of one file; lengths from the model)
EMBED_OPTION_HELP = {
    "texts_file": {"help": "Texts: .txt (one per line), .jsonl, .csv or .parquet with a text field; or a folder "
                           "or glob."},
    "max_length": {"help": "Tokens kept per text (default: the model's)."},
}


@retune(EMBED_OPTION_HELP)
@click.command("embed")
@run_options(one_model=True, corpus=True)
@click.option("-o", "--output", "out", required=True, metavar="OUT.npy|DIR",
              help="The .npy to write (float32, one row per text); with --engine ray, a folder gets a Parquet "
                   "dataset (index, embedding) instead. Written atomically.")
@click.option("--pooling", type=click.Choice(["auto", *POOLING_MODES]), default="auto", show_default=True,
              help="auto: a sentence-transformers folder's Pooling module (or the graph's own "
                   "sentence_embedding output), else the export's manifest, else mean. Indices follow "
                   "the mask (lasttoken: the last real token on either padding side).")
@click.option("--normalize/--no-normalize", default=None,
              help="L2-normalise rows (default: what the model's folder or manifest says, "
                   "whatever --pooling is).")
@engine_options
@click.option("--keep-text", is_flag=True, help="With --engine ray and a folder: add each text to its row.")
@click.pass_context
def embed_command(ctx, model, options, out, pooling, normalize, keep_text):
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
    from padlens.inspector.embed import embed_with

    if not options.engine.on_ray or str(out).lower().endswith(".npy"):
        check_output_file(out, "-o")
    with engine_progress(ctx, options) as progress:
        result = embed_with(model, options, out, pooling=pooling, normalize=normalize, keep_text=keep_text,
                            progress=progress)
    norm = "normalized" if result.normalize else "not normalized"
    if result.normalize_source and result.normalize_source != result.pooling_source:
        norm += f" ({result.normalize_source})"
    click.echo(f"wrote {result.path}: {result.rows} x {result.dim} float32 ({result.model}, "
               f"{result.pooling} pooling from {result.pooling_source}, {norm}, max length {result.max_length})")
    return 0


COMMANDS = [embed_command]
