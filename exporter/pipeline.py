"""The export pipeline: a backend's fp32 (Optimum or torch dynamo), other precisions, validation, manifest, atomic move."""
from __future__ import annotations

import contextlib
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from padlens.errors import BadInput, ExportFailed
from padlens.fsio import atomic_dir, check_output_dir
from padlens.inspector.contract import PRECISION_FILES, PRECISIONS
from padlens.inspector.inputs.lengths import PositionLimit, choose_max_length
from padlens.inspector.stats.pooling import mask_positions

from . import backends, deps, manifest, precision, texts, validate
from .source import SENTENCE_TRANSFORMERS_FILES, ModelSource, check_source, pooling_of, resolve_source

log = logging.getLogger(__name__)

Progress = Callable[[str], None]

#: longest sequence the validation and calibration batches use
MAX_LENGTH = 128
HELDOUT_BATCH = 8
_STEP = {"fp16": "converting fp16…", "int8-dynamic": "quantizing int8-dynamic…",
         "int8-static": "quantizing int8-static…"}
_POSITION_OFFSET = ("roberta", "xlm-roberta", "mpnet")  # position ids start after padding_idx


@dataclass
class ExportResult:
    """What ``export`` wrote and how the variants compared with PyTorch.

    Attributes:
        out_dir: the export folder (complete: it was moved into place at the end).
        source: SOURCE as given.
        recipe: the recipe name, or None.
        architecture: transformers ``model_type``.
        num_layers: L; every variant has outputs hidden_states.0 … hidden_states.L.
        files: precision -> path of its ONNX file.
        checks: precision -> its PrecisionCheck (every layer vs PyTorch).
        manifest: the padlens.json document.
        seconds: wall time per step (export, tokenizer, reference, each precision, total).
    """

    out_dir: Path
    source: str
    recipe: str | None
    architecture: str
    num_layers: int
    files: dict[str, Path]
    checks: dict[str, validate.PrecisionCheck]
    manifest: dict
    seconds: dict[str, float] = field(default_factory=dict)


def export(source: str, out_dir: str | Path, precisions: Iterable[str] | None = None,
           calibration_texts: Sequence[str] | None = None, force: bool = False,
           progress: Progress | None = None, backend: str = "auto") -> ExportResult:
    """Export SOURCE to ``out_dir`` in ``precisions`` (default all four), every layer exposed.

    ``backend``: ``optimum``, ``torch`` (``torch.onnx.export(dynamo=True)``) or ``auto`` (Optimum
    where it is installed and supports the installed transformers, else torch).
    Raises BadInput before anything is written or downloaded when an argument is wrong or the
    backend cannot run here, MissingExtra without the export extra, ExportFailed when fp32 misses
    PyTorch by more than 1e-4 on real tokens (``out_dir`` is then left as it was).
    """
    wanted = normalize_precisions(precisions)
    calibration = _check_calibration(calibration_texts)
    out_dir = Path(out_dir)
    _check_destination(out_dir, force)
    if backend not in backends.BACKENDS:
        raise BadInput(f"unknown export backend {backend!r}; choose from {', '.join(backends.BACKENDS)}")
    anything = backend == "torch"  # named: any architecture AutoModel loads, validated by the gate
    local = check_source(source, anything)
    deps.require_export_extra()
    chosen = backends.choose(backend)
    if local is not None and backend != "auto":
        _check_architecture(local, chosen, anything)
    src = resolve_source(source, anything)
    if backend == "auto" and src.architecture not in chosen.architectures():  # a transformers-5 family
        chosen = backends.choose("torch")
    _check_architecture(src, chosen, anything)
    started = time.perf_counter()
    created = _make_parents(out_dir)
    try:
        with atomic_dir(out_dir, force) as tmp:
            result = _Job(src, tmp, wanted, calibration, progress or (lambda message: None), chosen).run()
    except BaseException:
        for folder in created:
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    result.out_dir = out_dir
    result.files = {p: out_dir / f.name for p, f in result.files.items()}
    result.seconds["total"] = time.perf_counter() - started
    return result


def normalize_precisions(precisions: Iterable[str] | None) -> list[str]:
    """Requested precisions in canonical order; all four when none; BadInput on unknown names."""
    if precisions is None:
        return list(PRECISIONS)
    asked = list(precisions)
    unknown = [p for p in asked if p not in PRECISIONS]
    if unknown:
        raise BadInput(f"unknown precision {unknown[0]!r}; choose from {', '.join(PRECISIONS)}")
    return [p for p in PRECISIONS if p in asked] or list(PRECISIONS)


def _check_architecture(src: ModelSource, backend, anything: bool) -> None:
    """The validated architectures of ``backend``; any, with a warning, when ``--backend torch`` was named."""
    if src.architecture in backend.architectures():
        return
    if not anything:
        raise BadInput(f"{src.given}: architecture {src.architecture!r} is exported by --backend torch only, "
                       f"not by {backend.name}")
    log.warning("%s: architecture %r is not among those padlens has validated; exporting it as AutoModel "
                "loads it (the fp32 gate still compares every layer with PyTorch)", src.given, src.architecture)


def _check_destination(out_dir: Path, force: bool) -> None:
    """The fsio checks; a missing parent is fine when it can be created (nearest ancestor a folder)."""
    parent = out_dir.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise BadInput(f"cannot create {out_dir}: {parent} is not a folder")
    if out_dir.parent.is_dir():
        check_output_dir(out_dir, force)


def _make_parents(out_dir: Path) -> list[Path]:
    """Create the missing parents of ``out_dir``; return them deepest first (to undo)."""
    missing = []
    parent = out_dir.parent
    while not parent.exists():
        missing.append(parent)
        parent = parent.parent
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    return missing


def _check_calibration(calibration_texts: Sequence[str] | None) -> list[str] | None:
    if calibration_texts is None:
        return None
    cleaned = [t.strip() for t in calibration_texts if t and t.strip()]
    if not cleaned:
        raise BadInput("the calibration texts are empty")
    return cleaned


class _Job:
    """One export, step by step, inside the temporary folder."""

    def __init__(self, src: ModelSource, tmp: Path, wanted: list[str],
                 calibration: list[str] | None, progress: Progress, backend: backends.Backend):
        self.src, self.tmp, self.wanted, self.progress = src, tmp, wanted, progress
        self.backend = backend
        self.calibration = calibration
        self.quantization: dict[str, dict] = {}
        self.seconds: dict[str, float] = {}
        self.pooling, self.normalize = pooling_of(src)

    def run(self) -> ExportResult:
        fp32 = self._timed("export", self._export_fp32)
        tokenizer_files = self._timed("tokenizer", self._save_tokenizer)
        self.inputs, self.outputs = precision.graph_io(fp32)
        self.feed = self._encode(texts.VALIDATION_TEXTS, pad_extra=8)
        self.progress("validating…")
        self.reference = self._timed("reference", self._reference)
        checks = {"fp32": self._timed("validate fp32", lambda: self._check("fp32", fp32))}
        self._gate(checks["fp32"])
        files = {"fp32": fp32}
        for name in self.wanted:
            if name != "fp32":
                files[name], checks[name] = self._timed(name, lambda n=name: self._variant(n, fp32))
        return self._finish(files, checks, tokenizer_files)

    def _timed(self, step: str, fn):
        t0 = time.perf_counter()
        try:
            return fn()
        finally:
            self.seconds[step] = time.perf_counter() - t0
            log.info("%s: %.1fs", step, self.seconds[step])

    # -- steps -------------------------------------------------------------------------
    def _export_fp32(self) -> Path:
        self.progress("exporting fp32…")
        target = self.tmp / precision.FILES["fp32"]
        self.backend.export_fp32(self.src.folder, self.src.architecture, target)  # external data beside it
        self.num_layers = int(_config_layers(self.src.config))
        precision.check_outputs(target, backends.output_names(self.num_layers))
        return target

    def _reference(self):
        """PyTorch's states for the gate; a model whose own forward fails is one error naming its architecture."""
        try:
            return validate.reference_states(self.src.folder, self.feed)
        except Exception as exc:  # transformers' own bugs on a new architecture: not padlens', nothing kept
            lines = str(exc).strip().splitlines()
            raise BadInput(f"architecture {self.src.architecture!r}: PyTorch's reference forward failed "
                           f"({type(exc).__name__}: {(lines[0] if lines else 'no message')[:300]}); "
                           "nothing was written") from None

    def _save_tokenizer(self) -> list[str]:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(self.src.folder, use_fast=True)
        if self.src.recipe is not None and self.src.recipe.padding_side:  # Qwen3-Embedding: left
            tok.padding_side = self.src.recipe.padding_side
        if not tok.is_fast:
            raise BadInput(f"{self.src.given} has no fast tokenizer (tokenizer.json) padlens can ship")
        if tok.pad_token_id is None:
            raise BadInput(f"{self.src.given}: the tokenizer has no pad token")
        self.tokenizer = tok
        written = {Path(p).name for p in tok.save_pretrained(str(self.tmp))}
        for rel in SENTENCE_TRANSFORMERS_FILES:
            if (self.src.folder / rel).is_file():
                (self.tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self.src.folder / rel, self.tmp / rel)
                written.add(rel)
        shutil.copyfile(self.src.folder / "config.json", self.tmp / "config.json")
        return sorted(w for w in written if (self.tmp / w).is_file())

    def _check(self, name: str, path: Path) -> validate.PrecisionCheck:
        return validate.check_precision(name, path, self.feed, self.reference, self.pooling, self.normalize)

    def _gate(self, check: validate.PrecisionCheck) -> None:
        if not check.passed:
            worst = max(check.layers, key=lambda layer: layer.max_abs_real)
            raise ExportFailed(
                f"fp32 export of {self.src.given} differs from PyTorch by {worst.max_abs_real:.3g} "
                f"on real tokens at {worst.tensor} (tolerance {check.threshold:g}); nothing was written"
            )

    def _variant(self, name: str, fp32: Path) -> tuple[Path, validate.PrecisionCheck]:
        self.progress(_STEP[name])
        target = self.tmp / PRECISION_FILES[name]
        if name == "fp16":
            precision.to_fp16(fp32, target)
        elif name == "int8-dynamic":
            self.quantization[name] = precision.quantize_int8_dynamic(fp32, target)
        else:
            self.quantization[name] = precision.quantize_int8_static(fp32, target, self._calibration_feeds())
        precision.check_outputs(target, self.outputs)
        self.progress(f"validating {name}…")
        check = self._check(name, target)
        validate.heldout_cosine(check, fp32, target, self._heldout_batches(), self.pooling, self.normalize)
        if not check.passed:
            log.warning("%s: pooled cosine below %g (recorded in padlens.json)", name, check.threshold)
        return target, check

    # -- feeds -------------------------------------------------------------------------
    def _limit(self) -> int:
        cfg = self.src.config
        positions = int(cfg.get("max_position_embeddings") or MAX_LENGTH)
        if self.src.architecture in _POSITION_OFFSET:
            positions -= int(cfg.get("pad_token_id") or 0) + 1
        tokens = int(self.tokenizer.model_max_length or MAX_LENGTH)
        limits = [PositionLimit("position embeddings", positions), PositionLimit("tokenizer", tokens)]
        return max(8, choose_max_length(None, limits, default=MAX_LENGTH))

    def _encode(self, batch: Sequence[str], pad_extra: int | None = None) -> dict[str, np.ndarray]:
        """Graph inputs for ``batch``: padded to the longest (+``pad_extra``) within the limit."""
        limit = self._limit()
        if pad_extra is None:
            enc = self.tokenizer(list(batch), padding="longest", truncation=True, max_length=limit)
        else:
            longest = max(len(ids) for ids in self.tokenizer(list(batch), truncation=True, max_length=limit)["input_ids"])
            enc = self.tokenizer(list(batch), padding="max_length", truncation=True,
                                 max_length=min(limit, longest + pad_extra))
        ids = np.asarray(enc["input_ids"], dtype=np.int64)
        feed = {}
        for name in self.inputs:
            if name in enc:
                feed[name] = np.asarray(enc[name], dtype=np.int64)
            elif name == "token_type_ids":
                feed[name] = np.zeros_like(ids)
            elif name == "position_ids":  # decoders (Qwen): from the mask, on either padding side
                feed[name] = mask_positions(np.asarray(enc["attention_mask"]))
            else:
                raise ExportFailed(f"the exported graph has an input {name!r} padlens cannot feed")
        return feed

    def _split(self) -> tuple[list[str], list[str]]:
        if not hasattr(self, "_texts"):
            self._texts = texts.calibration_split(self.calibration)
        return self._texts

    def _calibration_feeds(self) -> list[dict[str, np.ndarray]]:
        """One text per batch, unpadded: calibration ranges come from real tokens only."""
        return [self._encode([t]) for t in self._split()[0]]

    def _heldout_batches(self) -> list[dict[str, np.ndarray]]:
        held = self._split()[1]
        return [self._encode(held[i:i + HELDOUT_BATCH]) for i in range(0, len(held), HELDOUT_BATCH)]

    # -- manifest ----------------------------------------------------------------------
    def _finish(self, files: dict[str, Path], checks: dict, tokenizer_files: list[str]) -> ExportResult:
        if "fp32" not in self.wanted:
            files.pop("fp32").unlink()
        doc = manifest.build(
            self._facts(), tokenizer_files=tokenizer_files, input_names=self.inputs,
            output_names=self.outputs,
            precisions={p: self._precision_entry(p, f) for p, f in files.items()},
            validation=self._validation(checks), versions=deps.versions(),
            calibration=self._calibration_doc(), backend=self.backend.name,
        )
        manifest.write(self.tmp, doc)
        return ExportResult(
            out_dir=self.tmp, source=self.src.given,
            recipe=self.src.recipe.name if self.src.recipe else None,
            architecture=self.src.architecture, num_layers=self.num_layers, files=files,
            checks=checks, manifest=doc, seconds=self.seconds,
        )

    def _facts(self) -> manifest.ModelFacts:
        cfg = self.src.config
        return manifest.ModelFacts(
            source=self.src.given, recipe=self.src.recipe.name if self.src.recipe else None,
            architecture=self.src.architecture, num_layers=self.num_layers,
            hidden_size=int(cfg.get("hidden_size") or cfg.get("dim")),
            max_position_embeddings=cfg.get("max_position_embeddings"),
            vocab_size=cfg.get("vocab_size"), pad_token_id=int(self.tokenizer.pad_token_id),
            padding_side=self.tokenizer.padding_side, pooling=self.pooling, normalize=self.normalize,
        )

    def _validation(self, checks: dict[str, validate.PrecisionCheck]) -> dict:
        out: dict = {"texts": list(texts.VALIDATION_TEXTS),
                     "sequence_length": int(self.feed["input_ids"].shape[1])}
        for name, check in checks.items():
            if name in self.wanted or name == "fp32":
                out[name] = check.to_dict()
        return out

    def _precision_entry(self, name: str, path: Path) -> dict:
        """``file``, ``bytes`` and, for int8, ``quantization``: the recipe that made it."""
        entry = {"file": path.name, "bytes": path.stat().st_size}
        if name in self.quantization:
            entry["quantization"] = dict(self.quantization[name])
        if name == "int8-static":
            entry["quantization"]["calibration"] = self._calibration_doc()
        return entry

    def _calibration_doc(self) -> dict | None:
        if "int8-static" not in self.wanted:
            return None
        calibration, heldout = self._split()
        return {"texts": len(calibration), "heldout_texts": len(heldout),
                "source": "user" if self.calibration else "sample corpus",
                "method": f"{precision.STATIC_RECIPE.calibration_method}, one unpadded text per batch, "
                          "MatMul inputs only (QDQ, outputs float), per-channel weights"}


def _config_layers(config: dict) -> int:
    for key in ("num_hidden_layers", "n_layers", "num_layers"):
        if config.get(key) is not None:
            return int(config[key])
    raise ExportFailed("config.json does not say how many layers the model has")
