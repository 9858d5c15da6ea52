"""Scale-out on Ray Data: inspect and embed a corpus on a Ray cluster, same numbers as in-process.

The only package that imports ``ray`` (the ``ray`` extra: ``pip install 'padlens[ray]'``).
``cluster`` starts or joins Ray, ``corpus`` plans and reads a corpus as a Ray Data
datasource with each text's global index, ``inspect_job`` and ``embed_job`` run the
encoders on an actor pool and bring the results back to the driver.

May import: any inspector package and the public steps of inspect/embed. Imported only by
inspector/inspect.py, inspector/embed.py and the CLI (padlens/cli*.py).
"""
from __future__ import annotations

from padlens.errors import BadInput

ENGINES = ("local", "ray")
"""Where inspect and embed run: ``local`` (this process) or ``ray`` (Ray Data actors)."""


def check_engine(engine: str, ray_address: str | None = None, workers: int | None = None) -> None:
    """BadInput for an unknown engine, or Ray options without ``engine="ray"``; never imports ray."""
    if engine not in ENGINES:
        raise BadInput(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine != "ray":
        for option, value in (("ray_address", ray_address), ("workers", workers)):
            if value is not None:
                raise BadInput(f'{option} needs engine="ray"')
    elif workers is not None and int(workers) < 1:
        raise BadInput(f"workers must be at least 1, got {workers}")
