"""CLI command `padlens quantize`: a thin wrapper over padlens.exporter.quantize."""
from __future__ import annotations

import sys

import click

from padlens.cli_options import is_quiet, output_options
from padlens.inspector.contract import QUANTIZE_SCHEMES as SCHEMES  # light: --help loads no onnx


@click.command()
@click.argument("model", type=click.Path())
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False),
              help="The .onnx file to write (refused when it exists unless --force), with OUT.padlens.json beside it.")
@click.option("--scheme", type=click.Choice(SCHEMES), default="int8-static", show_default=True,
              help="int8-static: speed (integer MatMuls, constant scales). int8-weight / int4-weight: "
                   "memory (MatMulNBits weights, float compute).")
@click.option("--calibration-texts", type=click.Path(dir_okay=False),
              help="Texts calibrating int8-static (.txt one per line, .jsonl, .csv, .parquet). "
                   "Default: 3 of every 4 texts of the sample corpus; the 4th are held out to verify.")
@click.option("--tokenizer", type=click.Path(), help="Tokenizer folder or tokenizer.json for a bare .onnx file.")
@click.option("--force", is_flag=True, help="Replace an existing output file.")
@click.option("--keep-anyway", is_flag=True,
              help="Write the file even when it fails verification (exit code still 1).")
@click.option("--threads", type=int, help="ONNX Runtime intra-op threads while verifying.")
@output_options(json=True, html=False)
@click.pass_context
def quantize(ctx: click.Context, model: str, output: str, scheme: str, calibration_texts: str | None,
             tokenizer: str | None, force: bool, keep_anyway: bool, threads: int | None, outputs) -> None:
    """Quantize an fp32 ONNX encoder into a padding-invariant copy, verified before it is kept.

    \b
    MODEL is an fp32 .onnx file (bare, or in a sentence-transformers / transformers.js /
    Optimum folder) or a padlens export dir (its fp32). The copy is audited on held-out
    texts: padding_invariance and batch_neighbour_invariance must pass, and its pooled
    cosine vs MODEL must reach the scheme's floor (int8-static: mean 0.98, worst 0.95).
    Exit 0: written. Exit 1: failed, nothing written (unless --keep-anyway). Exit 2: bad input.

    \b
    Examples:
      padlens audit folder/                                # model_quantized.onnx: FAIL
      padlens quantize folder/onnx/model.onnx -o folder/onnx/model_int8_static.onnx
      padlens audit folder/onnx/model_int8_static.onnx --tokenizer folder/
      padlens quantize out/minilm -o minilm.int4.onnx --scheme int4-weight
      padlens quantize model.onnx --tokenizer tok/ -o model.int8.onnx --calibration-texts my_texts.txt
    """
    from padlens.exporter.quantize import quantize as run_quantize

    say = None if is_quiet(ctx) else (lambda message: click.echo(message, err=True))
    result = run_quantize(model, output, scheme=scheme, calibration_texts=calibration_texts, tokenizer=tokenizer,
                          force=force, keep_anyway=keep_anyway, threads=threads, progress=say)
    outputs.write_json(result.to_dict())
    _render(result)
    if not result.passed:
        sys.exit(1)


def _render(result) -> None:
    """The verification, then what was written and what it is for (or why nothing was)."""
    v = result.verification
    for check in v.checks:
        click.echo(f"  {'PASS' if check['passed'] else 'FAIL'}  {check['name']}")
    click.echo(f"  pooled cosine vs source on {v.texts} held-out texts: mean {v.pooled_cosine_mean:.4f} "
               f"(floor {v.floor_mean}), worst {v.pooled_cosine_worst:.4f} (floor {v.floor_worst})")
    if not result.written:
        click.echo(f"not written: {'; '.join(v.failures())} (--keep-anyway writes it anyway)")
        return
    size = f"{result.out_bytes / 1e6:.1f} MB, source {result.source_bytes / 1e6:.1f} MB"
    click.echo(f"wrote {result.out} ({result.scheme}, {size}, {result.seconds:.1f}s) and {result.sidecar}")
    if not result.passed:
        click.echo(f"kept although it failed: {'; '.join(v.failures())}")
    click.echo(f"use it for {result.purpose}")


COMMANDS = [quantize]
