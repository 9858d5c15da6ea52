"""Export time per backend on all-MiniLM-L6-v2 (paired whole-process runs) and peak RSS of exporting Qwen3-0.6B.

    .venv/bin/python benchmarks/export_speed.py                      # MiniLM 5 rounds, then the 0.6B config
    .venv/bin/python benchmarks/export_speed.py --rounds 9 --skip-big
    .venv/bin/python benchmarks/export_speed.py --smoke              # a tiny BERT, 1 round: proves it runs
    .venv5/bin/python benchmarks/export_speed.py --backends torch    # the transformers 5 lane (no Optimum)

Each run is a whole ``padlens export SOURCE --precision fp32 --backend B --force`` process (import,
load, export, validation gate, manifest), its wall time, CPU time and peak RSS read from the kernel
(``spawn.py``). A round runs every backend once, in alternating order, so drift on a busy machine
falls on both; the result is the median per backend and the median of the per-round ratio.
The big model: Qwen3-Embedding-0.6B's configuration with random weights (as
``build_production_model.py`` makes it, saved once as a Hugging Face folder under benchmarks/work/),
exported once per backend in fp32; peak RSS is compared with the weights' bytes (goal <= 2.5x).
Run it on a quiet machine; results go to benchmarks/work/export_speed.json.
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from build_production_model import MODELS, build_model, save_tokenizer
from spawn import spawn_measured, write_result

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / "work" / "export-speed"
PADLENS = Path(sys.executable).with_name("padlens")


def available_backends() -> list[str]:
    """The backends this environment can run (``padlens.exporter.backends``)."""
    from padlens.exporter.backends import OptimumBackend, TorchBackend

    return [b.name for b in (OptimumBackend(), TorchBackend()) if b.why_not() is None]


def export_run(source: str, backend: str, out: Path) -> dict:
    """One whole ``padlens export`` process: wall, CPU, peak RSS."""
    cmd = [str(PADLENS), "-q", "export", source, "-o", str(out), "--precision", "fp32", "--backend", backend, "--force"]
    m = spawn_measured(cmd, dict(os.environ), WORK / f"{backend}.stderr")
    shutil.rmtree(out, ignore_errors=True)
    return {"wall_s": m.wall_s, "cpu_s": m.cpu_s, "rss_mb": m.rss_mb}


def paired(source: str, backends: list[str], rounds: int) -> dict:
    """``rounds`` rounds, each backend once per round, the order alternating."""
    runs: dict[str, list[dict]] = {b: [] for b in backends}
    for r in range(rounds):
        order = backends if r % 2 == 0 else backends[::-1]
        for backend in order:
            runs[backend].append(export_run(source, backend, WORK / f"out-{backend}"))
            log.info("round %d %s: %.1fs", r, backend, runs[backend][-1]["wall_s"])
    out = {b: {"median_wall_s": statistics.median(x["wall_s"] for x in runs[b]),
               "median_cpu_s": statistics.median(x["cpu_s"] for x in runs[b]),
               "median_rss_mb": statistics.median(x["rss_mb"] for x in runs[b]), "runs": runs[b]} for b in backends}
    if len(backends) == 2:
        a, b = backends
        out[f"{b}/{a} per-round median"] = statistics.median(
            y["wall_s"] / x["wall_s"] for x, y in zip(runs[a], runs[b]))
    return out


def big_folder() -> tuple[Path, int]:
    """Qwen3-0.6B's configuration, random weights, saved once as a Hugging Face folder; its weight bytes."""
    folder = WORK / "qwen3-0.6b-hf"
    family, config = MODELS["qwen3-0.6b"]
    if not (folder / "config.json").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        build_model(family, config, folder)
        save_tokenizer(folder, family, config)
    weights = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
    return folder, weights


def smoke_source() -> str:
    """A tiny random BERT (tests/exporter/tiny_models.py), for --smoke."""
    folder = WORK / "tiny"
    if not (folder / "bert" / "config.json").is_file():
        shutil.rmtree(folder, ignore_errors=True)
        subprocess.run([sys.executable, str(ROOT / "tests" / "exporter" / "tiny_models.py"), str(folder), "bert"],
                       check=True, capture_output=True)
    return str(folder / "bert")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="paired rounds on MiniLM (default 5)")
    parser.add_argument("--backends", nargs="+", choices=("optimum", "torch"), help="default: every one installed")
    parser.add_argument("--skip-big", action="store_true", help="no Qwen3-0.6B export")
    parser.add_argument("--smoke", action="store_true", help="a tiny BERT, 1 round, no big model")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    WORK.mkdir(parents=True, exist_ok=True)
    backends = args.backends or available_backends()
    source = smoke_source() if args.smoke else "minilm-l6"
    result = {"source": source, "backends": backends, "rounds": 1 if args.smoke else args.rounds,
              "minilm": paired(source, backends, 1 if args.smoke else args.rounds)}
    if not (args.smoke or args.skip_big):
        folder, weights = big_folder()
        result["qwen3-0.6b"] = {"weights_mb": weights / 1e6}
        for backend in backends:
            run = export_run(str(folder), backend, WORK / f"big-{backend}")
            run["rss_over_weights"] = run["rss_mb"] * 1e6 / weights
            result["qwen3-0.6b"][backend] = run
    write_result(WORK / ("export_speed.smoke.json" if args.smoke else "export_speed.json"), result)


if __name__ == "__main__":
    main()
