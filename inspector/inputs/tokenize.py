"""Tokenize texts into padded int64 batches with the `tokenizers` library (no PyTorch)."""
from __future__ import annotations

import contextlib
import functools
import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from tokenizers import Tokenizer

from padlens.errors import BadInput, PadlensError, Param
from padlens.inspector.inputs.options import PADDINGS, SIDES, check_counts, check_padding  # noqa: F401  (PADDINGS re-exported)
from padlens.inspector.stats.pooling import mask_positions

log = logging.getLogger(__name__)

PAD_TOKEN_GUESSES = ("[PAD]", "<pad>", "<|pad|>", "[pad]")
#: what ``check_encodes`` encodes at open: one text, and a pair for graphs fed token_type_ids
PROBE_TEXT = ("padlens checks this tokenizer.",)
PROBE_PAIR = ("padlens checks this tokenizer.", "And a second text.")
#: model_max_length at or above this is transformers' "no limit" sentinel (int(1e30) and the like)
NO_LIMIT = 1_000_000


@dataclass(frozen=True)
class ShippedSettings:
    """The padding and truncation a tokenizer folder ships: what production runtimes (fastembed, TEI,
    transformers.js) apply as they are, where padlens pads and truncates its own way.

    Attributes:
        file: the tokenizer.json they were read from ("" for a vocab.txt folder).
        padding: tokenizer.json's padding strategy, ``fixed`` or ``longest``; None: no padding block.
        padding_length: the ``Fixed`` length (None unless ``fixed``).
        padding_side: tokenizer.json's padding direction, ``right`` or ``left`` (None: no block).
        pad_id: tokenizer.json's padding pad_id (None: no block).
        truncation: tokenizer.json's truncation max_length (None: no truncation block).
        config_side: tokenizer_config.json's padding_side when it is ``right`` or ``left``.
        model_max_length: tokenizer_config.json's model_max_length when it is a usable bound.
    """

    file: str = ""
    padding: str | None = None
    padding_length: int | None = None
    padding_side: str | None = None
    pad_id: int | None = None
    truncation: int | None = None
    config_side: str | None = None
    model_max_length: int | None = None

    @property
    def side(self) -> tuple[str, str] | None:
        """(side, where) a runtime pads on: tokenizer.json's direction, else tokenizer_config.json's."""
        if self.padding_side:
            return self.padding_side, "tokenizer.json padding"
        return (self.config_side, "tokenizer_config.json") if self.config_side else None

    def difference(self, side: str, length: int, padding: str = "max_length") -> str | None:
        """One line saying how padlens' padding (``side``, to ``length`` or the batch's ``longest``)
        differs from what the folder ships, or None where they agree or nothing is shipped."""
        ours, theirs = [], []
        shipped_side = self.side
        if shipped_side and shipped_side[0] != side:
            ours.append(f"on the {side}")
            theirs.append(f"on the {shipped_side[0]} ({shipped_side[1]})")
        if self.padding == "fixed" and (padding != "max_length" or self.padding_length != length):
            ours.append(f"to {length} tokens" if padding == "max_length" else "to each batch's longest text")
            theirs.append(f"to a Fixed {self.padding_length}")
        elif self.padding == "longest" and padding == "max_length":
            ours.append(f"to {length} tokens")
            theirs.append("to each batch's longest text (BatchLongest)")
        if self.truncation is not None and self.truncation != length:
            ours.append(f"truncates at {length}")
            theirs.append(f"truncates at {self.truncation}")
        if not ours:
            return None
        return (f"padlens pads {', '.join(ours)}; the folder's tokenizer ships padding {', '.join(theirs)}: "
                "a runtime that applies the shipped settings feeds the model other inputs than measured here")


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
        shipped: the padding and truncation the folder ships (``ShippedSettings``): what production
            runtimes apply, where padlens sets its own.
    """

    tokenizer: Tokenizer
    path: Path
    pad_id: int
    pad_token: str | None = None
    pad_type_id: int = 0
    padding_side: str = "right"
    model_max_length: int | None = None
    padding_side_given: bool = False
    shipped: ShippedSettings = field(default_factory=lambda: ShippedSettings())

    def __post_init__(self) -> None:
        self.tokenizer.no_padding()
        self._lock = threading.Lock()

    @functools.cached_property
    def vocab_size(self) -> int:
        """One more than the largest id the tokenizer can emit (added tokens included; read once)."""
        with self._failures("read its vocabulary"):
            ids = self.tokenizer.get_vocab(with_added_tokens=True).values()
        return max(ids) + 1 if ids else 0

    @contextlib.contextmanager
    def _failures(self, *doing):
        """A `tokenizers` failure (it raises plain Exception) as BadInput naming the file: bad input,
        not a padlens bug. ``doing``: message pieces (text and ``Param``s)."""
        try:
            yield
        except PadlensError:
            raise
        except Exception as exc:  # noqa: BLE001  (tokenizers' errors are plain Exception)
            raise BadInput(f"tokenizer {self.file} cannot ", *doing, f": {exc}") from exc

    @property
    def file(self) -> Path:
        """The file the tokenizer was read from: tokenizer.json (or a BERT vocab.txt)."""
        if not self.path.is_dir():
            return self.path
        return next((self.path / n for n in ("tokenizer.json", "vocab.txt") if (self.path / n).is_file()), self.path)

    def check_encodes(self, pair: bool = False) -> None:
        """Encode a short probe text (and a pair when ``pair``: graphs fed token_type_ids) under the
        lock: a tokenizer that loads but cannot encode is one BadInput here, before any model work."""
        with self._lock, self._failures("encode text" + (" pairs" if pair else "")):
            self.tokenizer.no_truncation()
            self.tokenizer.encode(*PROBE_PAIR if pair else PROBE_TEXT[:1])

    def encode(self, texts: Sequence[str], max_length: int = 128, padding: str = "max_length",
               side: str = "right") -> Batch:
        """Tokenize ``texts``, truncate each to ``max_length`` (special tokens kept), and pad.

        ``padding="max_length"`` pads every row to ``max_length``; ``"longest"`` to the
        longest row. ``side`` puts the pads on the right or on the left.
        """
        texts = _check_encode_args(texts, max_length, padding, side)
        # truncation is state on the tokenizer: set it per call, under a lock
        with self._lock, self._failures("encode these texts (", Param("max_length", max_length), ")"):
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
    file = path / "tokenizer.json" if path.is_dir() else path
    pad_id, pad_token, pad_type = _find_pad(tokenizer, config, tokenizer_json, path)
    side = _config_side(config, folder)
    limit = _config_limit(config, folder)
    log.debug("tokenizer %s: pad %r id %d type %d", path, pad_token, pad_id, pad_type)
    tok = PadTokenizer(tokenizer, path, pad_id, pad_token, pad_type, side or "right", limit, side is not None)
    tok.check_encodes()  # a tokenizer that loads but cannot encode fails here, before any model work
    tok.shipped = shipped_settings(tokenizer_json, file if tokenizer_json else None, side, limit, tok)
    return tok


def _config_side(config: dict, folder: Path) -> str | None:
    """tokenizer_config.json's padding_side when right or left; any other value is named in a warning."""
    side = config.get("padding_side")
    if side is None or side in SIDES:
        return side
    log.warning("%s: padding_side %r is neither right nor left: padlens ignores it (auto: left for a causal "
                "model, else right; --padding-side chooses)", folder / "tokenizer_config.json", side)
    return None


def _config_limit(config: dict, folder: Path) -> int | None:
    """tokenizer_config.json's model_max_length as a bound (None: absent, or the no-limit sentinel);
    a value that is not a positive number is named in a warning and ignored."""
    limit = config.get("model_max_length")
    if limit is None:
        return None
    if not isinstance(limit, (int, float)) or isinstance(limit, bool) or not limit >= 1:
        log.warning("%s: model_max_length %r is not a positive integer: padlens ignores it (the length comes "
                    "from --max-length, else 128 within the model's positions)", folder / "tokenizer_config.json",
                    limit)
        return None
    return int(limit) if limit < NO_LIMIT else None


def shipped_settings(raw: dict, file: Path | None, side: str | None, limit: int | None,
                     tok: PadTokenizer) -> ShippedSettings:
    """tokenizer.json's padding and truncation blocks as shipped, each value checked: one padlens
    (or a runtime applying them) cannot use is named in a warning saying what padlens does instead."""
    padding = raw.get("padding") if isinstance(raw.get("padding"), dict) else None
    truncation = raw.get("truncation") if isinstance(raw.get("truncation"), dict) else None
    kind, length, direction, pad_id = _padding_block(padding, file, tok)
    cut = _truncation_block(truncation, file)
    if kind == "fixed" and length is not None and (cut is None or cut > length):
        log.warning("%s: padding is Fixed at %d tokens but %s: a runtime applying it gets rows longer than %d "
                    "(ragged batches); padlens pads every batch to one length itself", file, length,
                    f"truncation is at {cut}" if cut else "nothing truncates", length)
    return ShippedSettings(str(file or ""), kind, length, direction, pad_id, cut, side, limit)


def _padding_block(padding: dict | None, file: Path | None, tok: PadTokenizer):
    """(strategy, Fixed length, side, pad_id) of tokenizer.json's padding block (Nones: no block)."""
    if padding is None:
        return None, None, None, None
    strategy, length = padding.get("strategy"), None
    if isinstance(strategy, dict) and "Fixed" in strategy:
        kind, length = "fixed", strategy["Fixed"]
        if not _positive(length):
            log.warning("%s: padding Fixed %r is not a positive length: padlens ignores it", file, length)
            kind, length = None, None
    else:
        kind = "longest" if strategy == "BatchLongest" else None
    direction = str(padding.get("direction", "")).lower() or None
    direction = direction if direction in SIDES else None
    pad_id = padding.get("pad_id")
    if pad_id is not None and not (_count(pad_id) and pad_id < tok.vocab_size):
        log.warning("%s: padding pad_id %r is outside the vocabulary (%d tokens): a runtime applying it indexes "
                    "past the embedding table; padlens pads with id %d%s", file, pad_id, tok.vocab_size, tok.pad_id,
                    f" ({tok.pad_token})" if tok.pad_token else "")
        pad_id = None
    return kind, length, direction, pad_id


def _truncation_block(truncation: dict | None, file: Path | None) -> int | None:
    """tokenizer.json's truncation max_length (None: no block, or a value named in a warning)."""
    if truncation is None:
        return None
    cut = truncation.get("max_length")
    if not _positive(cut):
        log.warning("%s: truncation max_length %r is not a positive length: the tokenizers library then cuts "
                    "nothing; padlens truncates to its own length (--max-length, else 128)", file, cut)
        return None
    return int(cut)


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _positive(value) -> bool:
    return _count(value) and value > 0


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
    padding = tokenizer_json.get("padding") if isinstance(tokenizer_json.get("padding"), dict) else {}
    pad_type = config.get("pad_token_type_id", padding.get("pad_type_id", 0)) or 0
    if not _count(pad_type):
        log.warning("%s: pad_token_type_id %r is not a token type id: padlens writes type 0 at pads", path, pad_type)
        pad_type = 0
    candidates = [_token_text(config.get("pad_token")), padding.get("pad_token"), *PAD_TOKEN_GUESSES]
    for token in (c for c in candidates if isinstance(c, str) and c):
        try:
            pad_id = tokenizer.token_to_id(token)
        except Exception as exc:  # noqa: BLE001  (tokenizers raises plain Exception)
            raise BadInput(f"tokenizer {path} cannot look up its pad token {token!r}: {exc}") from exc
        if pad_id is not None:
            return pad_id, token, pad_type
    pad_id = padding.get("pad_id")
    if _count(pad_id):
        if pad_id >= tokenizer.get_vocab_size(with_added_tokens=True):
            raise BadInput(f"tokenizer {path}: its only pad id, tokenizer.json padding pad_id {pad_id}, is outside "
                           f"the vocabulary ({tokenizer.get_vocab_size(with_added_tokens=True)} tokens) and it "
                           "has no pad token: add one (pad_token in tokenizer_config.json)")
        return pad_id, None, pad_type
    raise BadInput(f"tokenizer {path} has no pad token (looked in tokenizer_config.json, "
                   f"special_tokens_map.json, tokenizer.json padding, and for {', '.join(PAD_TOKEN_GUESSES)})")
