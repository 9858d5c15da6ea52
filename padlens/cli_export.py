"""CLI commands `padlens export` and `padlens models`: thin wrappers over padlens.exporter."""
from __future__ import annotations

import click

from padlens.inspector.contract import PRECISIONS

PRECISION_CHOICES = PRECISIONS
#: the export backends (padlens.exporter.backends.BACKENDS, repeated so --help imports no exporter module)
BACKENDS = ("auto", "optimum", "torch")


@click.command()
@click.argument("source")
@click.option("-o", "--output", "output", required=True, type=click.Path(file_okay=False),
              help="Folder to write (created; refused when not empty unless --force).")
@click.option("--precision", "precisions", multiple=True, type=click.Choice(PRECISION_CHOICES),
              help="Precision to write; repeat for several. Default: all four.")
@click.option("--calibration-texts", type=click.Path(dir_okay=False),
              help="Text file, one text a line, to calibrate int8-static. Default: the sample corpus.")
@click.option("--force", is_flag=True, help="Replace a non-empty output folder.")
@click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True,
              help="optimum: Optimum (transformers 4.x, extra `optimum`). torch: torch.onnx.export(dynamo=True) "
                   "(any transformers, extra `export`). auto: Optimum where it is installed and supports the "
                   "installed transformers, else torch.")
@click.pass_context
def export(ctx: click.Context, source: str, output: str, precisions: tuple[str, ...],
           calibration_texts: str | None, force: bool, backend: str) -> None:
    """Export SOURCE to ONNX with every layer as an output, in four precisions.

    \b
    SOURCE is a recipe name (see `padlens models`), a local Hugging Face model
    folder, or a hub id (org/name, downloaded). Every variant outputs
    last_hidden_state and hidden_states.0 (embeddings) ... hidden_states.L, and is
    checked layer by layer against PyTorch; fp32 off by more than 1e-4 on real
    tokens fails with exit code 1 and writes nothing.

    \b
    Examples:
      padlens export minilm-l6 -o out/minilm
      padlens export ./saved-by-transformers-5 -o out/nomic --backend torch
      padlens export ./my-bert -o out/my-bert --precision fp32 --precision int8-static \\
          --calibration-texts my_texts.txt
    """
    from padlens.exporter import export as run_export
    from padlens.exporter import read_texts

    texts = read_texts(None, calibration_texts) if calibration_texts else None
    quiet = bool((ctx.obj or {}).get("quiet"))
    result = run_export(source, output, precisions=list(precisions) or None, calibration_texts=texts,
                        force=force, progress=None if quiet else _progress, backend=backend)
    _render(result)


def _progress(message: str) -> None:
    click.echo(message, err=True)


def _render(result) -> None:
    """What was written, and how each variant compares with PyTorch fp32."""
    click.echo(f"wrote {result.out_dir} ({result.architecture}, {result.num_layers} layers, "
               f"backend {result.manifest.get('backend', '?')}, "
               f"{result.seconds.get('total', 0.0):.1f}s)")
    for name, path in result.files.items():
        check = result.checks[name]
        line = (f"  {name:<13} {path.name:<26} {path.stat().st_size / 1e6:8.1f} MB  "
                f"max|Δ| real {check.max_abs_real:.2g}  pooled cos {check.pooled_cosine:.4f}")
        if check.pooled_cosine_heldout is not None and name != "fp16":
            line += f"  held-out {check.pooled_cosine_heldout:.4f}"
        click.echo(line + ("" if check.passed else "  (below threshold)"))


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the recipes as JSON.")
def models(as_json: bool) -> None:
    """List the recipes: encoders `padlens export NAME` knows.

    \b
    Examples:
      padlens models
      padlens export minilm-l6 -o out/minilm
    """
    from padlens.models import list_recipes

    recipes = list_recipes()
    if as_json:
        import json

        click.echo(json.dumps([r.to_dict() for r in recipes], indent=2))
        return
    header = ("NAME", "ARCHITECTURE", "LAYERS", "HIDDEN", "POOLING", "SOURCE")
    rows = [(r.name, r.architecture, str(r.layers), str(r.hidden_size),
             r.pooling + ("+norm" if r.normalize else ""), r.source) for r in recipes]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    click.echo("")
    for r in recipes:
        click.echo(f"{r.name}: {r.notes}")


COMMANDS = [export, models]
