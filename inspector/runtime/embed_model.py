"""The model `padlens embed` runs: one session fetching only the output it pools.

Embedding needs no located layers: the graph's own token states (``last_hidden_state``, or
``token_embeddings`` as sentence-transformers' exports name them) are pooled, or its
``sentence_embedding`` output is used as it is when the graph pools already. Layers are still
located when they can be (it finds the position table, hence the usable length); when they
cannot, the token output stands in for them.
"""
from __future__ import annotations

import logging
from typing import Sequence

import numpy as np

from padlens.errors import LayersNotFound, ModelLoadError, Param
from padlens.inspector.stats.pooling import GRAPH_POOLING, SENTENCE_EMBEDDING, l2_normalize, pool  # noqa: F401

log = logging.getLogger(__name__)

#: token-state outputs, in the order embed prefers them
TOKEN_OUTPUTS = ("last_hidden_state", "token_embeddings")


def choose_output(outputs: Sequence[str], token_output: str | None, graph_pooling: bool) -> tuple[str, bool]:
    """(output to fetch, whether the graph pooled it already).

    ``sentence_embedding`` when ``graph_pooling`` (pooling ``auto``) and the graph has it;
    else the first of ``TOKEN_OUTPUTS`` it has, else ``token_output`` (its rank-3 float output).
    """
    names = list(outputs)
    if graph_pooling and SENTENCE_EMBEDDING in names:
        return SENTENCE_EMBEDDING, True
    found = next((n for n in TOKEN_OUTPUTS if n in names), token_output)
    if found is not None and found not in names:  # a causal-LM graph: the head's input is no output
        raise ModelLoadError(f"no hidden-state output to pool: the graph outputs {', '.join(names)}, the "
                             "language-model head's logits; embed needs last_hidden_state (export with task "
                             "feature-extraction, or use the onnx-community layout)")
    if found is None:
        hint = (("use ", Param("pooling", "auto"), " to take its sentence_embedding as it is")
                if SENTENCE_EMBEDDING in names else ("padlens pools [batch, sequence, hidden] states",))
        raise ModelLoadError(f"no token-state output to pool (outputs: {', '.join(names) or 'none'}); ", *hint)
    return found, False


def open_graph(path):
    """The encoder graph at ``path``, its layers located when they can be; else with its
    token output as the only layer (embed needs nothing else)."""
    from padlens.inspector.model.graph import load_encoder
    from padlens.inspector.model.loader import read_model
    from padlens.inspector.model.locate import token_output

    try:
        return load_encoder(path)
    except LayersNotFound as exc:
        log.info("%s; embed needs only the output it pools, so it goes on without layers", exc)
    _, model, _ = read_model(path)
    names = [o.name for o in model.graph.output]
    name = next((n for n in TOKEN_OUTPUTS if n in names), None) or token_output(model) or names[0]
    del model
    return load_encoder(path, layers=[name])


class EmbedModel:
    """An encoder session fetching only the output embed pools (no other layer, no attention).

    Attributes:
        ref: the model file (``ModelRef``); tokenizer: its tokenizer; graph: the loaded graph
            (its proto and bytes dropped before the session is made).
        output: the graph output fetched; pooled: whether the graph pooled it already.
        session: the ONNX Runtime session (``SessionInfo``, made as ``options``, a ``SessionOptions``,
            say; None from ``without_session``).
    """

    def __init__(self, ref, options=None, graph_pooling: bool = False):
        from padlens.inspector.runtime.batch_probe import probe_batch
        from padlens.inspector.runtime.encoder import structure_notes
        from padlens.inspector.runtime.session import DEFAULT, create_session

        self._open(ref, graph_pooling)
        # the proto and the file's bytes go before the session is made, so the weights are never held
        # twice beside it; ORT reads the file (and any external data) in place from the user's path
        self.graph.model = self.graph.raw = None
        self.session = create_session(self.graph.path, options or DEFAULT)
        # one run of two rows: a graph that runs one row but not two gets its batch fixed at 1
        self.graph.structure = probe_batch(self._once, self.tokenizer.pad_id, self.graph.structure)
        log.info("%s: embedding from output %r%s", ref.label, self.output,
                 " (pooled in the graph)" if self.pooled else "")
        for note in structure_notes(self.graph):
            log.warning("%s: %s", ref.label, note)

    @classmethod
    def without_session(cls, ref, graph_pooling: bool = False) -> EmbedModel:
        """The tokenizer, graph facts and output of ``ref``, checked as on open, with no session and
        no weights kept (a Ray driver chooses the length with it; its actors open the sessions)."""
        model = cls.__new__(cls)
        model._open(ref, graph_pooling)
        model.session = None
        model.graph.model = model.graph.raw = None
        return model

    def _open(self, ref, graph_pooling: bool) -> None:
        """The tokenizer, the graph (layers located when they can be) and the output to fetch, checked."""
        from padlens.inspector.inputs.tokenize import load_tokenizer
        from padlens.inspector.model.locate import token_output
        from padlens.inspector.runtime.encoder import check_vocab

        self.ref = ref
        self.tokenizer = load_tokenizer(ref.tokenizer_path)
        self.graph = open_graph(ref.path)
        check_vocab(self.tokenizer, self.graph.vocab_size, ref.label)
        if any(s.role == "token_type_ids" for s in self.graph.inputs):
            self.tokenizer.check_encodes(pair=True)
        self.output, self.pooled = choose_output(self.graph.outputs, token_output(self.graph.model), graph_pooling)

    @property
    def label(self) -> str:
        return self.ref.label

    @property
    def max_positions(self) -> int | None:
        return self.graph.max_positions

    @property
    def limit_reason(self) -> str:
        """Why ``max_positions`` is below the position table's rows ("" when it is not)."""
        return self.graph.limit_reason

    def run(self, batch) -> np.ndarray:
        """The fetched output for ``batch``: ``[B, T, H]`` token states, or ``[B, H]`` when pooled
        (float32); run within a batch or length fixed in the graph, a failure worded with its cause."""
        from padlens.inspector.runtime.failures import run_explained

        return np.asarray(run_explained(self._once, batch, self.graph)[0], dtype=np.float32)

    def _once(self, part) -> list[np.ndarray]:
        """One session run on ``part`` as it is (``run`` shapes it to the graph first)."""
        from padlens.inspector.runtime.failures import failure_words
        from padlens.inspector.runtime.feeds import make_feeds

        return self.session.run([self.output], make_feeds(self.graph.inputs, part), failure_words(self.label, part))

    def embed(self, batch, mode: str, normalize: bool) -> np.ndarray:
        """Sentence embeddings ``[B, D]`` (float64) of ``batch``: pooled with ``mode`` under its
        mask (or the graph's own pooling), L2-normalised when ``normalize``."""
        out = self.run(batch)
        rows = out.astype(np.float64) if self.pooled else pool(out, batch.attention_mask, mode)
        return l2_normalize(rows) if normalize else rows


def pick_ref(refs: list):
    """The model to embed with: the only one; else an export dir's fp32 variant; else a
    folder's ``model.onnx`` (``onnx/model.onnx`` first, what sentence-transformers loads)."""
    if len(refs) == 1:
        return refs[0]
    named = sorted((r for r in refs if r.path.name == "model.onnx"), key=lambda r: r.path.parent.name != "onnx")
    fp32 = [r for r in refs if r.precision == "fp32"] + named
    chosen = fp32[0] if fp32 else refs[0]
    log.info("%d models found; embedding with %s (pass a .onnx file to choose)", len(refs), chosen.label)
    return chosen
