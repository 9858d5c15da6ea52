"""Recipes: TOML files naming the encoders padlens knows."""
from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from padlens.errors import BadInput

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib



@dataclass(frozen=True)
class Recipe:
    """An encoder padlens knows by name.

    Attributes:
        name: the name used on the command line (``padlens export NAME``).
        title: the model's usual name.
        source: ``package:DIST:SUBDIR`` (files of an installed distribution, offline)
            or ``hub:ID`` (downloaded from the Hugging Face Hub by the export extra).
        architecture: transformers ``model_type``.
        layers: number of encoder blocks.
        hidden_size: width of the residual stream.
        pooling: ``mean``, ``cls`` or ``lasttoken``, how its sentence embedding is made.
        normalize: whether the sentence embedding is L2-normalised.
        notes: one line on why it is here.
        hub_id: the Hub id of the same model, where ``source`` is not the Hub.
        padding_side: the side its users pad on (``left`` for Qwen3-Embedding), or None for
            the tokenizer's own.
    """

    name: str
    title: str
    source: str
    architecture: str
    layers: int
    hidden_size: int
    pooling: str
    normalize: bool
    notes: str
    hub_id: str | None = None
    padding_side: str | None = None

    @property
    def kind(self) -> str:
        return self.source.split(":", 1)[0]

    def to_dict(self) -> dict:
        return asdict(self)


def _load(text: str, origin: str) -> Recipe:
    data = tomllib.loads(text)
    try:
        return Recipe(**data)
    except TypeError as exc:
        raise BadInput(f"recipe {origin} is malformed: {exc}") from None


def list_recipes() -> list[Recipe]:
    """Every recipe shipped in padlens.models, sorted by name."""
    out = []
    for entry in resources.files(__name__).iterdir():
        if entry.name.endswith(".toml"):
            out.append(_load(entry.read_text(encoding="utf-8"), entry.name))
    return sorted(out, key=lambda r: r.name)


def get_recipe(name: str) -> Recipe | None:
    """The recipe called ``name``, or None."""
    for recipe in list_recipes():
        if recipe.name == name:
            return recipe
    return None


def package_folder(source: str) -> Path:
    """Resolve ``package:DIST:SUBDIR`` to a folder of an installed distribution.

    Reads the distribution's file list through importlib.metadata; never imports it.
    """
    from importlib import metadata

    try:
        _, dist_name, subdir = source.split(":", 2)
    except ValueError:
        raise BadInput(f"recipe source {source!r} is not package:DIST:SUBDIR") from None
    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError:
        raise BadInput(
            f"the model files come from the PyPI distribution {dist_name!r}, which is not "
            f"installed: pip install {dist_name}"
        ) from None
    for f in dist.files or ():
        if str(f).replace("\\", "/").startswith(subdir.rstrip("/") + "/"):
            path = Path(str(dist.locate_file(f)))
            folder = path.parent
            while folder.as_posix().rstrip("/").endswith(subdir.rstrip("/")) is False and folder != folder.parent:
                folder = folder.parent
            if folder.is_dir():
                return folder
    raise BadInput(f"distribution {dist_name!r} has no folder {subdir!r}")
