"""Turn MODEL arguments (export dirs, .onnx files) into one ModelRef per model file to run."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from padlens.errors import BadInput, ModelLoadError

from .contract import DYNAMIC_QUANT_OPS, INTEGER_OPS, MANIFEST, PRECISION_FILES, PRECISIONS, STATIC_QUANT_OPS

log = logging.getLogger(__name__)

__all__ = ["MANIFEST", "PRECISIONS", "ModelRef", "guess_precision", "precision_from_name", "read_manifest",
           "resolve_models"]


@dataclass
class ModelRef:
    """One ONNX model file to inspect, and how to tokenize for it.

    Attributes:
        path: the .onnx file.
        label: how reports name it: "EXPORTDIR/PRECISION" for an export dir, else the
            file stem (prefixed with its folder when the stem alone says nothing, e.g. "model").
        precision: "fp32", "fp16", "int8-dynamic", "int8-static", "int8-weight" (weights
            only), or "unknown" until the graph is read (see ``guess_precision``).
        tokenizer_path: folder or tokenizer.json to tokenize with.
        manifest: the export dir's padlens.json, or None for a bare .onnx.
    """

    path: Path
    label: str
    precision: str
    tokenizer_path: Path
    manifest: dict | None = None


def resolve_models(paths: Iterable[str | Path], tokenizer: str | Path | None = None) -> list[ModelRef]:
    """Expand export dirs to each precision in their manifest; pair bare .onnx files with a tokenizer.

    An export dir uses its own tokenizer; ``tokenizer`` serves the bare .onnx files.
    """
    paths = list(paths)
    if not paths:
        raise BadInput("no model given")
    explicit = _check_tokenizer_arg(tokenizer)
    refs: list[ModelRef] = []
    for raw in paths:
        refs.extend(_resolve_one(Path(raw), explicit))
    _dedupe_labels(refs)
    log.debug("resolved %s", [(r.label, r.precision, str(r.path)) for r in refs])
    return refs


def _check_tokenizer_arg(tokenizer: str | Path | None) -> Path | None:
    if tokenizer is None:
        return None
    path = Path(tokenizer)
    if not path.exists():
        raise BadInput(f"tokenizer {path} does not exist")
    return path


def _resolve_one(path: Path, tokenizer: Path | None) -> list[ModelRef]:
    if not path.exists():
        raise ModelLoadError(f"{path} does not exist")
    if path.is_dir():
        if (path / MANIFEST).is_file():
            return _expand_export_dir(path)
        return [_bare_onnx(_onnx_in_folder(path), tokenizer)]
    if not path.is_file():
        raise ModelLoadError(f"{path} is not a file")
    return [_bare_onnx(path, tokenizer)]


def _onnx_in_folder(folder: Path) -> Path:
    """model.onnx, or the folder's only .onnx file."""
    default = folder / PRECISION_FILES["fp32"]
    if default.is_file():
        return default
    found = sorted(folder.glob("*.onnx"))
    if len(found) == 1:
        return found[0]
    what = "no .onnx file" if not found else f"{len(found)} .onnx files ({', '.join(f.name for f in found)})"
    raise BadInput(f"{folder} has no {MANIFEST} and {what}: pass an export dir or a .onnx file")


def read_manifest(folder: Path) -> dict:
    """The export dir's padlens.json, checked for what the inspector reads from it."""
    file = folder / MANIFEST
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BadInput(f"{file} is not valid JSON: {exc}") from exc
    precisions = manifest.get("precisions") if isinstance(manifest, dict) else None
    if not isinstance(precisions, dict) or not precisions:
        raise BadInput(f"{file} is malformed: expected a non-empty \"precisions\" object")
    for name, entry in precisions.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str) or not entry["file"]:
            raise BadInput(f"{file} is malformed: precision {name!r} needs a \"file\" string")
        if Path(entry["file"]).is_absolute() or ".." in Path(entry["file"]).parts:
            raise BadInput(f"{file} is malformed: precision {name!r} points outside the folder")
    return manifest


def _expand_export_dir(folder: Path) -> list[ModelRef]:
    manifest = read_manifest(folder)
    name = folder.resolve().name
    refs = []
    for precision, entry in manifest["precisions"].items():
        file = folder / entry["file"]
        if not file.is_file():
            raise ModelLoadError(f"{folder / MANIFEST} lists {precision} as {entry['file']}, which is missing")
        refs.append(ModelRef(file, f"{name}/{precision}", precision, folder, manifest))
    return refs


def _bare_onnx(file: Path, tokenizer: Path | None) -> ModelRef:
    if tokenizer is None:
        if not (file.parent / "tokenizer.json").is_file():
            raise BadInput(f"{file} has no tokenizer next to it: pass --tokenizer PATH")
        tokenizer = file.parent
    return ModelRef(file, _file_label(file), precision_from_name(file.name), tokenizer, None)


def _file_label(file: Path) -> str:
    stem = file.name[: -len(".onnx")] if file.name.endswith(".onnx") else file.stem
    if stem == "model" or stem.startswith(("model.", "model_")):
        parent = file.resolve().parent.name
        return f"{parent}/{stem}" if parent else stem
    return stem


def precision_from_name(name: str) -> str:
    """The precision a file name states (``model.int8-dynamic.onnx``), or "unknown"."""
    lowered = name.lower()
    for precision in sorted(PRECISIONS, key=len, reverse=True):  # "int8-dynamic" before "fp16"
        if precision in lowered:
            return precision
    return "unknown"


def guess_precision(model) -> str:
    """Read a precision off an onnx.ModelProto's ops and weight types.

    Dynamic int8 (DynamicQuantizeLinear, MatMulInteger) > static int8 (QuantizeLinear of
    activations) > weight-only int8 (only DequantizeLinear of int8 weights) > fp16 > fp32.
    """
    from onnx import TensorProto

    ops = {node.op_type for node in model.graph.node}
    if ops & (DYNAMIC_QUANT_OPS | INTEGER_OPS):
        return "int8-dynamic"
    if ops & STATIC_QUANT_OPS:
        return "int8-static"
    types = {init.data_type for init in model.graph.initializer}
    if "DequantizeLinear" in ops or types & {TensorProto.INT8, TensorProto.UINT8, TensorProto.INT4,
                                              TensorProto.UINT4}:
        return "int8-weight"
    # fp16 exports often keep fp32 islands (norms, casts): any fp16 weight makes it fp16
    return "fp16" if TensorProto.FLOAT16 in types else "fp32"


def _dedupe_labels(refs: list[ModelRef]) -> None:
    """Give each ref a distinct label: a repeated one gets " #2", " #3" ..."""
    seen: dict[str, int] = {}
    for ref in refs:
        count = seen.get(ref.label, 0) + 1
        seen[ref.label] = count
        if count > 1:
            ref.label = f"{ref.label} #{count}"
