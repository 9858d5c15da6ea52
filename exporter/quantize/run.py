"""``quantize()``: resolve the source, quantize it into a temporary file beside OUT, verify, then keep or drop it."""
from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from padlens.errors import BadInput, Param
from padlens.exporter.quantize.calibrate import HELDOUT, TextSplit, calibration_feeds, split_texts
from padlens.exporter.quantize.verify import Verification, verify
from padlens.inspector.contract import QUANTIZE_SCHEMES as SCHEMES

#: (mean, worst) pooled cosine vs the source each scheme must reach on held-out texts.
#: int8-static: the issue's targets. Weight-only, measured on MiniLM (100 held-out texts): int8-weight
#: 0.9999 mean / 0.9996 worst, int4-weight 0.968 / 0.906; the floors leave room for other models.
FLOORS = {"int8-static": (0.98, 0.95), "int8-weight": (0.995, 0.99), "int4-weight": (0.95, 0.85)}
#: what each scheme's file is for, as the terminal and the sidecar say it
PURPOSE = {
    "int8-static": "speed: integer MatMuls at about dynamic int8's speed, with constant scales, so real "
                   "tokens do not move with padding or batch neighbours; a drop-in for the fp32 file",
    "int8-weight": "memory: MatMul weights stored in 8 bits (float compute, no faster than fp32 on CPU); "
                   "a drop-in for the fp32 file",
    "int4-weight": "memory: MatMul weights stored in 4 bits (float compute, no faster than fp32 on CPU, "
                   "larger drift than int8); a drop-in for the fp32 file",
}
SIDECAR_SUFFIX = ".padlens.json"


@dataclass
class QuantizeResult:
    """What ``quantize`` made, how it was verified, and whether it was kept.

    Attributes:
        source: the fp32 .onnx file quantized (never written).
        out: the file asked for; it exists only when ``written``.
        scheme: ``int8-static``, ``int8-weight`` or ``int4-weight``.
        written: the file (and its sidecar) were written: it passed, or ``keep_anyway``.
        recipe: how it was quantized (ops, types, which MatMuls stayed float and why).
        calibration: where the calibration texts came from, how many, their sha256.
        verification: the audit's invariance checks and pooled cosine vs the source.
        purpose: what the file is for, in words.
        sidecar: the JSON beside ``out`` (recipe, calibration, verification), when written.
        source_bytes: size of the source (its external data included).
        out_bytes: size of the quantized file (its external data included), 0 when not written.
        seconds: wall time of quantizing and verifying.
    """

    source: Path
    out: Path
    scheme: str
    written: bool
    recipe: dict
    calibration: dict
    verification: Verification
    purpose: str
    sidecar: Path | None = None
    source_bytes: int = 0
    out_bytes: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.verification.passed

    def __bool__(self) -> bool:
        return self.passed

    def to_dict(self) -> dict:
        """Plain JSON values (paths as strings)."""
        from padlens.inspector.report.jsonable import to_jsonable

        return to_jsonable(asdict(self))


def sidecar_path(out: str | os.PathLike) -> Path:
    """Where the JSON describing ``out`` goes: ``OUT.onnx.padlens.json``."""
    return Path(str(out) + SIDECAR_SUFFIX)


def check_out(out: str | os.PathLike, source: Path, force: bool) -> Path:
    """``out``: an .onnx path in an existing folder, not the source, not existing unless ``force``."""
    from padlens.fsio import check_file_target

    target = check_file_target(out, Param("out", meta=str(out)))
    if target.suffix != ".onnx":
        raise BadInput(Param("out", meta=str(target)), ": the output must be an .onnx file")
    if target.exists() and target.resolve() == source.resolve():
        raise BadInput(Param("out", meta=str(target)), " is the source model: padlens never overwrites it")
    if target.exists() and not force:
        raise BadInput(f"{target} exists: pass ", Param("force", True), " to replace it")
    return target


def resolve_source(model: str | os.PathLike, tokenizer) -> object:
    """The one fp32 file to quantize: a .onnx file, or an export dir's fp32."""
    from padlens.inspector.inputs.resolve import resolve_models

    refs = resolve_models([model], tokenizer)
    fp32 = [r for r in refs if r.manifest is not None and r.precision == "fp32"]
    if fp32:
        return fp32[0]
    if len(refs) != 1:
        files = ", ".join(str(r.path) for r in refs)
        raise BadInput(f"{model} holds {len(refs)} ONNX files ({files}): pass the fp32 one")
    return refs[0]


def _check_fp32(ref) -> tuple[object, bool, int | None]:
    """The plan of ``ref``'s MatMuls, whether the copy needs external data (the source's weights are
    past protobuf's ~2 GB limit; a small source with external data still quantizes into one file),
    its usable positions; refuses a quantized source."""
    from padlens.exporter.quantize.plan import plan_matmuls
    from padlens.inspector.inputs.resolve import guess_precision
    from padlens.inspector.model.graph import load_encoder

    graph = load_encoder(ref.path)
    precision = guess_precision(graph.model)
    if precision != "fp32":
        raise BadInput(f"{ref.path} is {precision}, not fp32: quantize the fp32 file it was made from")
    plan = plan_matmuls(graph.model, graph.inputs, list(graph.layers.hidden))
    from padlens.inspector.model.expose import EXTERNAL_OVER

    return plan, _file_bytes(ref.path) > EXTERNAL_OVER, graph.max_positions


def _make(scheme: str, ref, dst: Path, plan, external: bool, split: TextSplit, positions: int | None) -> dict:
    if scheme == "int8-static":
        from padlens.exporter.quantize.recipe import STATIC_RECIPE, quantize_int8_static

        feeds = calibration_feeds(ref, split.calibration, positions)
        return quantize_int8_static(ref.path, dst, feeds, STATIC_RECIPE, plan, external)
    from padlens.exporter.quantize.weights import WEIGHT_RECIPES, write_weight_only

    return write_weight_only(ref.path, dst, WEIGHT_RECIPES[scheme], plan)


def _data_files(path: Path) -> list[Path]:
    """The external data files beside ``path`` that its initializers name (none for one file)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    locations = {e.value for t in model.graph.initializer for e in t.external_data if e.key == "location"}
    return [path.parent / loc for loc in sorted(locations) if (path.parent / loc).is_file()]


def _file_bytes(path: Path) -> int:
    """The file's size plus the external data files beside it that it names."""
    return path.stat().st_size + sum(f.stat().st_size for f in _data_files(path))


def quantize(model: str | os.PathLike, out: str | os.PathLike, scheme: str = "int8-static",
             calibration_texts: str | os.PathLike | None = None, tokenizer: str | os.PathLike | None = None,
             force: bool = False, keep_anyway: bool = False, floors: tuple[float, float] | None = None,
             heldout: int = HELDOUT, threads: int | None = None, progress=None) -> QuantizeResult:
    """Quantize the fp32 encoder ``model`` into ``out`` with ``scheme``, verified before it is kept.

    ``model``: a .onnx file (bare, in a sentence-transformers / transformers.js / Optimum folder)
    or an export dir (its fp32). The new file is audited on held-out texts (none of the
    calibration texts): padding and batch-neighbour invariance must pass and its pooled cosine
    vs the source must reach ``floors`` (default ``FLOORS[scheme]``). When it does not, nothing
    is written (``result.written`` False) unless ``keep_anyway``. The source is never written;
    ``out`` and its sidecar JSON are written atomically. ``progress`` gets a message per step.
    """
    say = progress or (lambda message: None)
    if scheme not in SCHEMES:
        raise BadInput(f"scheme must be one of {', '.join(SCHEMES)}, got {scheme!r}")
    floors = tuple(floors) if floors is not None else FLOORS[scheme]
    start = time.perf_counter()
    ref = resolve_source(model, tokenizer)
    target = check_out(out, ref.path, force)
    split = split_texts(calibration_texts, heldout)
    plan, external, positions = _check_fp32(ref)
    with tempfile.TemporaryDirectory(prefix=".padlens-quantize-", dir=target.parent) as tmp:
        dst = Path(tmp) / target.name
        say(f"quantizing {ref.path} ({scheme})…")
        recipe = _make(scheme, ref, dst, plan, external, split, positions)
        say(f"verifying on {len(split.heldout)} held-out texts…")
        copy = type(ref)(dst, f"{ref.label} ({scheme})", scheme, ref.tokenizer_path, None)
        verification = verify(ref, copy, split.heldout, floors, threads)
        result = QuantizeResult(ref.path, target, scheme, False, recipe, _calibration_doc(scheme, split),
                                verification, PURPOSE[scheme], source_bytes=_file_bytes(ref.path))
        if verification.passed or keep_anyway:
            _keep(dst, target, result)
    result.seconds = time.perf_counter() - start
    return result


def _calibration_doc(scheme: str, split: TextSplit) -> dict:
    doc = {"heldout_texts": len(split.heldout)}
    if scheme == "int8-static":
        doc.update(source=split.source, texts=len(split.calibration), sha256=split.sha256,
                   method="MinMax, one unpadded text per run")
    return doc


def _keep(dst: Path, target: Path, result: QuantizeResult) -> None:
    """Move the verified file (and its external data) onto ``target``, then write the sidecar."""
    from padlens.fsio import atomic_write

    # only the data files the final graph names (one read of the graph): ONNX Runtime's quantizer may
    # leave an external data file that the re-saved (self-contained) graph no longer reads
    data_files = _data_files(dst)
    result.out_bytes = dst.stat().st_size + sum(f.stat().st_size for f in data_files)
    for data in data_files:
        os.replace(data, target.parent / data.name)
    os.replace(dst, target)
    result.written = True
    result.sidecar = sidecar_path(target)
    doc = {k: v for k, v in result.to_dict().items() if k not in ("sidecar", "written")}
    doc["tool"] = "padlens quantize"
    atomic_write(result.sidecar, json.dumps(doc, indent=2) + "\n")
