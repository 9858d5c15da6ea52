"""`padlens embed`: sentence embeddings from any ONNX encoder, streamed to a .npy, no PyTorch."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from padlens.errors import BadInput, ModelLoadError
from padlens.fsio import atomic_path

log = logging.getLogger(__name__)

POOLINGS = ("auto", "mean", "cls", "max")
ST_POOLING = "sentence_transformers.models.Pooling"
ST_NORMALIZE = "sentence_transformers.models.Normalize"
#: sentence-transformers' 1_Pooling/config.json keys, and the padlens pooling each means.
ST_MODES = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls",
            "pooling_mode_max_tokens": "max", "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len",
            "pooling_mode_weightedmean_tokens": "weightedmean", "pooling_mode_lasttoken": "lasttoken"}


@dataclass
class PoolingConfig:
    """How token states become one sentence embedding.

    Attributes:
        mode: ``mean`` (masked), ``cls`` (first real token) or ``max`` (masked).
        normalize: L2-normalise each embedding.
        source: where the choice came from (a file, ``manifest``, ``default`` or ``option``).
        max_length: the model's own max sequence length when its folder says (sentence_bert_config.json).
    """

    mode: str
    normalize: bool
    source: str
    max_length: int | None = None


@dataclass
class EmbedResult:
    """What `embed` wrote.

    Attributes:
        path: the .npy file (float32 [rows, dim]).
        rows: number of texts embedded.
        dim: embedding width.
        model: the model's label.
        pooling: the pooling used.
        normalize: whether rows are L2-normalised.
        pooling_source: where the pooling came from.
        max_length: tokens kept per text.
    """

    path: Path
    rows: int
    dim: int
    model: str
    pooling: str
    normalize: bool
    pooling_source: str
    max_length: int

    def to_dict(self) -> dict:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()}


# --------------------------------------------------------------------------- pooling config


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BadInput(f"{path} is not valid JSON: {exc}") from None


def st_folder(start: Path) -> Path | None:
    """The nearest folder at or up to two levels above ``start`` holding modules.json."""
    folder = start if start.is_dir() else start.parent
    for candidate in (folder, folder.parent, folder.parent.parent):
        if (candidate / "modules.json").is_file():
            return candidate
    return None


def _st_mode(config: dict, file: Path) -> str:
    modes = [ST_MODES[k] for k in ST_MODES if config.get(k)]
    if not modes and isinstance(config.get("pooling_mode"), str):
        modes = [config["pooling_mode"]]
    if len(modes) != 1 or modes[0] not in POOLINGS[1:]:
        raise BadInput(f"{file} asks for pooling {'+'.join(modes) or 'none'}, which padlens does not "
                       "support (mean, cls or max): pass --pooling")
    return modes[0]


def read_st_pooling(folder: Path) -> PoolingConfig:
    """Pooling and normalisation of a sentence-transformers folder (modules.json)."""
    modules = _read_json(folder / "modules.json")
    if not isinstance(modules, list):
        raise BadInput(f"{folder / 'modules.json'} is not a list of modules")
    types = {m.get("type"): m.get("path", "") for m in modules if isinstance(m, dict)}
    if ST_POOLING not in types:
        raise BadInput(f"{folder / 'modules.json'} has no Pooling module: pass --pooling")
    file = folder / types[ST_POOLING] / "config.json"
    mode = _st_mode(_read_json(file), file)
    limit = None
    if (folder / "sentence_bert_config.json").is_file():
        limit = _read_json(folder / "sentence_bert_config.json").get("max_seq_length")
    return PoolingConfig(mode, ST_NORMALIZE in types, str(folder / "modules.json"),
                         int(limit) if isinstance(limit, int) and limit > 0 else None)


def pooling_config(model_path: Path, manifest: dict | None) -> PoolingConfig:
    """``auto`` pooling: a sentence-transformers folder, else the export's manifest, else mean."""
    folder = st_folder(Path(model_path))
    if folder is not None:
        return read_st_pooling(folder)
    if manifest and manifest.get("pooling") in POOLINGS[1:]:
        return PoolingConfig(manifest["pooling"], bool(manifest.get("normalize", False)), "manifest")
    return PoolingConfig("mean", False, "default")


def resolve_pooling(model_path: Path, manifest: dict | None, pooling: str,
                    normalize: bool | None) -> PoolingConfig:
    """Apply the user's ``pooling``/``normalize`` over what ``auto`` reads."""
    if pooling not in POOLINGS:
        raise BadInput(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
    found = pooling_config(model_path, manifest) if pooling == "auto" or normalize is None else None
    if pooling == "auto":
        config = found
    else:
        config = PoolingConfig(pooling, found.normalize if found else False, "option",
                               found.max_length if found else None)
    if normalize is not None:
        config.normalize = bool(normalize)
    return config


# --------------------------------------------------------------------------- pooling maths


def pool(h: np.ndarray, mask: np.ndarray, mode: str) -> np.ndarray:
    """Pool token states ``[B, T, H]`` under ``mask`` ``[B, T]`` into ``[B, H]`` (float64)."""
    h64, m = h.astype(np.float64), mask.astype(bool)
    if mode == "mean":
        w = m[..., None].astype(np.float64)
        return (h64 * w).sum(1) / np.maximum(w.sum(1), 1e-9)
    if mode == "cls":
        first = np.argmax(m, axis=1)  # the first real token, whatever the padding side
        return h64[np.arange(len(h64)), first]
    if mode == "max":
        out = np.where(m[..., None], h64, -np.inf).max(1)
        return np.where(np.isfinite(out), out, 0.0)
    raise BadInput(f"unknown pooling {mode!r}")


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows divided by max(‖row‖, eps), as torch.nn.functional.normalize."""
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), eps)


# --------------------------------------------------------------------------- the model


class LastLayer:
    """An encoder session fetching only the last hidden layer (no other layer, no attention)."""

    def __init__(self, ref, providers: Sequence[str], allow_fallback: bool, threads: int | None):
        from padlens.inspector.encoder import check_vocab, make_feeds
        from padlens.inspector.graph import expose_outputs, load_encoder
        from padlens.inspector.session import create_session
        from padlens.inspector.tokenize import load_tokenizer

        self.ref, self._feeds = ref, make_feeds
        self.tokenizer = load_tokenizer(ref.tokenizer_path)
        self.graph = load_encoder(ref.path)
        check_vocab(self.tokenizer, self.graph.vocab_size, ref.label)
        tensor = self.graph.layers.hidden[-1]
        model, names = expose_outputs(self.graph.model, [tensor])
        self.output = names[tensor]
        self.session = create_session(model, providers, allow_fallback, threads)

    def run(self, batch) -> np.ndarray:
        from padlens.inspector.session import ORT_ERRORS

        feeds = self._feeds(self.graph.inputs, batch)
        try:
            out = self.session.session.run([self.output], feeds)[0]
        except ORT_ERRORS as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelLoadError(f"onnxruntime failed running {self.ref.label}: {first}") from exc
        return np.asarray(out, dtype=np.float32)


def pick_ref(refs: list):
    """The model to embed with: the only one, else the fp32 variant of an export dir."""
    if len(refs) == 1:
        return refs[0]
    fp32 = [r for r in refs if r.precision == "fp32"]
    chosen = fp32[0] if fp32 else refs[0]
    log.info("%d models found; embedding with %s (pass a .onnx file to choose)", len(refs), chosen.label)
    return chosen


def _max_length(limit: int | None, config: PoolingConfig, runner: LastLayer) -> int:
    candidates = [limit] if limit is not None else [config.max_length, runner.tokenizer.model_max_length, 512]
    value = next(int(c) for c in candidates if c)
    if value < 2:
        raise BadInput(f"max length must be at least 2, got {value}")
    positions = runner.graph.max_positions
    if positions is not None and value > int(positions):
        if limit is not None:
            raise BadInput(f"--max-length {value} is beyond {runner.ref.label}'s {positions} position embeddings")
        value = int(positions)
    return value


# --------------------------------------------------------------------------- streaming


def batches(texts: Iterator[str], size: int) -> Iterator[list[str]]:
    while True:
        chunk = list(islice(texts, size))
        if not chunk:
            return
        yield chunk


def _write_rows(runner: LastLayer, texts_file, tmp: Path, total: int, config: PoolingConfig,
                max_length: int, batch_size: int, progress=None) -> int:
    """Embed the texts of ``texts_file`` batch by batch into a memory-mapped .npy at ``tmp``."""
    from numpy.lib.format import open_memmap

    from padlens.inspector.texts import iter_texts

    out, done = None, 0
    for chunk in batches(iter_texts(texts_file), batch_size):
        batch = runner.tokenizer.encode(chunk, max_length=max_length, padding="longest", side="right")
        emb = pool(runner.run(batch), batch.attention_mask, config.mode)
        if config.normalize:
            emb = l2_normalize(emb)
        if out is None:
            out = open_memmap(tmp, mode="w+", dtype=np.float32, shape=(total, emb.shape[1]))
        if done + len(emb) > total:
            raise BadInput(f"{texts_file} changed while it was read (more than {total} texts)")
        out[done:done + len(emb)] = emb
        done += len(emb)
        if progress is not None:
            progress(done)
    if out is None or done != total:
        raise BadInput(f"{texts_file} changed while it was read ({done} of {total} texts)")
    dim = int(out.shape[1])
    out.flush()
    del out
    return dim


def embed(model, texts_file, out, tokenizer=None, pooling: str = "auto", normalize: bool | None = None,
          batch_size: int = 32, max_length: int | None = None, providers: Sequence[str] = ("cpu",),
          allow_fallback: bool = False, threads: int | None = None, progress=None) -> EmbedResult:
    """Embed every text of ``texts_file`` with ``model`` into ``out`` (float32 .npy, one row per text).

    Streams: a counting pass sizes a memory-mapped .npy beside ``out``, then batches of
    ``batch_size`` are written into it; it is renamed onto ``out`` only when complete.
    Memory holds one batch, whatever the file's size. ``progress`` is called with the
    number of texts written after each batch.
    """
    from padlens.inspector.resolve import resolve_models
    from padlens.inspector.texts import count_texts

    if int(batch_size) < 1:
        raise BadInput(f"batch size must be at least 1, got {batch_size}")
    ref = pick_ref(resolve_models([model], tokenizer))
    config = resolve_pooling(ref.path, ref.manifest, pooling, normalize)
    total = count_texts(texts_file)
    if total == 0:
        raise BadInput(f"no texts: {texts_file} is empty")
    runner = LastLayer(ref, providers, allow_fallback, threads)
    limit = _max_length(max_length, config, runner)
    log.info("%s: %d texts, %s pooling (%s), normalize %s, max length %d", ref.label, total,
             config.mode, config.source, config.normalize, limit)
    with atomic_path(out) as tmp:
        dim = _write_rows(runner, texts_file, tmp, total, config, limit, int(batch_size), progress)
    return EmbedResult(Path(out), total, dim, ref.label, config.mode, config.normalize,
                       config.source, limit)
