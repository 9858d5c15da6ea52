"""Pooling: token states to one sentence embedding, and how a model's folder says to pool.

Every sentence-transformers mode is here (``POOLING_MODES``), as its ``Pooling`` module computes
it, except that each index and weight follows the attention mask on either padding side:
``cls`` is the first real token, ``lasttoken`` the last real one (never ``sum(mask) - 1``),
``weightedmean`` weighs the k-th real token by k (sentence-transformers weighs by the column,
so under left padding its rows move with the pad count). A sentence-transformers folder, as
5.x and older versions write it, names its modules in modules.json; they are matched by the
last part of their class name (``sentence_transformers.models.Pooling`` and
``sentence_transformers.sentence_transformer.modules.pooling.Pooling`` alike).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from padlens.errors import BadInput, Param
from padlens.inspector.contract import POOLING_MODES

log = logging.getLogger(__name__)

POOLINGS = ("auto", *POOLING_MODES)
#: legacy 1_Pooling/config.json keys and the mode each turns on, in sentence-transformers'
#: concatenation order (``pooling_mode`` replaced them in 5.x)
ST_LEGACY_MODES = {"pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max",
                   "pooling_mode_mean_tokens": "mean", "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
                   "pooling_mode_weightedmean_tokens": "weightedmean", "pooling_mode_lasttoken": "lasttoken"}
#: modules after the token model that change nothing at inference
ST_NO_OPS = frozenset({"Dropout"})
MODULES_FILE = "modules.json"
#: the graph output of a graph that pools by itself (sentence-transformers' name), and the
#: pooling mode meaning "that output, as it is"
SENTENCE_EMBEDDING, GRAPH_POOLING = "sentence_embedding", "graph"
ST_CONFIG_FILE = "sentence_bert_config.json"
ST_MODEL_CONFIG_FILE = "config_sentence_transformers.json"


@dataclass
class PoolingConfig:
    """How token states become one sentence embedding.

    Attributes:
        mode: one of ``POOLING_MODES``, modes joined by "+" (concatenated, as
            sentence-transformers does for a list), or ``graph`` when the graph's own
            ``sentence_embedding`` output is used as it is.
        normalize: L2-normalise each embedding.
        source: where the mode came from (a modules.json, ``manifest``, ``default``,
            ``option`` or ``graph output sentence_embedding``).
        max_length: the model's own max sequence length when its folder says (sentence_bert_config.json).
        normalize_source: where ``normalize`` came from (a modules.json, ``manifest``,
            ``default`` or ``option``).
        include_prompt: the Pooling module's include_prompt (padlens adds no prompt, so
            every token is pooled either way).
    """

    mode: str
    normalize: bool
    source: str
    max_length: int | None = None
    normalize_source: str = ""
    include_prompt: bool = True

    def __post_init__(self) -> None:
        self.normalize_source = self.normalize_source or self.source


# --------------------------------------------------------------------------- sentence-transformers folders


@dataclass
class StFolder:
    """What a sentence-transformers folder's modules.json and config files say.

    Attributes:
        folder: the folder holding modules.json.
        pooling: the Pooling module's mode (``POOLING_MODES``, or modes joined by "+"),
            None when there is no Pooling module.
        normalize: a Normalize module follows the pooling.
        max_length: max_seq_length of sentence_bert_config.json, None when unsaid (5.x keeps
            it in tokenizer_config.json's model_max_length).
        include_prompt: the Pooling module's include_prompt.
        default_prompt: the prompt sentence-transformers' ``encode`` prepends to every text by
            default (config_sentence_transformers.json's ``default_prompt_name``), else None.
        token_module: folder of the first (token) module, where old folders keep the tokenizer.
        unsupported: modules after the token model padlens cannot apply (Dense, LayerNorm ...).
    """

    folder: Path
    pooling: str | None
    normalize: bool
    max_length: int | None = None
    include_prompt: bool = True
    default_prompt: str | None = None
    token_module: Path | None = None
    unsupported: list[str] = field(default_factory=list)

    @property
    def modules_file(self) -> Path:
        return self.folder / MODULES_FILE


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BadInput(f"{path} is not valid JSON: {exc}") from None


def st_folder(start: Path) -> Path | None:
    """The nearest folder at or up to two levels above ``start`` holding modules.json."""
    start = Path(start)
    folder = start if start.is_dir() else start.parent
    for candidate in (folder, folder.parent, folder.parent.parent):
        if (candidate / MODULES_FILE).is_file():
            return candidate
    return None


def module_kind(type_name: object) -> str:
    """The class name a modules.json ``type`` ends with: ``Pooling`` for
    ``sentence_transformers.models.Pooling`` and for ``...modules.pooling.Pooling``."""
    return str(type_name or "").rsplit(".", 1)[-1]


def _modules(folder: Path) -> list[tuple[str, Path]]:
    """(class name, module folder) of each module in modules.json, in order."""
    file = folder / MODULES_FILE
    modules = _read_json(file)
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise BadInput(f"{file} is not a list of modules")
    return [(module_kind(m.get("type")), folder / str(m.get("path") or "")) for m in modules]


def st_pooling_mode(config: dict, file: Path) -> str:
    """The mode a Pooling module's config.json asks for: 5.x ``pooling_mode`` (a name or a
    list), else the legacy ``pooling_mode_*`` flags (none set means mean, as in 5.x)."""
    mode = config.get("pooling_mode")
    if isinstance(mode, str):
        modes = [mode]
    elif isinstance(mode, list):
        modes = [str(m) for m in mode]
    else:
        modes = [name for key, name in ST_LEGACY_MODES.items() if config.get(key)] or ["mean"]
    bad = [m for m in modes if m not in POOLING_MODES]
    if bad or not modes:
        raise BadInput(f"{file} asks for pooling {'+'.join(map(str, modes)) or 'none'}, which padlens does "
                       f"not know ({', '.join(POOLING_MODES)}): pass ", Param("pooling"))
    return "+".join(modes)


def _max_seq_length(folder: Path, token_module: Path | None) -> int | None:
    """sentence_bert_config.json's max_seq_length, beside the token module or at the top."""
    for where in filter(None, (token_module, folder)):
        file = where / ST_CONFIG_FILE
        if file.is_file():
            data = _read_json(file)
            limit = data.get("max_seq_length") if isinstance(data, dict) else None
            if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
                return limit
    return None


def read_st_folder(folder: Path) -> StFolder:
    """Read a sentence-transformers folder's modules (any version's type names)."""
    folder = Path(folder)
    modules = _modules(folder)
    found = StFolder(folder, None, False, token_module=modules[0][1] if modules else None)
    for kind, path in modules[1:]:
        if kind == "Pooling":
            file = path / "config.json"
            config = _read_json(file) if file.is_file() else {}
            found.pooling = st_pooling_mode(config if isinstance(config, dict) else {}, file)
            found.include_prompt = bool(config.get("include_prompt", True)) if isinstance(config, dict) else True
        elif kind == "Normalize":
            found.normalize = True
        elif kind not in ST_NO_OPS:
            found.unsupported.append(kind)
    found.max_length = _max_seq_length(folder, found.token_module)
    found.default_prompt = _default_prompt(folder)
    return found


def _default_prompt(folder: Path) -> str | None:
    """The prompt config_sentence_transformers.json makes ``encode`` prepend by default."""
    file = folder / ST_MODEL_CONFIG_FILE
    data = _read_json(file) if file.is_file() else {}
    name = data.get("default_prompt_name") if isinstance(data, dict) else None
    prompts = data.get("prompts") if isinstance(data, dict) else None
    if isinstance(name, str) and isinstance(prompts, dict) and prompts.get(name):
        return str(prompts[name])
    return None


def _warn_default_prompt(model_path: Path) -> None:
    folder = st_folder(Path(model_path))
    prompt = read_st_folder(folder).default_prompt if folder is not None else None
    if prompt:
        log.warning("%s: sentence-transformers' encode() prepends the default prompt %r to every text; "
                    "padlens embeds the texts as given (prepend it to match encode())", folder, prompt)


def read_st_pooling(folder: Path) -> PoolingConfig:
    """Pooling and normalisation of a sentence-transformers folder (modules.json).

    BadInput when it has no Pooling module, or modules padlens cannot apply (Dense ...):
    its rows would differ from sentence-transformers'.
    """
    found = read_st_folder(folder)
    if found.pooling is None:
        raise BadInput(f"{found.modules_file} has no Pooling module: pass ", Param("pooling"))
    if found.unsupported:
        raise BadInput(f"{found.modules_file} has {', '.join(found.unsupported)} module(s) after the model, "
                       "which padlens does not apply (its rows would differ from sentence-transformers'): "
                       "pass ", Param("pooling"), " to pool the model's token states anyway")
    source = str(found.modules_file)
    return PoolingConfig(found.pooling, found.normalize, source, found.max_length, source, found.include_prompt)


# --------------------------------------------------------------------------- choosing


def pooling_config(model_path: Path, manifest: dict | None) -> PoolingConfig:
    """``auto`` pooling: a sentence-transformers folder, else the export's manifest, else mean."""
    folder = st_folder(Path(model_path))
    if folder is not None:
        return read_st_pooling(folder)
    if manifest and _known_mode(manifest.get("pooling")):
        return PoolingConfig(manifest["pooling"], bool(manifest.get("normalize", False)), "manifest")
    return PoolingConfig("mean", False, "default")


def _known_mode(mode: object) -> bool:
    return isinstance(mode, str) and bool(mode) and all(m in POOLING_MODES for m in mode.split("+"))


def _folder_defaults(model_path: Path, manifest: dict | None,
                     warn: bool = True) -> tuple[bool, str, int | None]:
    """(normalize, where it came from, max length) without needing a Pooling module: what an
    explicit ``--pooling`` (or a graph pooling by itself) keeps from the model's folder or manifest."""
    folder = st_folder(Path(model_path))
    if folder is not None:
        found = read_st_folder(folder)
        if found.unsupported and warn:
            log.warning("%s: modules %s are not applied", found.modules_file, ", ".join(found.unsupported))
        return found.normalize, str(found.modules_file), found.max_length
    if manifest and "normalize" in manifest:
        return bool(manifest.get("normalize")), "manifest", None
    return False, "default", None


def resolve_pooling(model_path: Path, manifest: dict | None, pooling: str,
                    normalize: bool | None, graph_pooled: bool = False) -> PoolingConfig:
    """Apply the user's ``pooling`` and ``normalize`` over what ``auto`` reads, each on its own:
    ``--pooling mean`` keeps the folder's Normalize, ``--no-normalize`` keeps its pooling.

    ``graph_pooled``: the graph outputs its own ``sentence_embedding``; ``auto`` then uses it
    as it is (mode ``graph``; the folder's modules, Dense included, live in the graph).
    """
    if pooling != "auto" and not _known_mode(pooling):
        raise BadInput(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
    _warn_default_prompt(model_path)
    if pooling == "auto" and graph_pooled:
        norm, where, limit = _folder_defaults(model_path, manifest, warn=False)
        config = PoolingConfig(GRAPH_POOLING, norm, f"graph output {SENTENCE_EMBEDDING}", limit, where)
    elif pooling == "auto":
        config = pooling_config(model_path, manifest)
    else:
        norm, where, limit = _folder_defaults(model_path, manifest)
        config = PoolingConfig(pooling, norm, "option", limit, where)
    if normalize is not None:
        config.normalize, config.normalize_source = bool(normalize), "option"
    return config


# --------------------------------------------------------------------------- pooling maths


def _mean(h: np.ndarray, m: np.ndarray) -> np.ndarray:
    w = m[..., None].astype(np.float64)
    return (h * w).sum(1) / np.maximum(w.sum(1), 1e-9)


def _mean_sqrt_len(h: np.ndarray, m: np.ndarray) -> np.ndarray:
    w = m[..., None].astype(np.float64)
    return (h * w).sum(1) / np.sqrt(np.maximum(w.sum(1), 1e-9))


def _cls(h: np.ndarray, m: np.ndarray) -> np.ndarray:
    first = np.argmax(m, axis=1)  # the first real token, whatever the padding side
    return h[np.arange(len(h)), first] * m.any(axis=1)[:, None]


def _max(h: np.ndarray, m: np.ndarray) -> np.ndarray:
    out = np.where(m[..., None], h, -np.inf).max(1)
    return np.where(np.isfinite(out), out, 0.0)


def _weightedmean(h: np.ndarray, m: np.ndarray) -> np.ndarray:
    w = (np.cumsum(m, axis=1) * m)[..., None].astype(np.float64)  # k-th real token weighs k
    return (h * w).sum(1) / np.maximum(w.sum(1), 1e-9)


def _lasttoken(h: np.ndarray, m: np.ndarray) -> np.ndarray:
    last = m.shape[1] - 1 - np.argmax(m[:, ::-1], axis=1)  # the last real token, either side
    return h[np.arange(len(h)), last] * m.any(axis=1)[:, None]


def mask_positions(mask: np.ndarray) -> np.ndarray:
    """Position ids from an attention mask: cumsum(mask) - 1 clipped at 0, int64 ``[B, T]``.

    Real tokens get 0..n-1 whatever the padding side (what Hugging Face's generate() feeds
    decoders); never ``arange(T)``, which shifts every real token under left padding.
    """
    mask = np.asarray(mask).astype(np.int64)
    return np.maximum(np.cumsum(mask, axis=-1) - 1, 0)


POOLERS = {"mean": _mean, "cls": _cls, "max": _max, "mean_sqrt_len_tokens": _mean_sqrt_len,
           "weightedmean": _weightedmean, "lasttoken": _lasttoken}


def pool(h: np.ndarray, mask: np.ndarray, mode: str) -> np.ndarray:
    """Pool token states ``[B, T, H]`` under ``mask`` ``[B, T]`` into ``[B, H]`` (float64);
    modes joined by "+" are concatenated (``[B, k*H]``). A row without real tokens pools to
    zeros (``max`` included)."""
    modes = str(mode).split("+")
    unknown = [m for m in modes if m not in POOLERS]
    if unknown:
        raise BadInput(f"unknown pooling {mode!r} (padlens pools with {', '.join(POOLING_MODES)})")
    h64, m = np.asarray(h).astype(np.float64), np.asarray(mask).astype(bool)
    parts = [POOLERS[name](h64, m) for name in modes]
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows divided by max(‖row‖, eps), as torch.nn.functional.normalize."""
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), eps)
