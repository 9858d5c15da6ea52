"""Resolve an export SOURCE (recipe name, local Hugging Face folder, hub id) to a model folder."""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from padlens.errors import BadInput
from padlens.models import Recipe, get_recipe, list_recipes, package_folder

log = logging.getLogger(__name__)

#: transformers ``model_type`` values padlens can export as an encoder with every layer.
SUPPORTED_ARCHITECTURES = ("bert", "distilbert", "electra", "modernbert", "mpnet", "qwen2", "qwen3",
                           "roberta", "xlm-roberta")
#: architectures only the torch backend exports (families native to transformers 5)
TORCH_ONLY_ARCHITECTURES = ("nomic_bert",)
#: decoder (causal) architectures among them: their graphs also take ``position_ids``
DECODER_ARCHITECTURES = ("qwen2", "qwen3")

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_HUB_FILES = ["*.json", "*.txt", "*.model", "model.safetensors", "1_Pooling/*"]


@dataclass(frozen=True)
class ModelSource:
    """A model folder ready to export.

    Attributes:
        given: SOURCE exactly as the user wrote it.
        folder: local folder holding config.json, weights and tokenizer files.
        recipe: the recipe SOURCE named, or None.
        architecture: transformers ``model_type`` from config.json.
        config: the parsed config.json.
    """

    given: str
    folder: Path
    recipe: Recipe | None
    architecture: str
    config: dict


def check_source(source: str, any_architecture: bool = False) -> ModelSource | None:
    """Check a local SOURCE (recipe or folder) without the network; None for a hub id.
    ``any_architecture``: accept a ``model_type`` outside the validated list (``--backend torch``)."""
    recipe = get_recipe(source)
    if recipe is not None and recipe.kind == "package":
        return _from_folder(source, package_folder(recipe.source), recipe, any_architecture)
    if recipe is not None or _is_hub_id(source):
        return None
    path = Path(source).expanduser()
    if path.is_dir():
        return _from_folder(source, path, None, any_architecture)
    if path.exists():
        raise BadInput(f"{source} is a file; SOURCE must be a recipe, a Hugging Face model folder or a hub id")
    raise BadInput(
        f"unknown recipe or path {source!r}: not a recipe ({', '.join(r.name for r in list_recipes())}), "
        "not a folder, not a hub id (org/name)"
    )


def resolve_source(source: str, any_architecture: bool = False) -> ModelSource:
    """The model folder for SOURCE, downloading a hub id with huggingface_hub when needed."""
    local = check_source(source, any_architecture)
    if local is not None:
        return local
    recipe = get_recipe(source)
    hub_id = recipe.source.split(":", 1)[1] if recipe is not None else source.removeprefix("hub:")
    return _from_folder(source, _download(hub_id), recipe, any_architecture)


def _is_hub_id(source: str) -> bool:
    if source.startswith("hub:"):
        return True
    return bool(_HUB_ID.match(source)) and not Path(source).exists()


def _from_folder(given: str, folder: Path, recipe: Recipe | None, any_architecture: bool = False) -> ModelSource:
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise BadInput(f"{folder} is not a Hugging Face model folder (no config.json)")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BadInput(f"{config_path} is not readable JSON: {exc}") from None
    architecture = str(config.get("model_type") or "")
    if not architecture or (not any_architecture and architecture not in SUPPORTED_ARCHITECTURES
                                                    + TORCH_ONLY_ARCHITECTURES):
        raise BadInput(
            f"{given}: architecture {architecture or 'unknown'!r} cannot be exported as an encoder; "
            f"supported: {', '.join(SUPPORTED_ARCHITECTURES)}; "
            f"with --backend torch also {', '.join(TORCH_ONLY_ARCHITECTURES)} (and, unvalidated, any other "
            "that transformers' AutoModel loads and torch.export traces)"
        )
    return ModelSource(given=given, folder=folder, recipe=recipe, architecture=architecture, config=config)


def _download(hub_id: str) -> Path:
    """Download the files an export needs (config, weights, tokenizer, pooling) from the Hub."""
    from huggingface_hub import snapshot_download

    log.info("downloading %s from the Hugging Face Hub", hub_id)
    try:
        folder = Path(snapshot_download(hub_id, allow_patterns=_HUB_FILES))
        if not any(folder.glob("*.safetensors")):
            folder = Path(snapshot_download(hub_id, allow_patterns=_HUB_FILES + ["pytorch_model.bin"]))
    except Exception as exc:  # network, auth, missing repo: all bad input for the user
        raise BadInput(f"could not download {hub_id!r} from the Hugging Face Hub: {exc}") from None
    return folder


#: files sentence-transformers keeps beside the model; copied into the export when present
SENTENCE_TRANSFORMERS_FILES = ("modules.json", "sentence_bert_config.json",
                               "config_sentence_transformers.json", "1_Pooling/config.json")


def pooling_of(src: ModelSource) -> tuple[str, bool]:
    """(pooling, normalize): the sentence-transformers modules, read as `padlens embed` reads
    them, else the recipe, else the last token for decoders and CLS for encoders."""
    if (src.folder / "modules.json").is_file():
        from padlens.inspector.stats.pooling import read_st_pooling

        try:
            config = read_st_pooling(src.folder)
            return config.mode, config.normalize
        except BadInput as exc:
            log.warning("%s; using the recipe's pooling", exc)
    if src.recipe is not None:
        return src.recipe.pooling, src.recipe.normalize
    if src.architecture in DECODER_ARCHITECTURES:  # decoder embedders pool their last token
        return "lasttoken", True
    return "cls", False
