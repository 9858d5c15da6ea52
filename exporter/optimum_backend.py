"""The one module that calls Optimum: fp32 ONNX export with every hidden state as an output."""
from __future__ import annotations

import contextlib
import logging
import shutil
import warnings
from pathlib import Path
from typing import Iterator

from padlens.errors import BadInput

log = logging.getLogger(__name__)

#: dynamic axes of every hidden-state output
AXES = {0: "batch_size", 1: "sequence_length"}

#: padlens architecture -> name of Optimum's OnnxConfig class it extends
_BASE_CONFIGS = {
    "bert": "BertOnnxConfig",
    "distilbert": "DistilBertOnnxConfig",
    "electra": "ElectraOnnxConfig",
    "modernbert": "ModernBertOnnxConfig",
    "mpnet": "MPNetOnnxConfig",
    "qwen2": "Qwen2OnnxConfig",
    "qwen3": "Qwen3OnnxConfig",
    "roberta": "RobertaOnnxConfig",
    "xlm-roberta": "XLMRobertaOnnxConfig",
}


def output_names(num_layers: int) -> list[str]:
    """``last_hidden_state`` then ``hidden_states.0`` (embeddings) … ``hidden_states.L``."""
    return ["last_hidden_state"] + [f"hidden_states.{i}" for i in range(num_layers + 1)]


def all_layers_config_class(architecture: str) -> type:
    """An OnnxConfig subclass for ``architecture`` whose outputs add every hidden state."""
    from optimum.exporters.onnx import model_configs

    try:
        base = getattr(model_configs, _BASE_CONFIGS[architecture])
    except KeyError:
        raise BadInput(f"no ONNX config for architecture {architecture!r}") from None

    class AllLayersOnnxConfig(base):
        """Optimum's config for this architecture, with ``hidden_states.0 … hidden_states.L`` added."""

        @property
        def outputs(self) -> dict[str, dict[int, str]]:
            layers = self._config.num_hidden_layers
            return {name: dict(AXES) for name in output_names(layers)}

    AllLayersOnnxConfig.__name__ = f"AllLayers{base.__name__}"
    return AllLayersOnnxConfig


def export_fp32(folder: Path, architecture: str, scratch: Path) -> Path:
    """Export ``folder`` with Optimum into ``scratch``; return the path of model.onnx.

    ``main_export`` with a custom OnnxConfig and ``output_hidden_states=True``; Optimum's own
    validation is skipped because padlens validates every layer on padded real texts.
    """
    from optimum.exporters.onnx import main_export
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(folder)
    onnx_config = all_layers_config_class(architecture)(config, task="feature-extraction")
    log.info("optimum export of %s (%s) to %s", folder, architecture, scratch)
    with _quiet_libraries():
        main_export(
            str(folder),
            output=scratch,
            task="feature-extraction",
            library_name="transformers",
            custom_onnx_configs={"model": onnx_config},
            model_kwargs={"output_hidden_states": True},
            do_validation=False,
            local_files_only=True,
        )
    model = scratch / "model.onnx"
    if not model.is_file():
        raise RuntimeError(f"Optimum wrote no model.onnx in {scratch}: {sorted(p.name for p in scratch.iterdir())}")
    return model


def move_export(produced: Path, target: Path) -> None:
    """Move Optimum's model.onnx to ``target`` with its external-data files (models over 2 GB,
    such as Qwen3-Embedding-0.6B in fp32, keep their weights beside the graph)."""
    import onnx
    from onnx.external_data_helper import uses_external_data

    model = onnx.load(str(produced), load_external_data=False)
    locations = {entry.value for tensor in model.graph.initializer if uses_external_data(tensor)
                 for entry in tensor.external_data if entry.key == "location"}
    shutil.move(str(produced), target)
    for name in sorted(locations):
        shutil.move(str(produced.parent / name), target.parent / name)


@contextlib.contextmanager
def _quiet_libraries() -> Iterator[None]:
    """Hide tracer warnings and transformers/optimum chatter unless padlens logs at DEBUG (-vv)."""
    if log.isEnabledFor(logging.DEBUG):
        yield
        return
    loggers = [logging.getLogger(name) for name in ("transformers", "optimum")]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)


def discard(scratch: Path) -> None:
    """Remove Optimum's scratch folder (config and preprocessors it saved beside the model)."""
    shutil.rmtree(scratch, ignore_errors=True)
