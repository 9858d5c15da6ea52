"""Load an ONNX file safely (external data confined to its folder) and recognise its inputs.

External data stays where it is: the graph is parsed without it (``onnx.load_model_from_string``
reads only the .onnx file) and its locations are checked; a structural check that needs a
constant's value reads that one tensor when it is at most ``SMALL_EXTERNAL`` bytes
(``small_external_value``: a Reshape's shape, a padding index). Sessions refer to the user's
weight files in place (``padlens.inspector.model.graph.in_place_model``).
"""
from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Iterator

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper
from onnx.external_data_helper import ExternalDataInfo, load_external_data_for_tensor, uses_external_data

from padlens.errors import ModelLoadError

log = logging.getLogger(__name__)


def all_tensors(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    """Every tensor a model holds, through public protos only: initializers and tensor attributes
    (``t``, ``tensors``) of the graph, of its subgraphs (``g``, ``graphs``) and of its functions' nodes."""
    graphs, nodes = [model.graph], [n for f in model.functions for n in f.node]
    while graphs or nodes:
        if graphs:
            graph = graphs.pop()
            yield from graph.initializer
            nodes.extend(graph.node)
            continue
        for attr in nodes.pop().attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                graphs.append(attr.g)
            graphs.extend(attr.graphs)

ROLE_NAMES = {
    "input_ids": ("input_ids", "ids", "input", "inputs", "input_id", "token_ids", "tokens"),
    "attention_mask": ("attention_mask", "mask", "input_mask", "attn_mask"),
    "token_type_ids": ("token_type_ids", "segment_ids", "token_types", "type_ids",
                       "token_type_id", "segment_id"),
    "position_ids": ("position_ids", "positions", "position_id"),
}
#: a past KV cache input: ``past_key_values.N.key`` / ``.value``, or without the prefix (``past.N.key``,
#: ``N.key``); fed empty (past length 0) so the graph computes the plain forward pass
CACHE_ROLE = "past_key_values"
CACHE_INPUT = re.compile(r"^(?:past_key_values|past_key_value|past|pkv)?[._]?(\d+)[._](key|value)$")
#: a present KV cache output (``present.N.key``): never fetched
CACHE_OUTPUT = re.compile(r"^present(?:_key_values)?[._]")
CACHE_TYPES = {TensorProto.FLOAT: "float32", TensorProto.FLOAT16: "float16"}
# op domains ONNX Runtime implements itself; anything else needs a custom-op library
BUILTIN_DOMAINS = ("", "ai.onnx", "ai.onnx.ml", "ai.onnx.preview.training", "com.microsoft",
                   "com.microsoft.nchwc", "com.microsoft.experimental", "com.ms.internal.nhwc")
INT_TYPES = {TensorProto.INT64: "int64", TensorProto.INT32: "int32"}
MASK_TYPES = {**INT_TYPES, TensorProto.FLOAT: "float32", TensorProto.BOOL: "bool"}
#: the largest external tensor a structural check may read (``small_external_value``)
SMALL_EXTERNAL = 4096


@dataclass
class InputSpec:
    """One graph input and what padlens feeds it.

    Attributes:
        name: the graph input's name.
        role: "input_ids", "attention_mask", "token_type_ids", "position_ids" or
            "past_key_values" (a past KV cache, fed empty).
        dtype: numpy dtype name to feed: "int64", "int32" (or "float32" for an odd mask;
            "float32" or "float16" for a cache, as the graph declares it).
        cache_shape: a cache's (kv_heads, head_dim), from the graph or config.json; None otherwise.
    """

    name: str
    role: str
    dtype: str
    cache_shape: tuple[int, int] | None = None


def read_model(path: str | os.PathLike) -> tuple[Path, onnx.ModelProto, bytes | None]:
    """The model at ``path``, after checking where its external data lives, and the file's bytes
    when they hold it all (no external data: they alone are the model). External data is not
    loaded: its tensors keep referring to the files beside the model."""
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"{path}: no such file")
    if path.is_dir():
        raise ModelLoadError(f"{path} is a folder, not an .onnx file")
    if not path.is_file():
        raise ModelLoadError(f"{path} is not a regular file")
    raw, model = _parse(path)
    check_op_domains(path, model)
    check_external_data(model, path.parent)
    external = any(uses_external_data(t) for t in all_tensors(model))
    return path, model, None if external else raw


def small_external_value(tensor: TensorProto, folder: Path | None) -> np.ndarray | None:
    """The value of an external ``tensor`` of at most ``SMALL_EXTERNAL`` bytes, read from
    ``folder`` (its location was checked at load) into a copy; None when larger or unknown."""
    length = ExternalDataInfo(tensor).length
    if folder is None or length is None or length > SMALL_EXTERNAL:
        return None
    copy = TensorProto()
    copy.CopyFrom(tensor)
    load_external_data_for_tensor(copy, str(folder))
    del copy.external_data[:]
    copy.data_location = TensorProto.DEFAULT
    return numpy_helper.to_array(copy)


def weight_bytes(model: onnx.ModelProto) -> int:
    """Bytes of the model's initializers, inline or external (from their recorded lengths)."""
    total = 0
    for tensor in all_tensors(model):
        if uses_external_data(tensor):
            total += ExternalDataInfo(tensor).length or 0
        else:
            total += _inline_bytes(tensor)
    return total


#: element types whose bytes are not ``elements x itemsize`` (packed 4-bit, strings): sized by protobuf
_PACKED = {TensorProto.STRING, *(getattr(TensorProto, n) for n in ("INT4", "UINT4", "FLOAT4E2M1") if hasattr(TensorProto, n))}


def _inline_bytes(tensor: TensorProto) -> int:
    """Bytes of an inline tensor's values from its shape and type (protobuf's ByteSize took ≈ 0.5 s
    over MiniLM's 100 initializers); packed and string tensors by ByteSize."""
    if tensor.data_type in _PACKED or tensor.data_type == TensorProto.UNDEFINED:
        return tensor.ByteSize()
    count = 1
    for dim in tensor.dims:
        count *= int(dim)
    return count * onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize


def _parse(path: Path) -> tuple[bytes, onnx.ModelProto]:
    try:
        raw = path.read_bytes()
        model = onnx.load_model_from_string(raw)
    except OSError as exc:
        raise ModelLoadError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except Exception as exc:  # protobuf DecodeError (its wording differs between protobuf builds)
        raise ModelLoadError(f"{path} is not an ONNX model: its bytes do not parse as an ONNX "
                             "protobuf (truncated, or another format)") from exc
    if not model.graph.node or not model.opset_import:
        what = "no graph nodes" if not model.graph.node else "no opset import (truncated?)"
        raise ModelLoadError(f"{path} is not an ONNX model: {what}")
    _check_complete(path, model.graph)
    return raw, model


def _check_complete(path: Path, graph: onnx.GraphProto) -> None:
    """Every node input is produced somewhere; a cut-short file leaves dangling names."""
    known = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    known.update(o for node in graph.node for o in node.output)
    for node in graph.node:
        missing = [n for n in node.input if n not in known]
        if missing:
            raise ModelLoadError(f"{path} is not an ONNX model: node {node.name or node.op_type!r}"
                                 f" reads {missing[0]!r}, which nothing produces (truncated?)")


def check_op_domains(path: Path, model: onnx.ModelProto) -> None:
    """Refuse ops from domains only a custom-op library provides: padlens never loads one."""
    known = set(BUILTIN_DOMAINS) | {f.domain for f in model.functions}
    for node in iter_nodes(model.graph):
        if node.domain not in known:
            raise ModelLoadError(f"{path} uses op {node.op_type!r} from domain {node.domain!r}, which "
                                 "needs a custom-op library; padlens never loads custom-op libraries")


def iter_nodes(graph: onnx.GraphProto):
    """Every node of ``graph`` and of its subgraphs (If/Loop/Scan bodies)."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                yield from iter_nodes(sub)


def check_external_data(model: onnx.ModelProto, folder: Path) -> None:
    """Refuse external-data locations that are absolute or resolve outside ``folder``."""
    base = folder.resolve()
    for tensor in all_tensors(model):
        if not uses_external_data(tensor):
            continue
        location = ExternalDataInfo(tensor).location
        if _is_absolute(location):
            raise ModelLoadError(f"tensor {tensor.name!r}: external data location {location!r} "
                                 "is an absolute path; only files beside the model are read")
        target = (base / location).resolve()
        if target != base and base not in target.parents:
            raise ModelLoadError(f"tensor {tensor.name!r}: external data location {location!r} "
                                 f"resolves outside the model's folder {folder}")
        if not target.is_file():
            raise ModelLoadError(f"tensor {tensor.name!r}: external data file {location!r} "
                                 f"is missing from {folder}")


def _is_absolute(location: str) -> bool:
    return (PurePosixPath(location).is_absolute() or PureWindowsPath(location).is_absolute()
            or bool(PureWindowsPath(location).drive) or location.startswith(("\\", "~")))


def recognise_inputs(path: Path, graph: onnx.GraphProto) -> list[InputSpec]:
    """Give each graph input a role by name; the token input must be int32 or int64."""
    init = {t.name for t in graph.initializer}
    real = [i for i in graph.input if i.name not in init]
    specs, unknown = [], []
    for inp in real:
        role = _role_by_name(inp.name)
        elem = inp.type.tensor_type.elem_type
        if role == CACHE_ROLE:
            specs.append(cache_spec(path, inp, graph))
            continue
        if role is None:
            unknown.append(inp)
            continue
        allowed = MASK_TYPES if role == "attention_mask" else INT_TYPES
        if elem not in allowed:
            raise ModelLoadError(f"{path}: input {inp.name!r} ({role}) has element type "
                                 f"{TensorProto.DataType.Name(elem)}, not an integer")
        specs.append(InputSpec(inp.name, role, allowed[elem]))
    _fallback_token_input(specs, unknown)
    if not any(s.role == "input_ids" for s in specs):
        raise ModelLoadError(f"{path} is not a token encoder: no integer input_ids input "
                             f"(inputs: {', '.join(i.name for i in real) or 'none'})")
    if unknown:
        names = ", ".join(repr(i.name) for i in unknown)
        raise ModelLoadError(f"{path}: padlens does not know what to feed input(s) {names}")
    return specs


def _role_by_name(name: str) -> str | None:
    key = name.split(":")[0].strip().lower()
    if CACHE_INPUT.match(key):
        return CACHE_ROLE
    for role, names in ROLE_NAMES.items():
        if key in names:
            return role
    return None


def _fallback_token_input(specs: list[InputSpec], unknown: list) -> None:
    """One unnamed integer input and no input_ids: that input is the token ids."""
    ints = [i for i in unknown if i.type.tensor_type.elem_type in INT_TYPES]
    if any(s.role == "input_ids" for s in specs) or len(ints) != 1:
        return
    unknown.remove(ints[0])
    specs.insert(0, InputSpec(ints[0].name, "input_ids",
                              INT_TYPES[ints[0].type.tensor_type.elem_type]))
    log.info("taking input %r as input_ids", ints[0].name)


def is_cache_output(name: str) -> bool:
    """A present KV cache output (``present.N.key``): padlens never fetches it."""
    return bool(CACHE_OUTPUT.match(name.lower()))


def cache_spec(path: Path, inp: onnx.ValueInfoProto, graph: onnx.GraphProto | None = None) -> InputSpec:
    """A past KV cache input [batch, kv_heads, past_sequence_length, head_dim] fed empty: its
    dtype as declared (fp32 or fp16), head count and head size from the graph (the input, else its
    ``present`` output, else ONNX shape inference of the Concat that extends it), else config.json."""
    tensor = inp.type.tensor_type
    if tensor.elem_type not in CACHE_TYPES:
        raise ModelLoadError(f"{path}: cache input {inp.name!r} has element type "
                             f"{TensorProto.DataType.Name(tensor.elem_type)}; padlens feeds an empty "
                             "float32 or float16 cache")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
    if tensor.HasField("shape") and len(dims) != 4:
        raise ModelLoadError(f"{path}: cache input {inp.name!r} has {len(dims)} dimensions, not "
                             "[batch, kv_heads, past_sequence_length, head_dim]")
    heads, size = (dims[1], dims[3]) if len(dims) == 4 else (None, None)
    for reader in ((lambda: _present_dims(graph, inp.name)), (lambda: _inferred_dims(graph, inp.name))):
        if graph is not None and (not heads or not size):
            found = reader()
            heads, size = heads or found[0], size or found[1]
    if not heads or not size:
        from_config = cache_dims_from_config(path)
        heads, size = heads or from_config[0], size or from_config[1]
    if not heads or not size:
        raise ModelLoadError(f"{path}: cannot tell the shape of cache input {inp.name!r}: the graph "
                             "leaves kv_heads or head_dim symbolic and no config.json beside it gives "
                             "num_key_value_heads and head_dim (or hidden_size / num_attention_heads)")
    return InputSpec(inp.name, CACHE_ROLE, CACHE_TYPES[tensor.elem_type], (int(heads), int(size)))


def _dims_of(info: onnx.ValueInfoProto | None) -> tuple[int | None, int | None]:
    dims = [d.dim_value or None for d in info.type.tensor_type.shape.dim] if info is not None else []
    return (dims[1], dims[3]) if len(dims) == 4 else (None, None)


def _present_dims(graph: onnx.GraphProto, name: str) -> tuple[int | None, int | None]:
    """(kv_heads, head_dim) declared by the ``present.N.key/value`` output matching cache input ``name``."""
    match = CACHE_INPUT.match(name.lower())
    wanted = re.compile(rf"^present(?:_key_values)?[._]{match.group(1)}[._]{match.group(2)}$") if match else None
    info = next((o for o in graph.output if wanted is not None and wanted.match(o.name.lower())), None)
    return _dims_of(info)


def _inferred_dims(graph: onnx.GraphProto, name: str) -> tuple[int | None, int | None]:
    """(kv_heads, head_dim) of the Concat that extends cache input ``name``, by ONNX shape inference."""
    concat = next((n for n in graph.node if n.op_type == "Concat" and name in n.input), None)
    if concat is None:
        return None, None
    model = onnx.helper.make_model(graph)
    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True).graph
    except Exception as exc:  # noqa: BLE001  (inference is a best effort: config.json comes next)
        log.debug("shape inference failed: %s", exc)
        return None, None
    infos = {v.name: v for v in [*inferred.value_info, *inferred.output]}
    return _dims_of(infos.get(concat.output[0]))


def cache_dims_from_config(path: Path) -> tuple[int | None, int | None]:
    """(kv_heads, head_dim) from the config.json beside the model (or above its onnx/ folder)."""
    config = model_config(path)

    def count(key: str) -> int | None:
        value = config.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None

    heads = count("num_attention_heads")
    kv = count("num_key_value_heads") or heads
    size = count("head_dim") or (count("hidden_size") // heads if heads and count("hidden_size") else None)
    return kv, size


#: config.json keys padlens reads, each a positive count (None: absent)
CONFIG_COUNTS = ("max_position_embeddings", "vocab_size", "num_attention_heads", "num_key_value_heads",
                 "head_dim", "hidden_size")
_CONFIGS: dict[tuple, dict] = {}


def model_config(path: Path) -> dict:
    """config.json beside the model file ``path``, or above its ``onnx/`` folder, validated where read
    (``read_config``); {} when there is none."""
    folder = Path(path).parent
    for candidate in (folder, folder.parent):
        if (candidate / "config.json").is_file():
            return read_config(candidate / "config.json")
    return {}


def read_config(file: Path) -> dict:
    """A model's config.json as padlens uses it: a file that is not a JSON object is ignored, and a
    value padlens cannot use is dropped, each with one warning (per file and version) saying what
    padlens uses instead."""
    try:
        st = file.stat()
        key = (str(file.resolve()), st.st_size, st.st_mtime_ns)
    except OSError:
        return {}
    if key not in _CONFIGS:
        _CONFIGS[key] = _checked_config(file)
    return dict(_CONFIGS[key])


def _checked_config(file: Path) -> dict:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        log.warning("%s is not JSON (%s): padlens ignores it (causality, cache sizes and positions "
                    "are read from the graph alone)", file, exc)
        return {}
    if not isinstance(data, dict):
        log.warning("%s is not a JSON object: padlens ignores it", file)
        return {}
    for name in CONFIG_COUNTS:
        value = data.get(name)
        if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
            log.warning("%s: %s %r is not a positive integer: padlens ignores it (%s)", file, name, value,
                        "positions are read from the graph's position table" if name == "max_position_embeddings"
                        else "sizes are read from the graph")
            data.pop(name)
    pad = data.get("pad_token_id")
    limit = data.get("vocab_size") or 2 ** 31
    if pad is not None and not (isinstance(pad, int) and not isinstance(pad, bool) and 0 <= pad < limit):
        log.warning("%s: pad_token_id %r is not an id in the vocabulary (0 to %d): padlens ignores it and "
                    "pads with the tokenizer's pad token", file, pad, limit - 1)
        data.pop("pad_token_id")
    return data
