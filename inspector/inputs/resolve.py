"""Turn MODEL arguments (export dirs, model folders, .onnx files) into one ModelRef per model file to run.

An export dir runs each precision its padlens.json lists. Any other folder (a
sentence-transformers folder as 5.x or older versions write it, an Optimum export) runs every
.onnx file at its top and in its ``onnx/`` folder, each named by its file, with the precision
read from the graph. A tokenizer is looked up beside the file, then in the
sentence-transformers folder above it.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from padlens.errors import BadInput, ModelLoadError, Param
from padlens.inspector.contract import (
    DYNAMIC_QUANT_OPS,
    FP16_COMPUTE_SUFFIX,
    INTEGER_OPS,
    MANIFEST,
    PRECISIONS,
    STATIC_QUANT_OPS,
)

log = logging.getLogger(__name__)

#: the folder sentence-transformers 5.x and Optimum write ONNX files into
ONNX_SUBFOLDER = "onnx"
#: files that make a folder a tokenizer folder (``load_tokenizer`` reads either)
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt")

__all__ = ["MANIFEST", "PRECISIONS", "ModelRef", "find_tokenizer", "guess_precision", "onnx_files",
           "precision_from_name", "read_manifest", "resolve_models", "weight_only_precision"]


@dataclass
class ModelRef:
    """One ONNX model file to inspect, and how to tokenize for it.

    Attributes:
        path: the .onnx file.
        label: how reports name it: "EXPORTDIR/PRECISION" for an export dir, "FOLDER/onnx/model_O3"
            for each file of another folder, else the file stem (prefixed with its folder
            when the stem alone says nothing, e.g. "model").
        precision: "fp32", "fp16", "int8-dynamic", "int8-static", a weight-only name
            ("int8-weight", "int4-weight", "nf4-weight", "fp4-weight", with "+fp16" when the
            compute is fp16), or "unknown" until the graph is read (see ``guess_precision``).
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
        return _expand_folder(path, tokenizer)
    if not path.is_file():
        raise ModelLoadError(f"{path} is not a file")
    return [_bare_onnx(path, tokenizer)]


def onnx_files(folder: Path) -> list[Path]:
    """Every .onnx file of a folder: those at its top, then those in its ``onnx/`` folder
    (where sentence-transformers 5.x and Optimum put them), each group by name."""
    return sorted(folder.glob("*.onnx")) + sorted((folder / ONNX_SUBFOLDER).glob("*.onnx"))


def _expand_folder(folder: Path, tokenizer: Path | None) -> list[ModelRef]:
    """A folder without a manifest (a sentence-transformers folder, an Optimum export ...):
    one run per .onnx file, named by the file, its precision read from the graph when opened."""
    files = onnx_files(folder)
    if not files:
        hint = (f" (this sentence-transformers folder has no ONNX file yet: `padlens export {folder} -o DIR`, or "
                f"SentenceTransformer(path, backend=\"onnx\").save_pretrained(path) writes {ONNX_SUBFOLDER}/model.onnx)"
                if (folder / "modules.json").is_file() else "")
        raise BadInput(f"{folder} has no {MANIFEST} and no .onnx file: pass an export dir or a .onnx file{hint}")
    name = folder.resolve().name
    refs = []
    for file in files:
        ref = _bare_onnx(file, tokenizer)
        ref.label = f"{name}/{file.relative_to(folder).with_suffix('').as_posix()}"
        ref.precision = "unknown"  # file names say O3, qint8_avx512_vnni ...: the graph decides
        refs.append(ref)
    return refs


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
        tokenizer = find_tokenizer(file)
        if tokenizer is None:
            raise BadInput(f"{file} has no tokenizer next to it: pass ", Param("tokenizer", meta="PATH"))
    return ModelRef(file, _file_label(file), precision_from_name(file.name), tokenizer, None)


def _has_tokenizer(folder: Path) -> bool:
    return any((folder / name).is_file() for name in TOKENIZER_FILES)


def find_tokenizer(file: Path) -> Path | None:
    """The folder holding ``file``'s tokenizer: beside it; else, for a file in an ``onnx/``
    folder, the folder above it (sentence-transformers 5.x, transformers.js); else the
    sentence-transformers folder above it or its token module (old ones keep the tokenizer
    in ``0_Transformer/``)."""
    from padlens.inspector.stats.pooling import read_st_folder, st_folder

    candidates = [file.parent] + ([file.parent.parent] if file.parent.name == ONNX_SUBFOLDER else [])
    folder = st_folder(file)
    if folder is not None:
        candidates += [folder, read_st_folder(folder).token_module]
    return next((f for f in candidates if f is not None and _has_tokenizer(f)), None)


def _file_label(file: Path) -> str:
    stem = file.name[: -len(".onnx")] if file.name.endswith(".onnx") else file.stem
    if stem == "model" or stem.startswith(("model.", "model_")):
        parent = file.resolve().parent
        if parent.name == ONNX_SUBFOLDER and parent.parent.name:  # st-folder/onnx/model_O3
            return f"{parent.parent.name}/{ONNX_SUBFOLDER}/{stem}"
        return f"{parent.name}/{stem}" if parent.name else stem
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
    activations) > weight-only (``weight_only_precision``: named by its bits and scheme, with
    ``+fp16`` when the graph computes in fp16) > fp16 > fp32.
    """
    from onnx import TensorProto

    ops = {node.op_type for node in model.graph.node}
    if ops & (DYNAMIC_QUANT_OPS | INTEGER_OPS):
        return "int8-dynamic"
    if ops & STATIC_QUANT_OPS:
        return "int8-static"
    # fp16 exports often keep fp32 islands (norms, casts): any fp16 weight makes it fp16
    fp16 = TensorProto.FLOAT16 in {init.data_type for init in model.graph.initializer}
    weight = weight_only_precision(model)
    if weight is not None:
        return weight + (FP16_COMPUTE_SUFFIX if fp16 else "")
    return "fp16" if fp16 else "fp32"


#: weight-only ops whose ``bits`` attribute (default 4) says the width of their weights
_NBITS_OPS = ("MatMulNBits", "GatherBlockQuantized")
#: MatMulBnb4's ``quant_type``: 0 FP4, 1 NF4 (onnxruntime's contrib op)
_BNB4_NAMES = {0: "fp4-weight", 1: "nf4-weight"}


def weight_only_precision(model) -> str | None:
    """``int4-weight``, ``int8-weight``, ``nf4-weight`` or ``fp4-weight`` for a graph whose weights
    (only) are quantized, named by its narrowest scheme; None when no weight is quantized."""
    from onnx import TensorProto, helper

    bits: set[int] = set()
    schemes: set[str] = set()
    inits = {init.name: init.data_type for init in model.graph.initializer}
    for node in model.graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type in _NBITS_OPS:
            bits.add(int(attrs.get("bits", 4)))
        elif node.op_type == "MatMulBnb4":
            schemes.add(_BNB4_NAMES.get(int(attrs.get("quant_type", 1)), "nf4-weight"))
        elif node.op_type == "DequantizeLinear" and node.input and node.input[0] in inits:
            four = inits[node.input[0]] in (TensorProto.INT4, TensorProto.UINT4)
            bits.add(4 if four else 8)
    if schemes:
        return sorted(schemes)[-1]  # "nf4-weight" before "fp4-weight"
    if bits:
        return f"int{min(bits)}-weight"
    if "DequantizeLinear" in {n.op_type for n in model.graph.node} or set(inits.values()) & {
            TensorProto.INT8, TensorProto.UINT8}:
        return "int8-weight"
    return None


def _dedupe_labels(refs: list[ModelRef]) -> None:
    """Give each ref a distinct label: a repeated one gets " #2", " #3" ..."""
    seen: dict[str, int] = {}
    for ref in refs:
        count = seen.get(ref.label, 0) + 1
        seen[ref.label] = count
        if count > 1:
            ref.label = f"{ref.label} #{count}"
