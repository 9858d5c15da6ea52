"""Check every exposed layer of an exported graph against PyTorch on a padded batch of real texts."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from padlens.inspector.stats.pooling import l2_normalize
from padlens.inspector.stats.pooling import pool as pool_states

#: fp32 real-token tolerance: above it the export fails (exit 1)
FP32_TOLERANCE = 1e-4
#: pooled-embedding cosine each other precision should reach (recorded, never fatal)
COSINE_THRESHOLDS = {"fp16": 0.999, "int8-dynamic": 0.9, "int8-static": 0.9}

Feed = dict[str, np.ndarray]


@dataclass
class LayerDelta:
    """Largest absolute difference to PyTorch at one layer.

    Attributes:
        index: 0 is the embedding output, 1…L the encoder blocks' outputs.
        tensor: the graph output holding the layer (``hidden_states.<index>``).
        max_abs_real: max |ONNX − PyTorch| over real positions (mask 1, specials included).
        max_abs_pad: the same over pad positions (mask 0).
    """

    index: int
    tensor: str
    max_abs_real: float
    max_abs_pad: float


@dataclass
class PrecisionCheck:
    """How one exported precision compares with PyTorch fp32.

    Attributes:
        precision: ``fp32``, ``fp16``, ``int8-dynamic`` or ``int8-static``.
        layers: one LayerDelta per exposed layer, embeddings first.
        last_equals_final_layer: ``last_hidden_state`` equals ``hidden_states.L`` exactly
            (not in ModernBERT, whose ``hidden_states.L`` is taken before its final norm,
            as Hugging Face's ``output_hidden_states`` takes it).
        finite: no NaN or infinity in any output.
        pooled_cosine: mean cosine of pooled embeddings vs PyTorch on the validation batch.
        pooled_cosine_min: the smallest of those cosines.
        threshold: real-token tolerance (fp32) or pooled-cosine threshold (others).
        passed: whether ``threshold`` holds; only a failed fp32 check fails the export.
        pooled_cosine_heldout: mean pooled cosine vs the fp32 graph on held-out texts.
        heldout_texts: how many held-out texts that cosine is over.
    """

    precision: str
    layers: list[LayerDelta]
    last_equals_final_layer: bool
    finite: bool
    pooled_cosine: float
    pooled_cosine_min: float
    threshold: float
    passed: bool
    pooled_cosine_heldout: float | None = None
    heldout_texts: int = 0
    extra: dict = field(default_factory=dict)

    def __bool__(self) -> bool:
        """True when it passed: ``if result:`` reads as ``if result.passed:``."""
        return bool(self.passed)

    @property
    def max_abs_real(self) -> float:
        return max(layer.max_abs_real for layer in self.layers)

    def to_dict(self) -> dict:
        out = asdict(self)
        out.update(out.pop("extra"))
        if self.pooled_cosine_heldout is None:
            out.pop("pooled_cosine_heldout")
            out.pop("heldout_texts")
        return out


def session(path: Path):
    """A CPU InferenceSession for an exported variant, from the one module that makes them."""
    from padlens.inspector.runtime.session import create_session

    return create_session(path).session


def run_all(path: Path, feed: Feed) -> dict[str, np.ndarray]:
    """Every graph output of ``path`` on ``feed``, by name."""
    sess = session(path)
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, {i.name: feed[i.name] for i in sess.get_inputs()})))


class States(list):
    """PyTorch's ``hidden_states`` (embeddings, then every block) with its ``last_hidden_state``.

    They differ in ModernBERT, whose last hidden state is taken before its final norm, and
    coincide elsewhere (post-norm encoders; Qwen and Llama, whose last entry is tied to it).
    """

    def __init__(self, states: Sequence[np.ndarray], last: np.ndarray):
        super().__init__(states)
        self.last = last


def reference_states(folder: Path, feed: Feed) -> States:
    """PyTorch ``output_hidden_states=True`` on ``feed``: embeddings, then every block."""
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(folder).eval()
    inputs = {name: torch.from_numpy(value) for name, value in feed.items()}
    with torch.no_grad():
        out = model(**inputs, output_hidden_states=True)
    return States([h.float().numpy() for h in out.hidden_states], out.last_hidden_state.float().numpy())


def pool(hidden: np.ndarray, mask: np.ndarray, pooling: str, normalize: bool = True) -> np.ndarray:
    """Sentence embeddings from token states (float64), pooled as `padlens embed` pools them
    (the inspector's ``stats.pooling``: ``lasttoken`` is the last real token on either side)."""
    out = pool_states(hidden, mask, pooling)
    return l2_normalize(out) if normalize else out


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two (n, d) arrays: the inspector's one row cosine (``stats.cosine``)."""
    from padlens.inspector.stats.cosine import row_cosines

    return row_cosines(a, b)


def layer_deltas(outputs: dict[str, np.ndarray], reference: Sequence[np.ndarray], mask: np.ndarray) -> list[LayerDelta]:
    """Max |Δ| per layer, real and pad positions apart."""
    real = mask.astype(bool)
    out = []
    for index, ref in enumerate(reference):
        name = f"hidden_states.{index}"
        diff = np.abs(outputs[name].astype(np.float64) - ref.astype(np.float64))
        out.append(LayerDelta(index, name, _max(diff[real]), _max(diff[~real])))
    return out


def _max(values: np.ndarray) -> float:
    if values.size == 0:
        return 0.0
    if not np.all(np.isfinite(values)):
        return float("nan")
    return float(values.max())


def check_precision(precision: str, path: Path, feed: Feed, reference: Sequence[np.ndarray],
                    pooling: str, normalize: bool) -> PrecisionCheck:
    """Run ``path`` on the validation batch and compare every layer with PyTorch."""
    outputs = run_all(path, feed)
    mask = feed["attention_mask"]
    layers = layer_deltas(outputs, reference, mask)
    final = outputs[f"hidden_states.{len(reference) - 1}"]
    finite = all(bool(np.all(np.isfinite(v))) for v in outputs.values())
    last = getattr(reference, "last", reference[-1])
    cos = cosines(pool(outputs["last_hidden_state"], mask, pooling, normalize),
                  pool(last, mask, pooling, normalize))
    threshold = FP32_TOLERANCE if precision == "fp32" else COSINE_THRESHOLDS[precision]
    check = PrecisionCheck(
        precision=precision, layers=layers,
        last_equals_final_layer=bool(np.array_equal(outputs["last_hidden_state"], final)),
        finite=finite, pooled_cosine=float(cos.mean()), pooled_cosine_min=float(cos.min()),
        threshold=threshold, passed=False,
    )
    diff = np.abs(outputs["last_hidden_state"].astype(np.float64) - last.astype(np.float64))
    check.extra["last_hidden_state_max_abs_real"] = _max(diff[mask.astype(bool)])
    check.passed = _passed(check)
    return check


def _passed(check: PrecisionCheck) -> bool:
    if not check.finite:
        return False
    if check.precision == "fp32":
        last = check.extra.get("last_hidden_state_max_abs_real", 0.0)
        return all(d.max_abs_real <= check.threshold for d in check.layers) and last <= check.threshold
    score = check.pooled_cosine_heldout if check.pooled_cosine_heldout is not None else check.pooled_cosine
    return bool(score >= check.threshold)


def heldout_cosine(check: PrecisionCheck, fp32: Path, path: Path, batches: Sequence[Feed],
                   pooling: str, normalize: bool) -> None:
    """Record pooled cosine vs the fp32 graph over ``batches`` of held-out texts on ``check``."""
    if not batches:
        return
    base, other = session(fp32), session(path)
    values = []
    for feed in batches:
        mask = feed["attention_mask"]
        a = _last(base, feed)
        b = _last(other, feed)
        values.append(cosines(pool(a, mask, pooling, normalize), pool(b, mask, pooling, normalize)))
    cos = np.concatenate(values)
    check.pooled_cosine_heldout = float(cos.mean())
    check.heldout_texts = int(cos.size)
    check.extra["pooled_cosine_heldout_min"] = float(cos.min())
    check.passed = _passed(check)


def _last(sess, feed: Feed) -> np.ndarray:
    return sess.run(["last_hidden_state"], {i.name: feed[i.name] for i in sess.get_inputs()})[0]
