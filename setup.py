"""Build script: the package list is found in the source tree, never written by hand.

setup.cfg holds the metadata and dependencies; this file only maps the folders to the
``padlens`` namespace (``exporter/`` -> ``padlens.exporter`` ...) and finds every package
below each one, so a new subpackage is in the wheel the day it is created.
"""
from __future__ import annotations

import sys

from setuptools import Extension, find_packages, setup

#: installed package -> folder in the source tree
ROOTS = {
    "padlens": "padlens",
    "padlens.exporter": "exporter",
    "padlens.inspector": "inspector",
    "padlens.models": "models",
}


def _packages() -> list[str]:
    """Every package (a folder with ``__init__.py``) below each root, under its installed name."""
    found = []
    for name, folder in ROOTS.items():
        found.append(name)
        found.extend(f"{name}.{sub}" for sub in find_packages(folder))
    return found


def _extensions() -> list[Extension]:
    """The one compiled module, optional: where it cannot be built (no C compiler), the install goes on and
    the pad statistics run as ONNX operators inside the graph (``padlens.inspector.stats.fused``)."""
    flags = [] if sys.platform == "win32" else ["-O3", "-fopenmp-simd"]
    return [Extension("padlens.inspector.stats._fused", ["inspector/stats/_fused.c"], extra_compile_args=flags,
                      optional=True)]


setup(packages=_packages(), package_dir=ROOTS, ext_modules=_extensions())
