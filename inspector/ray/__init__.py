"""Scale-out on Ray Data: inspect and embed a corpus on a Ray cluster, same numbers as in-process.

The only package that imports ``ray`` (the ``ray`` extra: ``pip install 'padlens[ray]'``).
``cluster`` starts or joins Ray, ``corpus`` plans and reads a corpus as a Ray Data
datasource with each text's global index, ``inspect_job`` and ``embed_job`` run the
encoders on an actor pool and bring the results back to the driver.

May import: any inspector package and the public steps of inspect/embed. Imported only by
inspector/inspect.py, inspector/embed.py and the CLI (padlens/cli*.py).
"""
from __future__ import annotations
