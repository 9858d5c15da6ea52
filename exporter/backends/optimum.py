"""The one module that calls Optimum: fp32 ONNX export with every hidden state as an output (transformers 4.x)."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

from padlens.errors import BadInput

from .base import OUTPUT_AXES as AXES
from .base import output_names, quiet_libraries

log = logging.getLogger(__name__)

#: the extra that installs this backend
EXTRA = "pip install -c constraints.txt 'padlens[optimum]'"

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


class OptimumBackend:
    """Optimum's ``main_export`` with a config adding every hidden state (the transformers 4.x lane).

    Attributes:
        name: ``optimum``.
    """

    name = "optimum"

    def why_not(self) -> str | None:
        """Optimum or optimum-onnx missing, or optimum-onnx's transformers pin excluding the installed one."""
        from importlib import metadata
        from importlib.util import find_spec

        if find_spec("optimum") is None:
            return f"Optimum is not installed ({EXTRA})"
        try:
            requires = metadata.requires("optimum-onnx") or []
        except metadata.PackageNotFoundError:
            return f"optimum-onnx is not installed ({EXTRA})"
        return _pin_excludes(requires, metadata.version("optimum-onnx"))

    def architectures(self) -> tuple[str, ...]:
        return tuple(_BASE_CONFIGS)

    def export_fp32(self, folder: Path, architecture: str, target: Path) -> list[Path]:
        scratch = target.parent / ".optimum"
        try:
            produced = export_fp32(folder, architecture, scratch)
            return move_export(produced, target)  # with its external data, if any
        finally:
            discard(scratch)


def _pin_excludes(requires: list[str], optimum_onnx: str) -> str | None:
    """The optimum-onnx requirement on transformers, when the installed transformers is outside it."""
    from importlib import metadata

    from packaging.requirements import Requirement

    try:
        installed = metadata.version("transformers")
    except metadata.PackageNotFoundError:
        return "transformers is not installed"
    for line in requires:
        req = Requirement(line)
        if req.name == "transformers" and (req.marker is None or req.marker.evaluate({"extra": ""})) \
                and not req.specifier.contains(installed, prereleases=True):
            return (f"optimum-onnx {optimum_onnx} pins transformers{req.specifier}, installed transformers "
                    f"{installed}; use --backend torch (or the 4.x lane: {EXTRA})")
    return None


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


def move_export(produced: Path, target: Path) -> list[Path]:
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
    return [target, *(target.parent / name for name in sorted(locations))]


def _quiet_libraries():
    """Tracer warnings and transformers/optimum chatter, hidden unless -vv."""
    return quiet_libraries(log, ("transformers", "optimum"))


def discard(scratch: Path) -> None:
    """Remove Optimum's scratch folder (config and preprocessors it saved beside the model)."""
    shutil.rmtree(scratch, ignore_errors=True)
