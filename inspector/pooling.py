"""Pooling: token states to one sentence embedding, and how a model's folder says to pool."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from padlens.errors import BadInput

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
