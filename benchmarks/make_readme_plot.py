"""Make docs/pad_pad_cos.png, the README's plot, from a demo run (reusing its export).

    .venv/bin/python benchmarks/make_readme_plot.py [--demo-dir benchmarks/work/demo]

Runs ``padlens.demo.run_demo`` (export, inspect, audit and report.html; an earlier demo's
export is reused) and draws pad–pad and pad–real cosine per layer of the demo's inspect
(the question's sentence and the corpus lines the report uses, four precisions).
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent


def pad_pad_cos_plot(runs, title: str) -> bytes:
    """One panel, PNG: pad_pad_cos and pad_real_cos per layer (the README's image; drawn here, not in the library)."""
    import numpy as np

    from padlens.inspector.report import plots

    fig = plots.new_figure(420)
    ax = fig.subplots()
    for name, run in zip(plots.run_names(runs), runs):
        x = [layer.index for layer in run.layers]
        values = {key: np.array([np.nan if getattr(layer, key) is None else getattr(layer, key)
                                 for layer in run.layers], np.float64) for key in ("pad_pad_cos", "pad_real_cos")}
        line, = ax.plot(x, values["pad_pad_cos"], marker="o", label=f"pad–pad {name}")
        ax.plot(x, values["pad_real_cos"], marker="s", ls="--", color=line.get_color(), label=f"pad–real {name}")
    ax.set_xticks(x)
    ax.grid(alpha=0.3)
    ax.set_xlabel("layer (0 = embedding output)")
    ax.set_ylabel("mean cosine")
    ax.set_ylim(-0.1, 1.05)
    ax.legend(fontsize=8)
    ax.set_title(title)
    return plots.png_bytes(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-dir", default=str(ROOT / "benchmarks" / "work" / "demo"))
    parser.add_argument("--out", default=str(ROOT / "docs" / "pad_pad_cos.png"))
    args = parser.parse_args()
    from padlens.demo import run_demo
    from padlens.fsio import atomic_write

    result = run_demo(args.demo_dir, say=print, progress=False)
    runs = result.question.runs if getattr(result, "question", None) else result.inspect.runs
    fp32 = [r for r in runs if r.precision == "fp32"] or runs
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    title = ("all-MiniLM-L6-v2, 'this is a sample sentence' padded to 128: "
             "pads are near copies of each other, unlike the words")
    atomic_write(args.out, pad_pad_cos_plot(fp32, title))
    print(f"wrote {args.out} (from {result.out_dir}/report.html's demo run)")


if __name__ == "__main__":
    main()
