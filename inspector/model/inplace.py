"""Sessions that read a model's weights in place, from its own file.

An instrumented model is the file's bytes plus a small delta (``graph.exposed_model``). Handed to
ONNX Runtime as bytes, every weight is copied twice more (into the concatenation, and by the
Python binding) and parsed again: ≈ 0.12 s for MiniLM's 90 MB against ≈ 0.03 s this way.
``referencing_bytes`` rewrites the serialised model at the protobuf wire level so that each
large top-level initializer, instead of carrying its ``raw_data``, names its own bytes inside the
original file as ONNX external data (``location`` = the file's name, ``offset``, ``length``);
``padlens.inspector.runtime.session.create_session`` tells ONNX Runtime where that file lies
(``session.model_external_initializers_file_folder_path``), and ONNX Runtime maps it. The weights
are the same bytes: the outputs are bit-identical (tests/inspector/model/test_inplace.py).

Only self-contained files are rewritten (no external data already, under protobuf's 2 GB); any
byte sequence this module does not recognise gives None, and the caller uses the whole bytes.
Like any model with external data, the file must not be truncated in place while the session
lives (padlens and Optimum replace files by renaming, which is safe).
"""
from __future__ import annotations

import logging

log = logging.getLogger(__name__)

MIN_SIZE = 1024  # bytes: smaller initializers stay inline
# field numbers of onnx.proto
MODEL_GRAPH = 7
GRAPH_INITIALIZER = 5
TENSOR_NAME, TENSOR_RAW, TENSOR_EXTERNAL, TENSOR_LOCATION = 8, 9, 13, 14
EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL
VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5


class WireError(ValueError):
    """The bytes are not the protobuf this module expects."""


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= end or shift > 63:
            raise WireError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(data: bytes, start: int, end: int):
    """(field number, wire type, start of the field's key, start of its value, end of the field)
    for each field of the message in ``data[start:end]``; a LENGTH field's value excludes its length."""
    pos = start
    while pos < end:
        key_at = pos
        key, pos = _varint(data, pos, end)
        number, wire = key >> 3, key & 7
        if wire == VARINT:
            _, after = _varint(data, pos, end)
        elif wire == FIXED64:
            after = pos + 8
        elif wire == FIXED32:
            after = pos + 4
        elif wire == LENGTH:
            size, pos = _varint(data, pos, end)
            after = pos + size
        else:
            raise WireError(f"wire type {wire}")
        if after > end or number == 0:
            raise WireError("field past the end of its message")
        yield number, wire, key_at, pos, after
        pos = after


def _key(number: int, wire: int) -> bytes:
    return _encode_varint((number << 3) | wire)


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _length_field(number: int, payload: bytes) -> bytes:
    return _key(number, LENGTH) + _encode_varint(len(payload)) + payload


def _entry(key: str, value: str) -> bytes:
    """A StringStringEntryProto (key = 1, value = 2) as a TensorProto.external_data field."""
    return _length_field(TENSOR_EXTERNAL, _length_field(1, key.encode()) + _length_field(2, value.encode()))


def _tensor(data: bytes, start: int, end: int, location: str, min_size: int) -> bytes | None:
    """The TensorProto in ``data[start:end]`` referring to its raw_data in ``location``, or None
    when it stays as it is (no raw_data, small, or already external)."""
    raw = None
    kept = []
    for number, wire, key_at, value_at, after in _fields(data, start, end):
        if number in (TENSOR_EXTERNAL, TENSOR_LOCATION):
            return None
        if number == TENSOR_RAW and wire == LENGTH:
            raw = (value_at, after - value_at)
        else:
            kept.append(data[key_at:after])
    if raw is None or raw[1] < min_size:
        return None
    refs = _entry("location", location) + _entry("offset", str(raw[0])) + _entry("length", str(raw[1]))
    return b"".join(kept) + refs + _key(TENSOR_LOCATION, VARINT) + _encode_varint(EXTERNAL)


def _graph(data: bytes, start: int, end: int, location: str, min_size: int) -> tuple[bytes, int]:
    parts, moved = [], 0
    for number, wire, key_at, value_at, after in _fields(data, start, end):
        tensor = None
        if number == GRAPH_INITIALIZER and wire == LENGTH:
            tensor = _tensor(data, value_at, after, location, min_size)
        if tensor is None:
            parts.append(data[key_at:after])
        else:
            parts.append(_length_field(GRAPH_INITIALIZER, tensor))
            moved += 1
    return b"".join(parts), moved


def referencing_bytes(raw: bytes, location: str, min_size: int = MIN_SIZE) -> bytes | None:
    """The serialised model ``raw`` (the whole content of the file called ``location``) with each
    top-level initializer of ``min_size`` bytes or more referring to its raw_data inside that
    file as external data; None when nothing would move or the bytes do not read as expected."""
    try:
        parts, moved = [], 0
        for number, wire, key_at, value_at, after in _fields(raw, 0, len(raw)):
            if number == MODEL_GRAPH and wire == LENGTH:
                graph, count = _graph(raw, value_at, after, location, min_size)
                parts.append(_length_field(MODEL_GRAPH, graph))
                moved += count
            else:
                parts.append(raw[key_at:after])
    except WireError as exc:
        log.debug("weights stay inline: %s", exc)
        return None
    return b"".join(parts) if moved else None


def weightless(raw: bytes, location: str, min_size: int = MIN_SIZE):
    """The model ``raw`` (the whole content of the file called ``location``) parsed with its large
    initializers referring to their bytes inside that file (``referencing_bytes``): the graph, the
    small constants and every tensor's type and shape, without a copy of the weights. Sessions and
    readers of small external values take it as a model with external data beside it. None when
    nothing would move or the bytes do not read as expected."""
    import onnx

    small = referencing_bytes(raw, location, min_size)
    return onnx.load_model_from_string(small) if small is not None else None
