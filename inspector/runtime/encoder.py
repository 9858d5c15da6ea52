"""An ONNX encoder with every layer exposed, run on padded batches through ONNX Runtime."""
from __future__ import annotations

import dataclasses
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx

from padlens.errors import BadInput, ModelLoadError
from padlens.inspector.inputs.lengths import choose_max_length
from padlens.inspector.inputs.providers import CPU, canonical_provider
from padlens.inspector.inputs.resolve import ModelRef, guess_precision
from padlens.inspector.inputs.tokenize import Batch, PadTokenizer, choose_side, load_tokenizer, mask_positions
from padlens.inspector.model import graph as graph_mod
from padlens.inspector.model import inplace
from padlens.inspector.model.expose import EXTERNAL_OVER
from padlens.inspector.model.loader import InputSpec
from padlens.inspector.runtime.batch_probe import probe_batch
from padlens.inspector.runtime.failures import failure_words, run_explained
from padlens.inspector.runtime.feeds import make_feeds
from padlens.inspector.runtime.session import DEFAULT, SessionInfo, SessionOptions, create_session
from padlens.inspector.stats import fused as fused_sums
from padlens.inspector.stats import ingraph

log = logging.getLogger(__name__)

@dataclass
class Forward:
    """What one run of the instrumented encoder returned for one batch.

    Attributes:
        hidden: float32 [B, T, H] residual-stream states; index 0 is the embedding output,
            1..L the encoder blocks' outputs.
        attention: float32 [B, heads, T, T] attention probabilities per block, or [] when
            none were located.
        outputs: the model's own graph outputs, by name, as ONNX Runtime returned them.
    """

    hidden: list[np.ndarray]
    attention: list[np.ndarray] = field(default_factory=list)
    outputs: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def num_layers(self) -> int:
        """L: the number of encoder blocks (``len(hidden) - 1``)."""
        return len(self.hidden) - 1


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| in float64; NaN where only one side is NaN counts as infinite."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    if a.size == 0:
        return 0.0
    if np.any(np.isnan(a) != np.isnan(b)):
        return float("inf")
    both = ~np.isnan(a)
    same_inf = np.isinf(a) & (a == b)
    with np.errstate(invalid="ignore"):  # inf - inf where both sides agree; masked out below
        diff = np.abs(np.where(both & ~same_inf, a - b, 0.0))
    return float(diff.max())


@dataclass
class EncoderInfo:
    """What an encoder is and how it runs (``Encoder.describe()``; a run's ``encoder``).

    Attributes:
        label, path, precision, tokenizer: the model file as resolved (``ModelRef``).
        provider: the provider that runs first; providers: every one the session uses;
            providers_asked: ORT names asked for; warnings: dropped providers accepted.
        layer_style: how the layers were found ("named", "traced", "user" ...).
        num_layers: L; hidden_size: width of the states (None if unknown).
        tensors: the hidden-state tensors, layer 0 first; attention: attention-probability tensors.
        inputs: the graph inputs fed, with roles and dtypes; outputs: the model's own outputs.
        float_dtype: dtype of the hidden states.
        max_positions, vocab_size: embedding table rows (None if unknown).
        exposure_max_abs_diff: max |Δ| of the own outputs, instrumented vs unmodified.
        final_norm, before_final_norm: pre-norm graphs (ModernBERT, Qwen): the final norm's
            output and the stream entering it (``LayerMap``); None elsewhere.
        causal: real tokens see only earlier positions (a decoder); causal_evidence: why.
        positions_from_ids: how the graph counts positions from input ids ("" when it does not).
        position_rows: rows of the position table as stored (``max_positions`` is what texts may use).
        fixed_batch, fixed_length: a batch size / sequence length fixed inside the graph, else None.
        notes: what the reader must know about how it was run (one text per batch, ...).
        stats: where the pad statistics are computed: ``graph`` (reductions inside the session,
            ``padlens.inspector.stats.ingraph``), or ``numpy`` with the reason ("" when not asked).
    """

    label: str
    path: str
    precision: str
    tokenizer: str
    provider: str
    providers: list[str]
    providers_asked: list[str]
    warnings: list[str]
    layer_style: str
    num_layers: int
    hidden_size: int | None
    tensors: list[str]
    attention: list[str]
    inputs: list[InputSpec]
    outputs: list[str]
    float_dtype: str
    max_positions: int | None
    vocab_size: int | None
    exposure_max_abs_diff: float | None
    final_norm: str | None = None
    before_final_norm: str | None = None
    causal: bool = False
    causal_evidence: str = ""
    positions_from_ids: str = ""
    position_rows: int | None = None
    fixed_batch: int | None = None
    fixed_length: int | None = None
    notes: list[str] = field(default_factory=list)
    stats: str = ""


def _load(ref: ModelRef, layers: list[str] | None) -> tuple[PadTokenizer, graph_mod.EncoderGraph]:
    """``ref``'s tokenizer and located graph, the tokenizer checked against the vocabulary; an unknown
    precision is read from the graph.

    The tokenizer loads on a thread while the graph is read (the tokenizers library parses without
    the GIL: MiniLM's 0.08 s hidden behind the graph's 0.15 s); its error, if any, is still the one
    raised first."""
    with ThreadPoolExecutor(1, thread_name_prefix="padlens-tokenizer") as beside:
        loading = beside.submit(load_tokenizer, ref.tokenizer_path)
        try:
            graph = graph_mod.load_encoder(ref.path, layers)
        except Exception:  # (an interrupt goes on as it is: the thread is waited for as the block ends)
            loading.result()  # a tokenizer that cannot load is reported before the model
            raise
        tokenizer = loading.result()
    check_vocab(tokenizer, graph.vocab_size, ref.label)
    if any(s.role == "token_type_ids" for s in graph.inputs):
        tokenizer.check_encodes(pair=True)
    if ref.precision == "unknown":
        ref.precision = guess_precision(graph.model)
    return tokenizer, graph


#: tokens per row of the exposure check's batch (``check_batch``; at most the model's positions)
CHECK_TOKENS = 24
#: its token ids are taken from the first ids of the vocabulary, the pad id left out
CHECK_VOCAB = 1000


def weights_on_disk(path: Path) -> int:
    """Bytes of ``path`` and of the external-data files beside it named after it the usual ways
    (``model.onnx_data``, ``model.onnx.data``, ``model.data``): a model's weights, known before its
    graph is parsed."""
    path = Path(path)
    names = {path.name, path.name + "_data", path.name + ".data", path.stem + ".data", path.stem + "_data"}
    return sum((path.parent / name).stat().st_size for name in names if (path.parent / name).is_file())


def structure_notes(graph: graph_mod.EncoderGraph) -> list[str]:
    """What a run must say about how the graph's structure shapes it (once per model)."""
    s, notes = graph.structure, []
    if s.fixed_batch:
        notes.append(f"the graph fixes the batch at {s.fixed_batch} ({s.fixed_batch_evidence}): "
                     f"padlens runs {s.fixed_batch} text{'s' if s.fixed_batch != 1 else ''} per batch")
    if s.fixed_length:
        notes.append(f"the graph fixes the sequence length at {s.fixed_length}: every batch is padded to it")
    return notes


@dataclass
class Encoder:
    """A located, instrumented encoder with its tokenizer and an ONNX Runtime session.

    Attributes:
        ref: the model file, label, precision and tokenizer path.
        graph: the loaded graph (``padlens.inspector.model.graph.EncoderGraph``), unmodified.
        tokenizer: the tokenizer ``ref`` names.
        session: the session over the instrumented graph, the providers it uses and the
            ``SessionOptions`` it was made with.
        hidden_outputs: output name to fetch for hidden layer 0..L.
        attention_outputs: output name to fetch for each block's attention probabilities.
        exposure_delta: max |Δ| of the model's own outputs, instrumented vs unmodified, on the
            exposure check's batch (``check_exposure``), or None before it ran.
        exposure_note: why the exposure check could not run ("" when it ran or was not asked): the
            model failed on its batch (the run then fails on the user's own batch, worded for it).
        stats: the in-graph statistics the session computes (``padlens.inspector.stats.ingraph``;
            their masks are fed on every run), or None.
        stats_note: "" while ``stats`` are used; else why the metrics are computed in numpy.
    """

    ref: ModelRef
    graph: graph_mod.EncoderGraph
    tokenizer: PadTokenizer
    session: SessionInfo
    hidden_outputs: list[str]
    attention_outputs: list[str]
    exposure_delta: float | None = None
    exposure_note: str = ""
    stats: ingraph.StatsPlan | None = None
    stats_note: str = ""

    @classmethod
    def open(cls, ref: ModelRef, options: SessionOptions = DEFAULT, layers: list[str] | None = None,
             keep_model: bool = True, stats: bool = False, attention: bool = True,
             check_exposure: bool = False) -> Encoder:
        """Load ``ref``, check its tokenizer fits, expose every layer, and create the session
        (``create_session``, run as ``options`` say).

        ``keep_model=False`` keeps no weights in Python: once the graph is read, its proto keeps only
        references to the weights' bytes in the file (``inplace.weightless``), and it is dropped
        (``graph.model`` becomes None) once the session exists; inspect needs no other.
        ``stats=True`` also adds the pad statistics' reductions to the graph
        (``padlens.inspector.stats.ingraph``) where they can be built (``stats_note`` says why not).
        ``attention=False`` leaves the attention maps unexposed and unfetched (the audit and the
        probes read hidden states only); a file that lists every hidden state as an output then
        runs with nothing added to its graph.
        ``check_exposure=True`` runs the exposure check (``exposure_delta``): the unmodified file's
        own outputs on ``check_batch`` are taken first, from a session released before the
        instrumented one is made (the weights are never held twice), then compared with the
        instrumented session's.
        """
        tokenizer, graph = _load(ref, layers)
        if not keep_model:
            _drop_weights(graph)
        maps = list(graph.layers.attention) if attention else []
        tensors = list(graph.layers.hidden) + maps
        own = set(graph.outputs)  # fetched by their own names: no Identity copying them each run
        exposed = [t for t in tensors if t not in own]
        reference, note = None, ""
        if check_exposure and (exposed or stats):
            reference, note = _checked(lambda: _reference(graph, tokenizer, options, ref.label))
        session, plan, why, names = _instrumented(graph, exposed, options, stats, maps)
        names.update({t: t for t in tensors if t in own})
        hidden = [names[t] for t in graph.layers.hidden]
        attention_names = [names[t] for t in maps] if all(t in names for t in maps) else []
        enc = cls(ref, graph, tokenizer, session, hidden, attention_names, stats=plan, stats_note=why,
                  exposure_note=note)
        if reference is not None:
            enc.exposure_delta, enc.exposure_note = _checked(lambda: enc._compare(*reference))
        else:
            enc._probe_batch()
        if check_exposure and reference is None and not note:
            enc.exposure_delta = 0.0  # nothing added: the session runs the file as it is
        graph.raw = None
        if not keep_model:
            graph.model = None
        log.info("%s: %d layers (%s) on %s", ref.label, len(hidden) - 1, graph.layers.style, session.used)
        for line in structure_notes(graph):
            log.info("%s: %s", ref.label, line)  # commands show it once: run warnings, audit note
        return enc

    def _probe_batch(self) -> None:
        """One run of two rows at open (``batch_probe``): a graph that runs one row but not two has
        its batch fixed at 1 from then on (and its pad statistics computed in numpy, as for any
        batch fixed in the graph; the statistics' masks are still fed)."""
        fetch = list(self.hidden_outputs)

        def once(part: Batch) -> list[np.ndarray]:
            return self.session.run(fetch, self.feeds(part), failure_words(self.label, part))

        found = probe_batch(once, self.tokenizer.pad_id, self.graph.structure)
        if found is self.graph.structure:
            return
        self.graph.structure = found
        if self.stats is not None and not self.stats_note:
            self.stats_note = ingraph.unsupported(self.graph.model, self.graph.float_dtype, found)

    def _compare(self, batch: Batch, reference: dict[str, np.ndarray]) -> float:
        """max |Δ| between ``reference`` (the unmodified file's own outputs on ``batch``) and this
        session's."""
        own = list(reference)
        mine = dict(zip(own, self._run(own, batch)))
        delta = max((max_abs_diff(mine[n], reference[n]) for n in own), default=0.0)
        log.info("%s: exposing layers moved the model's own outputs by at most %.3g", self.label, delta)
        return delta

    @classmethod
    def without_session(cls, ref: ModelRef, layers: list[str] | None = None) -> Encoder:
        """The tokenizer, located layers and limits of ``ref``, checked as ``open`` checks them, with
        no session and no weights kept (a Ray driver plans with it; its actors open the sessions)."""
        tokenizer, graph = _load(ref, layers)
        graph.model = graph.raw = None
        return cls(ref, graph, tokenizer, None, [str(t) for t in graph.layers.hidden],
                   [str(t) for t in graph.layers.attention])

    @property
    def num_layers(self) -> int:
        return len(self.hidden_outputs) - 1

    @property
    def label(self) -> str:
        return self.ref.label

    @property
    def max_positions(self) -> int | None:
        """The most tokens a text may have (the position table's rows less RoBERTa's offset, at
        most a length fixed in the graph; None: relative or rotary positions)."""
        return self.graph.max_positions

    @property
    def limit_reason(self) -> str:
        """Why ``max_positions`` is below the position table's rows ("" when it is not)."""
        return self.graph.limit_reason

    @property
    def causal(self) -> bool:
        """Real tokens attend only to earlier positions (read from the graph or its config)."""
        return self.graph.causal

    @property
    def notes(self) -> list[str]:
        """How the graph's fixed batch or length shapes every run, in words."""
        return structure_notes(self.graph)

    def padding_side(self, asked: str = "auto") -> tuple[str, str]:
        """(side, where it came from) for ``--padding-side asked`` (``tokenize.choose_side``)."""
        return choose_side(asked, self.tokenizer, self.causal)

    def check_max_length(self, n: int) -> None:
        """BadInput when ``n`` tokens need more positions than the model's position embeddings."""
        choose_max_length(int(n), [self])

    def encode(self, texts: Sequence[str], max_length: int = 128, padding: str = "max_length",
               side: str = "right") -> Batch:
        """Tokenize for this model after checking ``max_length`` fits its positions
        (``side="auto"``: the side ``padding_side`` chooses)."""
        self.check_max_length(max_length)
        side = self.padding_side(side)[0] if side == "auto" else side
        return self.tokenizer.encode(texts, max_length=max_length, padding=padding, side=side)

    def feeds(self, batch: Batch) -> dict[str, np.ndarray]:
        """The graph's inputs filled from ``batch`` by role and dtype (and the masks of the
        in-graph statistics when the session has them)."""
        feeds = make_feeds(self.graph.inputs, batch)
        if self.stats is not None:
            feeds.update(ingraph.feeds(self.stats, batch.attention_mask))
        return feeds

    @property
    def uses_stats(self) -> bool:
        """The session computes the pad statistics (``run_stats``)."""
        return self.stats is not None and not self.stats_note

    @property
    def maps_in_graph(self) -> bool:
        """The session's statistics read the attention maps inside the graph (not exposed)."""
        return self.stats is not None and bool(self.stats.attention) and not self.attention_outputs

    def drop_stats(self, why: str) -> None:
        """Measure in numpy from now on (``why``, shown as ``encoder.stats``). A session whose graph
        read the attention maps itself is made again with the maps exposed (the old one released
        first), for the numpy path to read them."""
        self.stats_note = why
        if not self.maps_in_graph:
            return
        options = self.session.options.replace(ready_first=False, stop_spinning=False)
        self.session = None  # released before its replacement holds the weights
        fresh = Encoder.open(self.ref, options, keep_model=False)  # maps are located, never named by the user
        self.session, self.hidden_outputs, self.attention_outputs, self.stats = (
            fresh.session, fresh.hidden_outputs, fresh.attention_outputs, None)

    def run_stats(self, batch: Batch) -> ingraph.BatchSums:
        """Run the instrumented graph on ``batch`` fetching only the in-graph statistics."""
        if self.stats is None:
            raise ValueError(f"{self.label}: the session has no in-graph statistics")
        return ingraph.read(self.stats, self._run(self.stats.fetch, batch), batch.attention_mask)

    def run(self, batch: Batch) -> Forward:
        """Run the instrumented graph on ``batch``: every hidden layer, attention, own outputs."""
        own = list(self.graph.outputs)
        fetch = list(dict.fromkeys(own + self.hidden_outputs + self.attention_outputs))
        values = dict(zip(fetch, self._run(fetch, batch)))
        hidden = [np.asarray(values[n], dtype=np.float32) for n in self.hidden_outputs]
        self._check_hidden(hidden, batch)
        # one-head graphs may drop the heads axis: [B, T, T] becomes [B, 1, T, T]
        attention = [_with_heads(np.asarray(values[n], dtype=np.float32)) for n in self.attention_outputs]
        return Forward(hidden, attention, {n: values[n] for n in own})

    def fetch(self, names: Sequence[str], batch: Batch) -> list[np.ndarray]:
        """The outputs ``names`` of the instrumented graph on ``batch``, as ONNX Runtime returns
        them: shaped to a batch or length fixed in the graph, failures worded with their cause."""
        return self._run(list(names), batch)

    def _run(self, fetch: list[str], batch: Batch, session: SessionInfo | None = None) -> list[np.ndarray]:
        session = session or self.session

        def once(part: Batch) -> list[np.ndarray]:
            feeds = self.feeds(part) if session is self.session else make_feeds(self.graph.inputs, part)
            return session.run(fetch, feeds, failure_words(self.label, part))

        return run_explained(once, batch, self.graph)

    def _check_hidden(self, hidden: list[np.ndarray], batch: Batch) -> None:
        for index, (name, h) in enumerate(zip(self.graph.layers.hidden, hidden)):
            if h.ndim != 3 or h.shape[:2] != batch.shape:
                raise ModelLoadError(f"{self.label}: layer {index} tensor {name!r} has shape {h.shape}, "
                                     f"expected [batch, seq, hidden] = [{batch.shape[0]}, {batch.shape[1]}, H]")

    def verify_exposure(self, batch: Batch | None = None, forward: Forward | None = None) -> float | None:
        """max |Δ| between the model's own outputs, instrumented vs the unmodified file, on the
        exposure check's batch (``check_batch``). Opened with ``check_exposure=True``, the check ran
        at open, before the instrumented session existed; otherwise it runs now, on a session over
        the unmodified file made for it and released (its weights held beside this session's
        meanwhile). ``batch`` and ``forward`` are accepted for callers of the older per-batch check."""
        if self.exposure_delta is None and not self.exposure_note:
            reference = _reference(self.graph, self.tokenizer, self.session.options, self.label)
            self.exposure_delta = self._compare(*reference)
        return self.exposure_delta

    def describe(self) -> EncoderInfo:
        """What this encoder is and how it runs."""
        layers = self.graph.layers
        return EncoderInfo(
            label=self.label, path=str(self.ref.path), precision=self.ref.precision,
            tokenizer=str(self.ref.tokenizer_path), provider=self.session.provider,
            providers=list(self.session.used), providers_asked=list(self.session.asked),
            warnings=list(self.session.warnings), layer_style=layers.style, num_layers=self.num_layers,
            hidden_size=layers.hidden_size, tensors=[str(t) for t in layers.hidden],
            attention=[str(t) for t in layers.attention], inputs=list(self.graph.inputs),
            outputs=list(self.graph.outputs), float_dtype=self.graph.float_dtype,
            max_positions=self.graph.max_positions, vocab_size=self.graph.vocab_size,
            exposure_max_abs_diff=self.exposure_delta, final_norm=layers.final_norm,
            before_final_norm=layers.before_final_norm, causal=self.causal,
            causal_evidence=self.graph.structure.causal_evidence,
            positions_from_ids=self.graph.structure.positions_from_ids, position_rows=self.graph.position_rows,
            fixed_batch=self.graph.structure.fixed_batch, fixed_length=self.graph.structure.fixed_length,
            notes=self.notes, stats=self.stats_mode,
        )

    @property
    def stats_mode(self) -> str:
        """``graph``, ``numpy: <why>`` when in-graph statistics were asked but not used, else ``""``."""
        if self.uses_stats:
            return "graph"
        return f"numpy: {self.stats_note}" if self.stats_note else ""


def _drop_weights(graph: graph_mod.EncoderGraph) -> None:
    """Keep no copy of a self-contained file's weights in Python: its bytes go, and its proto becomes
    one whose large initializers refer to their bytes in the file (``inplace.weightless``), as an
    external-data model's do; sessions then read them in place."""
    if graph.raw is None or len(graph.raw) > EXTERNAL_OVER:
        return
    light = inplace.weightless(graph.raw, graph.path.name)
    if light is not None:
        graph.model, graph.raw = light, None


def check_batch(tokenizer: PadTokenizer, graph: graph_mod.EncoderGraph) -> Batch:
    """The exposure check's batch, made without the tokenizer (the user's texts are the only ones it
    encodes): two rows of ``CHECK_TOKENS`` (at most the model's positions), one full, one a third
    real and padded on the side the model is padded by default; real ids spread over the first
    ``CHECK_VOCAB`` ids of the vocabulary, never the pad id."""
    width = min(CHECK_TOKENS, graph.max_positions or CHECK_TOKENS)
    side = choose_side("auto", tokenizer, graph.causal)[0]
    pad, vocab = int(tokenizer.pad_id), max(2, min(int(tokenizer.vocab_size), CHECK_VOCAB))
    ids = np.arange(2 * width, dtype=np.int64).reshape(2, width) * 7 % vocab
    ids[ids == pad] = (pad + 1) % vocab
    mask = np.zeros((2, width), np.int64)
    for row, real in enumerate((width, max(2, width // 3))):
        mask[row, :real] = 1
    if side == "left":
        mask = mask[:, ::-1].copy()
    zeros = np.zeros_like(mask)
    return Batch(np.where(mask == 1, ids, pad), mask, zeros, mask_positions(mask), zeros, mask.sum(axis=1),
                 side, pad)


def _checked(check):
    """(``check()``, "") or (None, why not) when the model fails on the check's batch: the run then
    fails on the user's own batch, with words for it, not for the check's."""
    try:
        return check(), ""
    except ModelLoadError as exc:
        log.info("exposure not checked: %s", exc)
        return None, f"the model failed on the exposure check's batch ({exc})"


def _reference(graph: graph_mod.EncoderGraph, tokenizer: PadTokenizer, options: SessionOptions,
               label: str) -> tuple[Batch, dict[str, np.ndarray]]:
    """(``check_batch``, the unmodified file's own outputs on it) from a session over the file, made
    and released here; the batch probe runs on it too (a batch fixed at 1 is a fact of the file)."""
    plain = create_session(graph, options)
    own = list(graph.outputs)

    def once(fetch: list[str]):
        return lambda part: plain.run(fetch, make_feeds(graph.inputs, part), failure_words(label, part))

    graph.structure = probe_batch(once(own), tokenizer.pad_id, graph.structure)
    batch = check_batch(tokenizer, graph)
    outputs = run_explained(once(own), batch, graph)
    plain = None  # released here, before any instrumented session exists  # noqa: F841
    return batch, dict(zip(own, outputs))


def _instrumented(graph: graph_mod.EncoderGraph, exposed: list[str], options: SessionOptions, stats: bool,
                  maps: list[str]) -> tuple[SessionInfo, ingraph.StatsPlan | None, str, dict[str, str]]:
    """(session, plan, "", output per exposed tensor) over the model with ``exposed`` as outputs and
    the in-graph statistics added; (session, None, why not, ...) without the statistics when they
    cannot be built or ONNX Runtime refuses them.

    With the statistics, the attention maps ``maps`` are read inside the graph and not exposed
    (a graph output lives until the run ends; a map read in the graph is freed once its block's
    statistics ran, with ``SessionOptions.ready_first``)."""
    why = ingraph.unsupported(graph.model, graph.float_dtype, graph.structure) if stats else ""
    if stats and not why:
        delta, names = _exposure(graph, [t for t in exposed if t not in set(maps)])
        fused = fused_here(options, graph.layers.hidden_size)
        extra, plan = ingraph.build(graph.model, list(graph.layers.hidden), maps, graph.float_dtype,
                                    width=graph.layers.hidden_size, fused=fused)
        if fused:  # the states as exposed (or as the file names its own outputs), read by stats.fused
            plan = dataclasses.replace(plan, hidden=tuple(names.get(t, t) for t in graph.layers.hidden),
                                       threads=options.threads)
            log.info("%s: per-layer pad statistics in one pass over each fetched state (compiled module)",
                     graph.path.name)
        added = _merged(delta, extra) if delta is not None else extra
        try:
            made = options.replace(ready_first=True, stop_spinning=fused)
            return create_session(graph, made, added), plan, "", names
        except ModelLoadError as exc:
            why = f"onnxruntime refused the statistics graph ({exc})"
    if why:
        log.info("%s: pad statistics in numpy: %s", graph.path.name, why)  # the run's encoder.stats says why
    delta, names = _exposure(graph, exposed)
    return create_session(graph, options, delta), None, why, names


def fused_here(options: SessionOptions, width: int | None) -> bool:
    """Whether the per-layer statistics are taken from the fetched states (``padlens.inspector.stats.fused``):
    the compiled module is built, the session runs on the CPU alone (on a GPU each state would be
    copied to the host every batch) and the states are at most ``fused.MAX_WIDTH`` wide (known from the
    graph); elsewhere the sums stay ONNX operators in the graph."""
    return (fused_sums.available() and bool(width) and width <= fused_sums.MAX_WIDTH
            and all(canonical_provider(p) == CPU for p in options.providers))


def _exposure(graph: graph_mod.EncoderGraph, exposed: list[str]) -> tuple[onnx.ModelProto | None, dict[str, str]]:
    """(the delta exposing ``exposed`` as outputs, the output per tensor); (None, {}) for none."""
    return graph_mod.output_delta(graph.model, exposed) if exposed else (None, {})


def _merged(delta: onnx.ModelProto, extra: onnx.ModelProto) -> onnx.ModelProto:
    """``delta`` and ``extra`` in one new delta (neither is changed)."""
    merged = onnx.ModelProto()
    merged.CopyFrom(delta)
    merged.MergeFrom(extra)
    return merged


def _with_heads(probs: np.ndarray) -> np.ndarray:
    """Attention probabilities as [B, heads, T, T] (a [B, T, T] tensor is one head)."""
    return probs[:, None] if probs.ndim == 3 else probs


def check_vocab(tokenizer: PadTokenizer, embedding_rows: int | None, label: str) -> None:
    """BadInput when the tokenizer can emit ids past the model's embedding table."""
    if embedding_rows is not None and tokenizer.vocab_size > int(embedding_rows):
        raise BadInput(f"the tokenizer {tokenizer.path} has {tokenizer.vocab_size} tokens but {label}'s "
                       f"embedding table has {embedding_rows} rows: pass the model's own tokenizer")
