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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-dir", default=str(ROOT / "benchmarks" / "work" / "demo"))
    parser.add_argument("--out", default=str(ROOT / "docs" / "pad_pad_cos.png"))
    args = parser.parse_args()
    from padlens.demo import run_demo
    from padlens.inspector.report import plots

    result = run_demo(args.demo_dir, say=print, progress=False)
    runs = result.question.runs if getattr(result, "question", None) else result.inspect.runs
    fp32 = [r for r in runs if r.precision == "fp32"] or runs
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    title = ("all-MiniLM-L6-v2, 'this is a sample sentence' padded to 128: "
             "pads are near copies of each other, unlike the words")
    plots.save_png(plots.pad_pad_cos_only(fp32, title), args.out)
    print(f"wrote {args.out} (from {result.out_dir}/report.html's demo run)")


if __name__ == "__main__":
    main()
