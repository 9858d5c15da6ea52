"""probe(): what can a linear probe read from one pad state, layer by layer, against controls?

For every run (model file × provider) and every layer, linear probes read each target from a
single state, for pads and for real tokens, on texts held out from training:

- ``length``: the text's real length in tokens, special tokens included (ridge, R²).
- ``distance``: |position of the state − position of the text's last real token| (ridge, R²).
  For pads under right padding that is how far past [SEP] the pad sits; for real tokens, how
  far before it.
- ``content``: the text's masked mean of real tokens at the same layer (multi-output ridge;
  score = mean cosine between predicted and true vectors; baseline = always predicting the
  training texts' mean vector).
- ``first_token``: the id of the text's first content token (after [CLS]/BOS), among the
  ``TOP_K`` most frequent first tokens; texts starting otherwise are left out (ridge
  classifier, accuracy; baseline = the training majority class).
- ``label:COLUMN``: a column of the --texts .jsonl/.csv file (ridge classifier, accuracy).

Pads are sampled only where every probed text has a pad (see ``probe_data``), real tokens
among content tokens (never [CLS]/[SEP]). The **control** is the same probe trained on
targets shuffled between texts (for ``distance``, between states; training and test texts
each among themselves), scored on the test texts' shuffled targets (a control task, Hewitt &
Liang 2019): it is the floor, and **selectivity** = score − control. Texts are split once
per run into training and test texts; the ridge penalty is chosen by grouped cross-validation
on the training texts; the 95% interval resamples test texts. Needs scikit-learn (the
``probe`` extra).
"""
from __future__ import annotations

import itertools
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from padlens.errors import BadInput, MissingExtra, Param
from padlens.inspector.inputs.lengths import choose_max_length
from padlens.inspector.inputs.options import RunOptions
from padlens.inspector.inputs.resolve import resolve_models
from padlens.inspector.inputs.texts import ROW_SUFFIXES, corpus_files, iter_file_rows, read_texts
from padlens.inspector.probe.data import Collected, Collector, StateSet, pad_floor
from padlens.inspector.report.jsonable import to_jsonable
from padlens.inspector.runtime.encoder import Encoder
from padlens.inspector.runtime.session import SessionOptions

log = logging.getLogger(__name__)

TOP_K = 8
"""first_token: classes are the K most frequent first content tokens."""
TEST_FRACTION = 0.3
"""Share of the texts held out for testing (split by text, once per run)."""
PER_TEXT = 4
"""At most this many pad states and this many real-token states are sampled per text."""
MIN_TRAIN_TEXTS, MIN_TEST_TEXTS = 8, 4
MIN_CLASS_TEXTS = 2
"""A class (first token, label) needs this many texts to be kept."""
TARGETS = ("length", "distance", "content", "first_token")
STATES = ("pad", "real")
INSTALL_HINT = "pip install 'padlens[probe]'"


# ---------------------------------------------------------------- results

@dataclass
class ProbeScore:
    """One probe: a target read from one kind of state at one layer, and its control.

    Attributes:
        target: "length", "distance", "content", "first_token" or "label:COLUMN".
        states: "pad" (one pad state, in the common pad window) or "real" (one content token).
        metric: "r2", "cosine" or "accuracy"; score, control and baseline are in its units.
        score: the probe on the test texts' states.
        control: the same probe trained and scored on targets shuffled between texts (between
            states for ``distance``): the control task, the floor.
        baseline: a predictor that ignores the state (training mean, or majority class).
        selectivity: score − control.
        ci: 95% bootstrap interval of ``score`` over test texts, [lo, hi].
        selectivity_ci: 95% bootstrap interval of ``selectivity`` (paired resamples).
        n_train, n_test: training and test texts the probe used.
        n_train_states, n_test_states: the states (rows) it was trained and scored on.
        dims: the state's dimensions (features of the probe).
        alpha: the ridge penalty cross-validation chose (on standardised states);
            control_alpha: the control's.
        classes: class names for accuracy probes, else None.
        reason: why the probe could not run ("" when it ran; then every number is None).
    """

    target: str
    states: str
    metric: str
    score: float | None = None
    control: float | None = None
    baseline: float | None = None
    selectivity: float | None = None
    ci: list[float] | None = None
    selectivity_ci: list[float] | None = None
    n_train: int = 0
    n_test: int = 0
    n_train_states: int = 0
    n_test_states: int = 0
    dims: int = 0
    alpha: float | None = None
    control_alpha: float | None = None
    classes: list[str] | None = None
    reason: str = ""

    @property
    def applicable(self) -> bool:
        return not self.reason

    def to_dict(self) -> dict:
        return to_jsonable(vars(self))


@dataclass
class ProbeLayer:
    """Every probe of one layer.

    Attributes:
        index: 0 is the embedding output, 1..L the encoder blocks' outputs.
        tensor: the graph tensor the states were read from.
        probes: one ProbeScore per (target, states), targets in ``TARGETS`` order, pads first.
    """

    index: int
    tensor: str
    probes: list[ProbeScore]

    def get(self, target: str, states: str) -> ProbeScore | None:
        return next((p for p in self.probes if p.target == target and p.states == states), None)

    def to_dict(self) -> dict:
        return {"index": self.index, "tensor": self.tensor, "probes": [p.to_dict() for p in self.probes]}


@dataclass
class ProbeRun:
    """The probes of one model file on one execution provider.

    Attributes:
        model: the .onnx file. precision: its precision. provider: as asked. label: its name in reports.
        texts: texts fed; kept: those whose states were all finite (the others are left out).
        layers: one ProbeLayer per hidden layer, index 0 = embedding output.
        pad_window: the common pad window: ``floor`` (its first position counted from the
            text side), ``texts`` (texts with a pad in it) and ``pads`` (pad states sampled).
        real_states: real-token states sampled; dims: state dimensions.
        split: ``{"train", "test"}`` texts in each part of the split.
        warnings: things the reader must know. timings: seconds for load, forward, fit.
    """

    model: str
    precision: str
    provider: str
    label: str
    texts: int
    kept: int
    layers: list[ProbeLayer]
    pad_window: dict
    real_states: int
    dims: int
    split: dict
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = {k: v for k, v in vars(self).items() if k != "layers"}
        out["layers"] = [layer.to_dict() for layer in self.layers]
        return to_jsonable(out)


@dataclass
class ProbeResult:
    """Every run of one ``probe`` call, on the same texts and split.

    Attributes:
        runs: one ProbeRun per (model file × provider), in the order asked.
        texts_count: texts read. max_length: truncation (and padding) length.
        padding_side: "right" or "left" (runs that chose differently: "right/left").
        labels: the --labels column, or None.
        settings: seed, per_text, top_k, test_fraction, padding, batch size, providers.
    """

    runs: list[ProbeRun]
    texts_count: int
    max_length: int
    padding_side: str
    labels: str | None = None
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """DESIGN.md's probe JSON: ``{"runs": [{"model", "precision", "provider", "texts", "layers":
        [{"index", "probes": [{"target", "states", "metric", "score", ...}]}]}]}``."""
        return to_jsonable({"runs": [run.to_dict() for run in self.runs], "texts_count": self.texts_count,
                         "max_length": self.max_length, "padding_side": self.padding_side,
                         "labels": self.labels, "settings": self.settings})


# ---------------------------------------------------------------- inputs

def fitter():
    """``probe_fit`` (scikit-learn), or MissingExtra naming the extra to install."""
    import importlib

    try:
        return importlib.import_module("padlens.inspector.probe.fit")
    except ImportError as exc:
        raise MissingExtra(f"padlens probe needs scikit-learn: {INSTALL_HINT}") from exc


def read_labelled(path: str | Path, column: str) -> tuple[list[str], list[str | None]]:
    """The texts of a .jsonl/.csv file (or a folder or glob of them) and their ``column``, from
    one read (``inputs.texts.iter_file_rows``: the texts and errors ``iter_texts`` gives).

    Values become strings; a row without the column (or with null / blank) gives None.
    BadInput when a file is not .jsonl/.csv or no row has the column.
    """
    p, files = Path(path), corpus_files(path)
    other = next((f for f in files if f.suffix.lower() not in ROW_SUFFIXES), None)
    if other is not None:
        raise BadInput(Param("labels", column), " reads a column of a .jsonl or .csv ", Param("texts_file", meta="FILE"),
                       f", not {other.name}")
    texts, labels, seen = [], [], False
    for text, row in itertools.chain.from_iterable(iter_file_rows(f) for f in files):
        value = row.get(column)
        if isinstance(value, (dict, list)):
            raise BadInput(Param("labels", column), f": values must be strings or numbers, {p} has {type(value).__name__}s")
        seen = seen or column in row
        texts.append(text)
        labels.append(None if value is None or not str(value).strip() else str(value).strip())
    if not seen:
        word = "field" if files[0].suffix.lower() == ".jsonl" else "column"
        raise BadInput(Param("labels", column), f": no {column!r} {word} in {p}")
    return texts, labels


def read_inputs(texts: Sequence[str] | None, texts_file: str | None, labels: str | None,
                limit: int | None) -> tuple[list[str], list[str | None] | None]:
    """The texts (``texts``, then the file's, else the corpus) and their labels when asked
    (texts and labels from one read of the file)."""
    if labels is not None:
        if texts_file is None or texts:
            raise BadInput(Param("labels", meta="COLUMN"), " names a column of ", Param("texts_file", meta="FILE"),
                           " (.jsonl or .csv), and a ", Param("texts"), " value has no label: pass only ",
                           Param("texts_file", meta="FILE"))
        file_texts, column = read_labelled(texts_file, labels)
        out = read_texts(file_texts, None, limit)  # the limit, as for any texts
        return out, column[: len(out)]
    if texts is not None and not isinstance(texts, (list, tuple)):
        texts = list(texts)
    return read_texts(texts, texts_file, limit), None


def check_per_text(per_text: int) -> None:
    """BadInput unless at least one pad state per text is sampled."""
    if int(per_text) < 1:
        raise BadInput(f"must be at least 1, got {per_text}", parameter="per_text")


def split_texts(n: int, seed: int, fraction: float = TEST_FRACTION) -> np.ndarray:
    """bool [n]: True for test texts, a seeded ``fraction`` of them (at least one each side)."""
    n_test = min(max(int(round(n * fraction)), 1), max(n - 1, 0))
    test = np.zeros(n, dtype=bool)
    test[np.random.default_rng([int(seed), 1]).permutation(n)[:n_test]] = True
    return test


# ---------------------------------------------------------------- collecting

class _Ticker:
    """Calls ``progress(done, total)``; the total grows as runs reveal their layers."""

    def __init__(self, progress, total: int):
        self.progress, self.done, self.total = progress, 0, int(total)

    def __call__(self, steps: int = 1) -> None:
        self.done += steps
        if self.progress is not None:
            self.progress(self.done, max(self.total, self.done))


def collect(enc: Encoder, texts: list[str], length: int, padding: str, side: str, batch_size: int,
            seed: int, per_text: int, tick: Callable[[int], None] = lambda n: None) -> Collected:
    """Run ``enc`` over ``texts`` batch by batch and keep only the sampled states."""
    lengths = np.concatenate([enc.encode(chunk, max_length=length, padding="longest", side=side).lengths
                              for chunk in _chunks(texts, 256)])
    collector = Collector(len(texts), pad_floor(lengths), per_text, seed)
    for offset in range(0, len(texts), int(batch_size)):
        chunk = texts[offset: offset + int(batch_size)]
        batch = enc.encode(chunk, max_length=length, padding=padding, side=side)
        collector.add(batch, enc.run(batch).hidden, offset)
        tick(1)
    return collector.finish([str(t) for t in enc.graph.layers.hidden])


def _chunks(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start: start + size]


# ---------------------------------------------------------------- targets

@dataclass
class Target:
    """What a probe predicts, per text (or per state for ``distance``).

    Attributes:
        name: the JSON ``target``. kind: "regression", "content" or "classification".
        valid: bool [N], texts the target is defined for.
        values: per text [N] (per_text), or None for ``distance`` (read from the states).
        classes: class names for classification targets.
    """

    name: str
    kind: str
    valid: np.ndarray
    values: np.ndarray | None = None
    classes: list[str] | None = None

    def y(self, data: Collected, states: StateSet, layer: int, rows: np.ndarray) -> np.ndarray:
        if self.name == "distance":
            return states.distance[rows].astype(np.float64)
        if self.kind == "content":
            return data.content[layer][states.text[rows]].astype(np.float64)
        return self.values[states.text[rows]]


def build_targets(data: Collected, token_name: Callable[[int], str], labels: list | None,
                  column: str | None) -> list[Target]:
    """length, distance, content, first_token, and ``label:COLUMN`` when labels are given."""
    kept = data.kept
    targets = [Target("length", "regression", kept, data.length.astype(np.float64)),
               Target("distance", "regression", kept),
               Target("content", "content", kept),
               class_target("first_token", [token_name(t) if k and t >= 0 else None
                                            for t, k in zip(data.first_token, kept)], TOP_K)]
    if labels is not None:
        targets.append(class_target(f"label:{column}", [v if k else None for v, k in zip(labels, kept)]))
    return targets


def class_target(name: str, values: list[str | None], top_k: int | None = None) -> Target:
    """Texts whose value is among the ``top_k`` most frequent (with ≥ MIN_CLASS_TEXTS texts)."""
    counts: dict[str, int] = {}
    for v in values:
        if v is not None:
            counts[v] = counts.get(v, 0) + 1
    ranked = sorted((c for c in counts if counts[c] >= MIN_CLASS_TEXTS), key=lambda c: (-counts[c], c))
    classes = ranked[:top_k] if top_k else ranked
    index = {c: i for i, c in enumerate(classes)}
    codes = np.array([index.get(v, -1) if v is not None else -1 for v in values], dtype=np.int64)
    return Target(name, "classification", codes >= 0, codes, classes)


# ---------------------------------------------------------------- fitting

def fit_layers(data: Collected, targets: list[Target], test: np.ndarray, seed: int,
               tick: Callable[[int], None] = lambda n: None) -> list[ProbeLayer]:
    """Every (target × states) probe at every layer; controls shuffle the same way at each layer."""
    fit = fitter()
    plans = [_plan(t, name, s, test, seed, i)
             for i, (t, (name, s)) in enumerate(itertools.product(targets, [("pad", data.pads),
                                                                           ("real", data.reals)]))]
    layers = []
    for index in range(data.num_layers):
        probes = [_run_plan(plan, data, index, fit, seed) for plan in plans]
        tensor = data.tensors[index] if index < len(data.tensors) else ""
        layers.append(ProbeLayer(index, tensor, probes))
        tick(1)
    return layers


@dataclass
class _Plan:
    """One (target, states) probe's rows, split and control shuffle, shared by every layer.

    ``control_rows[i]`` is the row whose target row i gets in the control: a row of another
    text (a permutation of the texts) for per-text targets, another state for ``distance``.
    Training and test texts are shuffled separately, so each side keeps its own targets (the
    same mean and spread) and only the pairing with states is broken.
    """

    target: Target
    states_name: str
    states: StateSet
    rows: np.ndarray
    test: np.ndarray
    control_rows: np.ndarray
    reason: str


def _plan(target: Target, states_name: str, states: StateSet, test: np.ndarray, seed: int,
          salt: int) -> _Plan:
    rows = np.flatnonzero(target.valid[states.text]) if states.size else np.zeros(0, dtype=np.int64)
    texts = states.text[rows]
    in_test = test[texts]
    rng = np.random.default_rng([int(seed), 2, salt])
    control_rows = rows.copy()
    for side in (~in_test, in_test):  # shuffled within training texts, and within test texts
        control_rows[side] = _shuffled_rows(rows[side], texts[side], target.name == "distance", rng)
    reason = _reason(target, states_name, np.unique(texts[~in_test]).size, np.unique(texts[in_test]).size)
    return _Plan(target, states_name, states, rows, in_test, control_rows, reason)


def _shuffled_rows(rows: np.ndarray, texts: np.ndarray, per_state: bool, rng) -> np.ndarray:
    """For each row, the row whose target it takes in the control: a row of another text
    (texts permuted), or for a per-state target another state."""
    if per_state:
        return rows[rng.permutation(rows.size)]
    unique, first = np.unique(texts, return_index=True)
    shuffled = rng.permutation(unique.size)
    return rows[first[shuffled[np.searchsorted(unique, texts)]]]


def _reason(target: Target, states_name: str, n_train: int, n_test: int) -> str:
    where = "with a pad in the common pad window" if states_name == "pad" else "with a content token"
    if n_train < MIN_TRAIN_TEXTS or n_test < MIN_TEST_TEXTS:
        return (f"{n_train} training and {n_test} test texts {where} for {target.name}; "
                f"needs at least {MIN_TRAIN_TEXTS} and {MIN_TEST_TEXTS}")
    if target.classes is not None and len(target.classes) < 2:
        return f"{target.name} has {len(target.classes)} class with {MIN_CLASS_TEXTS}+ texts; needs 2"
    return ""


def _run_plan(plan: _Plan, data: Collected, layer: int, fit, seed: int) -> ProbeScore:
    metric = fit.METRICS[plan.target.kind]
    out = ProbeScore(plan.target.name, plan.states_name, metric, classes=plan.target.classes, reason=plan.reason)
    if plan.reason:
        return out
    y = plan.target.y(data, plan.states, layer, plan.rows)
    if plan.target.kind == "regression" and np.ptp(y[~plan.test]) == 0:
        out.reason = f"{plan.target.name} is the same for every training text"
        return out
    y_control = plan.target.y(data, plan.states, layer, plan.control_rows)
    X = plan.states.states[layer][plan.rows]
    found = fit.evaluate(plan.target.kind, X, y, plan.states.text[plan.rows], plan.test, y_control, seed)
    for key, value in found.items():
        if key != "classes":
            setattr(out, key, value)
    return out


# ---------------------------------------------------------------- the function

def probe(
    models: list[str],
    texts: Sequence[str] | None = None,
    *,
    texts_file: str | None = None,
    tokenizer: str | None = None,
    max_length: int | None = None,
    padding: str = "max_length",
    padding_side: str = "auto",
    batch_size: int = 32,
    providers: Sequence[str] = ("cpu",),
    threads: int | None = None,
    allow_fallback: bool = False,
    layers: list[str] | None = None,
    labels: str | None = None,
    seed: int = 0,
    per_text: int = PER_TEXT,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ProbeResult:
    """Probe what single pad states (and, beside them, real-token states) of each model reveal.

    Texts come from ``texts``, then ``texts_file``, else the bundled corpus (at most ``limit``);
    ``labels`` names a column of ``texts_file`` (.jsonl/.csv) to probe as ``label:COLUMN``.
    Each (model file × provider) is a run; one split of texts (seeded) serves every run.
    ``padding_side`` "auto" takes each model's own (tokenizer config, else left for a causal
    model, else right). ``progress(done, total)`` is called after each batch and each fitted layer.
    Every option after ``texts`` is a keyword, the shared ones in the same order as ``inspect``,
    ``embed`` and ``audit``.
    """
    fitter()
    options = RunOptions(max_length=max_length, padding=padding, padding_side=padding_side, batch_size=batch_size,
                         providers=providers, threads=threads, allow_fallback=allow_fallback, tokenizer=tokenizer,
                         texts_file=texts_file, layers=layers)
    return probe_with(models, options, texts, labels=labels, seed=seed, per_text=per_text, limit=limit,
                      progress=progress)


def probe_with(models: list[str], options: RunOptions, texts: Sequence[str] | None = None, labels: str | None = None,
               seed: int = 0, per_text: int = PER_TEXT, limit: int | None = None,
               progress: Callable[[int, int], None] | None = None) -> ProbeResult:
    """``probe()`` with its options already checked (``RunOptions``)."""
    check_per_text(per_text)
    padding, padding_side, batch_size, providers = (options.padding, options.padding_side, options.batch_size,
                                                    list(options.providers))
    text_list, label_list = read_inputs(texts, options.texts_file, labels, limit)
    refs = resolve_models(models, options.tokenizer)
    test = split_texts(len(text_list), seed)
    batches = math.ceil(len(text_list) / int(batch_size))
    ticker = _Ticker(progress, len(refs) * len(providers) * (batches + 1))
    runs, lengths, sides = [], [], []
    for ref, provider in itertools.product(refs, providers):
        start = time.perf_counter()
        enc = Encoder.open(ref, SessionOptions.of(options, provider), layers=options.layer_list,
                           attention=False)  # probes read hidden states only
        length = choose_max_length(options.max_length, [enc])
        side = enc.padding_side(padding_side)[0] if padding_side == "auto" else padding_side
        lengths.append(length)
        sides.append(side)
        ticker.total += enc.num_layers
        run = _probe_run(enc, provider, text_list, label_list, labels, test, ticker,
                         {"length": length, "padding": padding, "side": side,
                          "batch_size": batch_size, "seed": seed, "per_text": per_text,
                          "load": time.perf_counter() - start})
        runs.append(run)
        del enc
    settings = {"seed": seed, "per_text": per_text, "top_k": TOP_K, "test_fraction": TEST_FRACTION,
                "padding": padding, "batch_size": int(batch_size), "providers": providers,
                "tokenizer": options.tokenizer, "texts_file": options.texts_file, "limit": limit}
    settings["padding_side_asked"] = padding_side
    return ProbeResult(runs, len(text_list), max(lengths), "/".join(dict.fromkeys(sides)), labels, settings)


def _probe_run(enc: Encoder, provider: str, texts: list[str], labels, column, test: np.ndarray,
               ticker: _Ticker, opts: dict) -> ProbeRun:
    start = time.perf_counter()
    data = collect(enc, texts, opts["length"], opts["padding"], opts["side"], opts["batch_size"],
                   opts["seed"], opts["per_text"], ticker)
    forward = time.perf_counter() - start
    token = enc.tokenizer.tokenizer.id_to_token
    targets = build_targets(data, lambda i: token(int(i)) or str(int(i)), labels, column)
    start = time.perf_counter()
    layers = fit_layers(data, targets, test & data.kept, opts["seed"], ticker)
    fit_s = time.perf_counter() - start
    kept = int(data.kept.sum())
    dims = int(data.content[0].shape[1]) if data.content else 0
    warnings = list(enc.session.warnings)
    if kept < len(texts):
        warnings.append(f"{len(texts) - kept} text(s) had NaN or Inf states and were left out")
    pad_texts = int(np.unique(data.pads.text).size)
    warnings += _window_notes(data, pad_texts, kept)
    log.info("%s: probed %d layers in %.1f s (forward %.1f s)", enc.label, data.num_layers, fit_s, forward)
    return ProbeRun(
        model=str(enc.ref.path), precision=enc.ref.precision, provider=provider, label=enc.label,
        texts=len(texts), kept=kept, layers=layers,
        pad_window={"floor": data.floor, "texts": pad_texts, "pads": data.pads.size},
        real_states=data.reals.size, dims=dims,
        split={"train": int((~test & data.kept).sum()), "test": int((test & data.kept).sum())},
        warnings=warnings,
        timings={"load": round(opts["load"], 3), "forward": round(forward, 3), "fit": round(fit_s, 3)})


def _window_notes(data: Collected, pad_texts: int, kept: int) -> list[str]:
    if pad_texts == 0:
        return [f"no text has a pad at or past position {data.floor} (the common pad window): "
                "pad probes are not applicable; raise --max-length, use shorter texts, or pad to "
                "--max-length (padded to its longest text, a batch has few pads)"]
    if pad_texts < kept:
        return [f"pad probes use the {pad_texts} of {kept} texts with pads in the common window "
                f"(positions from {data.floor} on, counted from the text side)"]
    return []
