"""Tokenize texts into padded int64 batches with the `tokenizers` library (no PyTorch)."""
from __future__ import annotations

import functools
import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from tokenizers import Tokenizer

from padlens.errors import BadInput
from padlens.inspector.inputs.options import PADDINGS, SIDES, check_counts, check_padding  # noqa: F401  (PADDINGS re-exported)
from padlens.inspector.stats.pooling import mask_positions

log = logging.getLogger(__name__)

PAD_TOKEN_GUESSES = ("[PAD]", "<pad>", "<|pad|>", "[pad]")


@dataclass
class Batch:
    """Texts tokenized and padded to one length.

    Attributes:
        input_ids: int64 [B, T] token ids, pads hold the tokenizer's pad id.
        attention_mask: int64 [B, T], 1 on real tokens (special tokens included), 0 on pads.
        token_type_ids: int64 [B, T], the sequence type of real tokens, the pad token type on pads.
        position_ids: int64 [B, T], counted from the mask: the cumulative count of real tokens
            minus one, clipped at 0 (``mask_positions``), so real tokens hold 0..n-1 on either
            padding side (right: the same as ``arange`` on real tokens; pads repeat n-1 or 0).
        special_tokens_mask: int64 [B, T], 1 on real special tokens ([CLS], [SEP], ...),
            0 on content tokens and on pads.
        lengths: int64 [B], the number of real tokens of each row.
        side: "right" or "left": where the pads are.
        pad_id: the id written at pad positions.
    """

    input_ids: np.ndarray
    attention_mask: np.ndarray
    token_type_ids: np.ndarray
    position_ids: np.ndarray
    special_tokens_mask: np.ndarray
    lengths: np.ndarray
    side: str
    pad_id: int

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.input_ids.shape)  # type: ignore[return-value]

    @property
    def pad_mask(self) -> np.ndarray:
        """bool [B, T], True at pad positions."""
        return self.attention_mask == 0


@dataclass
class PadTokenizer:
    """A `tokenizers.Tokenizer` plus what padding needs to know.

    Attributes:
        tokenizer: a private copy of the tokenizer; padding is never enabled on it
            (padding is done in numpy), truncation is set on every call.
        path: where it was loaded from.
        pad_id: id of the pad token.
        pad_token: the pad token's text, or None when only an id was found.
        pad_type_id: token type id written at pad positions.
        padding_side: the side the tokenizer's own config prefers ("right" when unsaid).
        padding_side_given: whether tokenizer_config.json said it (``choose_side`` reads it).
        model_max_length: the tokenizer config's model_max_length, or None when absent
            or a "no limit" sentinel.
    """

    tokenizer: Tokenizer
    path: Path
    pad_id: int
    pad_token: str | None = None
    pad_type_id: int = 0
    padding_side: str = "right"
    model_max_length: int | None = None
    padding_side_given: bool = False

    def __post_init__(self) -> None:
        self.tokenizer.no_padding()
        self._lock = threading.Lock()

    @functools.cached_property
    def vocab_size(self) -> int:
        """One more than the largest id the tokenizer can emit (added tokens included; read once)."""
        ids = self.tokenizer.get_vocab(with_added_tokens=True).values()
        return max(ids) + 1 if ids else 0

    def token_id(self, token: str) -> int | None:
        return self.tokenizer.token_to_id(token)

    def encode(self, texts: Sequence[str], max_length: int = 128, padding: str = "max_length",
               side: str = "right") -> Batch:
        """Tokenize ``texts``, truncate each to ``max_length`` (special tokens kept), and pad.

        ``padding="max_length"`` pads every row to ``max_length``; ``"longest"`` to the
        longest row. ``side`` puts the pads on the right or on the left.
        """
        texts = _check_encode_args(texts, max_length, padding, side)
        with self._lock:  # truncation is state on the tokenizer: set it per call, under a lock
            self.tokenizer.enable_truncation(max_length)
            encodings = self.tokenizer.encode_batch(texts)
        width = max_length if padding == "max_length" else max(len(e.ids) for e in encodings)
        return self._pad(encodings, width, side)

    def _pad(self, encodings, width: int, side: str) -> Batch:
        rows = [(e.ids, e.type_ids, e.special_tokens_mask) for e in encodings]
        return pad_rows(rows, width, side, self.pad_id, self.pad_type_id)


def pad_rows(rows: Sequence[tuple[Sequence[int], Sequence[int], Sequence[int]]], width: int, side: str,
             pad_id: int, pad_type: int) -> Batch:
    """Tokenized rows (ids, type ids, special mask), each at most ``width`` long, padded to
    ``width`` on ``side``: pad ids and the pad type at pads, the mask 1 on real tokens, positions
    from the mask. The one padding of the inspector (the tokenizer's batches, the audit's variants)."""
    n = len(rows)
    ids, types = np.full((n, width), pad_id, np.int64), np.full((n, width), pad_type, np.int64)
    mask, special = np.zeros((n, width), np.int64), np.zeros((n, width), np.int64)
    lengths = np.array([len(r[0]) for r in rows], np.int64)
    for k, ((row_ids, row_types, row_special), length) in enumerate(zip(rows, lengths)):
        cols = slice(0, length) if side == "right" else slice(width - length, width)
        ids[k, cols], types[k, cols], special[k, cols], mask[k, cols] = row_ids, row_types, row_special, 1
    return Batch(ids, mask, types, mask_positions(mask), special, lengths, side, pad_id)


def arange_positions(mask: np.ndarray) -> np.ndarray:
    """``arange(T)`` on every row: the naive position ids (position_ids_follow_mask's contrast)."""
    n, width = np.asarray(mask).shape
    return np.broadcast_to(np.arange(width, dtype=np.int64), (n, width)).copy()


#: how a side was chosen: the option, the tokenizer's config, or the model's kind
SIDE_SOURCES = ("option", "tokenizer_config", "causal", "default")


SIDE_REASONS = {"tokenizer_config": "auto: tokenizer config", "causal": "auto: causal model"}


def side_words(side: str, source: str) -> str:
    """``left padding (auto: causal model)``, ``right padding (auto: tokenizer config)``; plain
    ``right padding`` when asked for or by default (an encoder)."""
    reason = SIDE_REASONS.get(source)
    return f"{side} padding" + (f" ({reason})" if reason else "")


def choose_side(asked: str, tokenizer: PadTokenizer, causal: bool) -> tuple[str, str]:
    """(side, where it came from): ``asked`` unless ``auto``; then the tokenizer config's
    ``padding_side``, else ``left`` for a causal (decoder) model, else ``right``."""
    if asked != "auto":
        return asked, "option"
    if tokenizer.padding_side_given:
        return tokenizer.padding_side, "tokenizer_config"
    return ("left", "causal") if causal else ("right", "default")


def _check_encode_args(texts, max_length: int, padding: str, side: str) -> list[str]:
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    if not texts:
        raise BadInput("no texts to tokenize")
    if not all(isinstance(t, str) for t in texts):
        raise BadInput("every text must be a string")
    check_counts(max_length=max_length)
    check_padding(padding, side)
    return texts


#: files a tokenizer is read from; a loaded one is reused while none of them changed
SOURCE_FILES = ("tokenizer.json", "vocab.txt", "special_tokens_map.json", "tokenizer_config.json")
_LOADED: dict[tuple, PadTokenizer] = {}
LOADED_MAX = 8


def load_tokenizer(path: str | Path) -> PadTokenizer:
    """Load a tokenizer from a folder (tokenizer.json, or a BERT vocab.txt) or a tokenizer.json.

    One loaded from the same files (same paths, sizes and modification times) is returned
    again: the audit opens each precision of an export with the same tokenizer. A
    PadTokenizer is never changed after loading, and ``encode`` holds its lock."""
    path = Path(path)
    if not path.exists():
        raise BadInput(f"tokenizer {path} does not exist")
    key = _stamp(path)
    if key not in _LOADED:
        if len(_LOADED) >= LOADED_MAX:
            _LOADED.pop(next(iter(_LOADED)))
        _LOADED[key] = _load_tokenizer(path)
    return _LOADED[key]


def _stamp(path: Path) -> tuple:
    """What identifies a tokenizer's files on disk: each one's path, size and mtime."""
    folder = path if path.is_dir() else path.parent
    files = [path] if path.is_file() else []
    files += [folder / name for name in SOURCE_FILES]
    stamps = []
    for file in files:
        try:
            st = file.stat()
        except OSError:
            continue
        stamps.append((str(file.resolve()), st.st_size, st.st_mtime_ns))
    return (str(path.resolve()), tuple(stamps))


def _load_tokenizer(path: Path) -> PadTokenizer:
    folder = path if path.is_dir() else path.parent
    config = _read_configs(folder)
    tokenizer, tokenizer_json = _load_backend(path, config)
    pad_id, pad_token, pad_type = _find_pad(tokenizer, config, tokenizer_json, path)
    side = config.get("padding_side") if config.get("padding_side") in SIDES else "right"
    limit = config.get("model_max_length")
    limit = int(limit) if isinstance(limit, (int, float)) and 0 < limit < 1_000_000 else None
    log.debug("tokenizer %s: pad %r id %d type %d", path, pad_token, pad_id, pad_type)
    return PadTokenizer(tokenizer, path, pad_id, pad_token, pad_type, side, limit,
                        config.get("padding_side") in SIDES)


def _load_backend(path: Path, config: dict) -> tuple[Tokenizer, dict]:
    """The Tokenizer, and the raw tokenizer.json (``{}`` for a vocab.txt folder)."""
    file = path / "tokenizer.json" if path.is_dir() else path
    if file.is_file():
        try:
            raw = file.read_text(encoding="utf-8")
            return Tokenizer.from_str(raw), json.loads(raw)
        except Exception as exc:  # tokenizers raises plain Exception on bad files
            raise BadInput(f"tokenizer {file} cannot be read: {exc}") from exc
    vocab = path / "vocab.txt" if path.is_dir() else None
    if vocab is not None and vocab.is_file():
        return _wordpiece_from_vocab(vocab, config), {}
    raise BadInput(f"{path} holds no tokenizer.json (nor a vocab.txt for a BERT WordPiece tokenizer)")


def _wordpiece_from_vocab(vocab: Path, config: dict) -> Tokenizer:
    """A BERT WordPiece tokenizer built from vocab.txt the way BertWordPieceTokenizer does."""
    from tokenizers.implementations import BertWordPieceTokenizer
    from tokenizers.models import WordPiece

    def token(name: str, default: str) -> str:
        return _token_text(config.get(name)) or default

    try:
        bert = BertWordPieceTokenizer(
            WordPiece.read_file(str(vocab)), unk_token=token("unk_token", "[UNK]"), sep_token=token("sep_token", "[SEP]"),
            cls_token=token("cls_token", "[CLS]"), pad_token=token("pad_token", "[PAD]"),
            mask_token=token("mask_token", "[MASK]"), lowercase=bool(config.get("do_lower_case", True)),
            strip_accents=config.get("strip_accents"),
            handle_chinese_chars=bool(config.get("tokenize_chinese_chars", True)),
        )
    except Exception as exc:
        raise BadInput(f"cannot build a WordPiece tokenizer from {vocab}: {exc}") from exc
    return Tokenizer.from_str(bert._tokenizer.to_str())


def _read_configs(folder: Path) -> dict:
    """special_tokens_map.json overlaid by tokenizer_config.json (the latter wins)."""
    merged: dict = {}
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        file = folder / name
        if not file.is_file():
            continue
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BadInput(f"tokenizer file {file} is not valid JSON: {exc}") from exc
        if isinstance(data, dict):
            merged.update({k: v for k, v in data.items() if v is not None})
    return merged


def _token_text(value) -> str | None:
    """A special token as configs write it: a string or {"content": ...}."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) and value else None


def _find_pad(tokenizer: Tokenizer, config: dict, tokenizer_json: dict,
              path: Path) -> tuple[int, str | None, int]:
    """(pad id, pad token, pad token type) from the configs, tokenizer.json padding, or the vocab."""
    padding = tokenizer_json.get("padding") or {}
    pad_type = int(config.get("pad_token_type_id", padding.get("pad_type_id", 0)) or 0)
    candidates = [_token_text(config.get("pad_token")), padding.get("pad_token"), *PAD_TOKEN_GUESSES]
    for token in filter(None, candidates):
        pad_id = tokenizer.token_to_id(token)
        if pad_id is not None:
            return pad_id, token, pad_type
    if isinstance(padding.get("pad_id"), int):
        return padding["pad_id"], None, pad_type
    raise BadInput(f"tokenizer {path} has no pad token (looked in tokenizer_config.json, "
                   f"special_tokens_map.json, tokenizer.json padding, and for {', '.join(PAD_TOKEN_GUESSES)})")
