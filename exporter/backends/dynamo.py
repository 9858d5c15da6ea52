"""The torch backend: ``torch.onnx.export(dynamo=True)`` of a wrapper returning every hidden state (any transformers)."""
from __future__ import annotations

import logging
from pathlib import Path

from padlens.errors import BadInput

from ..source import DECODER_ARCHITECTURES as DECODERS
from ..source import SUPPORTED_ARCHITECTURES, TORCH_ONLY_ARCHITECTURES
from .base import output_names, quiet_libraries

log = logging.getLogger(__name__)

#: the extra that installs this backend
EXTRA = "pip install 'padlens[export]'"
#: architectures exported and validated by this backend: Optimum's, and families only transformers 5 knows
ARCHITECTURES = SUPPORTED_ARCHITECTURES + TORCH_ONLY_ARCHITECTURES
#: weights above this many bytes go to external data beside model.onnx (protobuf's 2 GB limit)
EXTERNAL_DATA_BYTES = 2**31 - 2**26
#: ONNX opset of the exported graph
OPSET = 18


class TorchBackend:
    """``torch.onnx.export(..., dynamo=True, dynamic_shapes=...)`` of ``AllLayers`` (any transformers).

    Attributes:
        name: ``torch``.
    """

    name = "torch"

    def why_not(self) -> str | None:
        """torch, transformers or onnxscript (the dynamo exporter's) missing."""
        from importlib.util import find_spec

        for module in ("torch", "transformers", "onnxscript"):
            if find_spec(module) is None:
                return f"{module} is not installed ({EXTRA})"
        return None

    def architectures(self) -> tuple[str, ...]:
        return ARCHITECTURES

    def export_fp32(self, folder: Path, architecture: str, target: Path) -> list[Path]:
        import torch

        model = _load(folder, architecture)
        names = input_names(model, architecture)
        wrapper = _all_layers_class()(model, names[2:]).eval()
        layers = int(model.config.num_hidden_layers)
        example = _example(names, model.config)
        batch, seq = torch.export.Dim("batch_size"), torch.export.Dim("sequence_length")
        shapes = {name: {0: batch, 1: seq} for name in names}
        log.info("torch.onnx dynamo export of %s (%s, inputs %s)", folder, architecture, ", ".join(names))
        _forward_once(wrapper, example, architecture)  # seconds, where torch.export would spend minutes
        try:
            with _quiet_libraries(), torch.no_grad():
                program = torch.onnx.export(wrapper, (), kwargs=example, dynamo=True, dynamic_shapes=shapes,
                                            input_names=names, output_names=output_names(layers),
                                            opset_version=OPSET, optimize=True, verbose=False)
        except Exception as exc:  # torch.export's errors are long: the first line says what failed
            raise BadInput(f"architecture {architecture!r} cannot be exported by torch.export: "
                           f"{type(exc).__name__}: {_first_line(exc)}") from None
        return _save(program, target, _weight_bytes(model))


def _forward_once(wrapper, example: dict, architecture: str) -> None:
    """The model's own eager forward on the example batch: where transformers itself fails (a new
    architecture's bug), one error naming it before torch.export spends minutes on fallbacks."""
    import torch

    try:
        with _quiet_libraries(), torch.no_grad():
            wrapper(**example)
    except Exception as exc:  # transformers' own bugs on a new architecture: not padlens', nothing kept
        raise BadInput(f"architecture {architecture!r}: PyTorch's reference forward failed "
                       f"({type(exc).__name__}: {_first_line(exc)}); nothing was written") from None


def _all_layers_class():
    import torch

    class _AllLayers(torch.nn.Module):
        """``forward(input_ids, attention_mask[, token_type_ids | position_ids])`` -> last_hidden_state, then
        every hidden state (embeddings first)."""

        def __init__(self, model, extra: list[str]):
            super().__init__()
            self.model, self.extra = model, list(extra)

        def forward(self, input_ids, attention_mask, token_type_ids=None, position_ids=None):
            kwargs = {"token_type_ids": token_type_ids, "position_ids": position_ids}
            kwargs = {k: v for k, v in kwargs.items() if k in self.extra}
            if getattr(self.model.config, "use_cache", None) is not None:
                kwargs["use_cache"] = False
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True,
                             return_dict=True, **kwargs)
            return (out.last_hidden_state, *out.hidden_states)

    return _AllLayers


def input_names(model, architecture: str) -> list[str]:
    """The graph's inputs, as Optimum names them: ids and mask; ``token_type_ids`` when the model
    has more than one type; ``position_ids`` for decoders."""
    import inspect

    names = ["input_ids", "attention_mask"]
    accepts = inspect.signature(model.forward).parameters
    if "token_type_ids" in accepts and int(getattr(model.config, "type_vocab_size", 0) or 0) > 1:
        names.append("token_type_ids")
    if architecture in DECODERS:
        names.append("position_ids")
    return names


def _load(folder: Path, architecture: str):
    """The model in float32 (transformers 5 loads the config's dtype by default), eager attention
    (a plain graph every ONNX Runtime runs); BadInput when transformers cannot load it."""
    from transformers import AutoModel

    try:
        try:
            model = AutoModel.from_pretrained(folder, attn_implementation="eager")
        except (ValueError, TypeError):  # an architecture without the eager choice
            model = AutoModel.from_pretrained(folder)
    except (ValueError, KeyError, OSError, TypeError) as exc:
        raise BadInput(f"architecture {architecture!r}: transformers' AutoModel cannot load {folder}: "
                       f"{_first_line(exc)}") from None
    return model.float().eval()


def _example(names: list[str], config) -> dict:
    """Example inputs: batch 2, 8 tokens, the second row padded on the right."""
    import torch

    ids = torch.randint(1, min(int(config.vocab_size), 1000), (2, 8), dtype=torch.long)
    mask = torch.ones(2, 8, dtype=torch.long)
    mask[1, 5:] = 0
    feed = {"input_ids": ids, "attention_mask": mask}
    if "token_type_ids" in names:
        feed["token_type_ids"] = torch.zeros(2, 8, dtype=torch.long)
    if "position_ids" in names:
        feed["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0)
    return feed


def _weight_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def _save(program, target: Path, weights: int) -> list[Path]:
    """model.onnx, its weights beside it (``model.onnx.data``) when above 2 GB."""
    external = weights > EXTERNAL_DATA_BYTES
    program.save(str(target), external_data=external)
    data = target.with_name(target.name + ".data")
    return [target, data] if external and data.exists() else [target]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else "no message")[:300]


def _quiet_libraries():
    """torch.export's and onnxscript's warnings and progress lines, hidden unless -vv."""
    return quiet_libraries(log, ("transformers", "torch", "onnxscript", "torch.onnx"), stdout=True)
