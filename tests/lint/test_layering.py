"""The inspector's layering and the private-name rule, read from the source (AST, nothing imported).

Packages by concern (inspector/<package>/__init__.py says what each owns and may import):
model/ and stats/ import no other inspector package; inputs/ only stats/; runtime/ never imports report/, probe/, audit/,
ray/, inspect or embed; report/ never imports runtime/, model/ or ray/; probe/ and audit/ not each other; only inspector/inspect.py,
inspector/embed.py, padlens/cli*.py and ray/ itself import ray/. No private name (``_x``) crosses a
package: ``from padlens.a.b import _x`` and ``b._x`` on an imported padlens module are allowed only
inside the package that defines it. Tests are exempt.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"inspector": "padlens.inspector", "exporter": "padlens.exporter", "padlens": "padlens"}
INSPECTOR = "padlens.inspector"

FORBIDDEN = {
    "inputs": {"model", "runtime", "report", "probe", "audit", "ray", "inspect", "embed"},
    "model": {"inputs", "runtime", "stats", "report", "probe", "audit", "ray", "inspect", "embed"},
    "stats": {"inputs", "model", "runtime", "report", "probe", "audit", "ray", "inspect", "embed"},
    "runtime": {"report", "probe", "audit", "ray", "inspect", "embed"},
    "report": {"runtime", "model", "ray"},
    "probe": {"audit", "ray"},
    "audit": {"probe", "ray"},
}
"""Inspector package -> the inspector packages (or top-level modules) it must not import."""

EXPORTER = "padlens.exporter"
EXPORTER_FORBIDDEN = {"probe", "ray", "inspect"}
"""Inspector packages the exporter (exporter/quantize/ included) must not import."""
AUDIT_API = ("padlens.inspector.audit", "padlens.inspector.audit.api", "padlens.inspector.audit.check_model")
"""The exporter reaches the audit only through its public function (audit/api.py), never its run's parts."""

RAY_IMPORTERS = ("padlens.inspector.inspect", "padlens.inspector.embed", "padlens.cli")
"""Modules (or name prefixes) outside inspector/ray/ allowed to import it."""


def module_name(path: Path) -> str:
    """``inspector/runtime/encoder.py`` -> ``padlens.inspector.runtime.encoder`` (``__init__`` -> the package)."""
    rel = path.relative_to(ROOT)
    parts = [FOLDERS[rel.parts[0]], *rel.parts[1:]]
    parts[-1] = parts[-1].removesuffix(".py")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_of(module: str, is_package: bool) -> str:
    """The package a module belongs to: itself for an ``__init__``, else its parent."""
    return module if is_package else module.rpartition(".")[0]


def inspector_part(module: str) -> str | None:
    """``padlens.inspector.runtime.encoder`` -> ``runtime``; None outside the inspector."""
    if not module.startswith(INSPECTOR + "."):
        return None
    return module[len(INSPECTOR) + 1:].split(".")[0]


def imported(tree: ast.Module, module: str, is_package: bool) -> list[tuple[int, str, list[str]]]:
    """(line, imported module, names) for each absolute or relative import of a padlens module."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name, []) for a in node.names if a.name.startswith("padlens")]
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                base = package_of(module, is_package).split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join([*base, target] if target else base)
            if target.startswith("padlens"):
                out.append((node.lineno, target, [a.name for a in node.names]))
    return out


def module_aliases(tree: ast.Module, module: str, is_package: bool) -> dict[str, str]:
    """Local names bound to padlens modules: ``import padlens.x as m`` and ``from padlens.x import mod``."""
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("padlens") and a.asname:
                    aliases[a.asname] = a.name
        elif isinstance(node, ast.ImportFrom):
            for _line, target, _ in imported(ast.Module(body=[node], type_ignores=[]), module, is_package):
                for a in node.names:
                    aliases[a.asname or a.name] = f"{target}.{a.name}"
    return aliases


def layer_problems(module: str, target: str) -> list[str]:
    """Why ``module`` may not import ``target`` (empty when it may)."""
    problems = []
    mine, theirs = inspector_part(module), inspector_part(target)
    if theirs is not None and mine != theirs and theirs in FORBIDDEN.get(mine, ()):
        problems.append(f"{mine}/ may not import {theirs}")
    if module.startswith(EXPORTER + ".") and theirs in EXPORTER_FORBIDDEN:
        problems.append(f"the exporter may not import {theirs}")
    if module.startswith(EXPORTER + ".") and theirs == "audit" and target not in AUDIT_API \
            and not target.startswith(AUDIT_API[1] + "."):
        problems.append("the exporter uses the audit through padlens.inspector.audit.check_model only")
    if theirs == "ray" and mine != "ray" and not module.startswith(RAY_IMPORTERS):
        problems.append("only inspect, embed and the CLI import inspector/ray/")
    return problems


def private_problems(tree, module, is_package, aliases) -> list[tuple[int, str]]:
    """Private names used outside the package that defines them."""
    home = package_of(module, is_package)
    out = []
    for line, target, names in imported(tree, module, is_package):
        for name in names:
            if name.startswith("_") and not name.startswith("__") and target.rpartition(".")[0] != home \
                    and target != home:
                out.append((line, f"imports private {target}.{name}"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases \
                and node.attr.startswith("_") and not node.attr.startswith("__"):
            target = aliases[node.value.id]
            if target.rpartition(".")[0] != home and target != home:
                out.append((node.lineno, f"uses private {target}.{node.attr}"))
    return out


def violations_in(source: str, module: str, is_package: bool = False) -> list[str]:
    """Every layering or private-name violation of one module's source."""
    tree = ast.parse(source)
    found = [(line, why) for line, target, names in imported(tree, module, is_package)
             for full in [target, *(f"{target}.{name}" for name in names)]
             for why in layer_problems(module, full)]
    found += private_problems(tree, module, is_package, module_aliases(tree, module, is_package))
    return sorted({f"{module}:{line}: {why}" for line, why in found})


def sources() -> list[Path]:
    return sorted(p for folder in FOLDERS for p in (ROOT / folder).rglob("*.py"))


def test_the_tree_keeps_the_layering_and_no_private_name_crosses_a_package():
    found = [v for path in sources()
             for v in violations_in(path.read_text(), module_name(path), path.name == "__init__.py")]
    assert found == [], "\n".join(found)


@pytest.mark.parametrize(("module", "source"), [
    ("padlens.inspector.model.loader", "from padlens.inspector.runtime.session import open_session\n"),
    ("padlens.inspector.model.loader", "from padlens.inspector import stats\n"),
    ("padlens.inspector.stats.measures", "from padlens.inspector.inputs.tokenize import Batch\n"),
    ("padlens.inspector.runtime.encoder", "from padlens.inspector.report import fmt\n"),
    ("padlens.inspector.runtime.encoder", "import padlens.inspector.audit.run\n"),
    ("padlens.inspector.runtime.encoder", "from padlens.inspector.inspect import inspect\n"),
    ("padlens.inspector.report.table", "from padlens.inspector.runtime.encoder import Encoder\n"),
    ("padlens.inspector.report.table", "from padlens.inspector.model import loader\n"),
    ("padlens.inspector.audit.run", "from padlens.inspector.ray import cluster\n"),
    ("padlens.inspector.probe.run", "from padlens.inspector import ray\n"),
    ("padlens.inspector.ray.inspect_job", "from padlens.inspector.inspect import _finish\n"),
    ("padlens.inspector.ray.inspect_job", "from padlens.inspector import inspect as I\nI._measure(1)\n"),
    ("padlens.cli_inspect", "from padlens.inspector.inputs.options import _check\n"),
    ("padlens.inspector.inspect", "from ..inputs.options import _check\n"),
    ("padlens.exporter.quantize.verify", "from padlens.inspector.audit.run import open_run\n"),
    ("padlens.exporter.quantize.verify", "from padlens.inspector.audit import facts\n"),
    ("padlens.exporter.quantize.run", "from padlens.inspector.probe import probe\n"),
])
def test_a_forbidden_import_is_found(module, source):
    assert violations_in(source, module), f"{module} may not run {source!r}"


@pytest.mark.parametrize(("module", "source"), [
    ("padlens.inspector.runtime.encoder", "from padlens.inspector.model.loader import read_model\n"),
    ("padlens.inspector.runtime.encoder", "from padlens.inspector.runtime.feeds import _feed\n"),
    ("padlens.inspector.report.table", "from padlens.inspector.inspect import InspectResult\n"),
    ("padlens.inspector.inspect", "from padlens.inspector.ray import inspect_job\n"),
    ("padlens.cli_inspect", "from padlens.inspector.ray.cluster import start\n"),
    ("padlens.inspector.ray.inspect_job", "from padlens.inspector.ray import cluster\ncluster._join()\n"),
    ("padlens.inspector.stats.pooling", "from padlens.inspector.contract import POOLING_MODES\n"),
    ("padlens.exporter.quantize.verify", "from padlens.inspector.audit import check_model\n"),
])
def test_an_allowed_import_passes(module, source):
    assert violations_in(source, module) == []


def test_each_inspector_package_says_what_it_owns_and_may_import():
    for init in sorted((ROOT / "inspector").glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert doc.splitlines()[0].strip() and "may import" in doc.lower(), f"{init}: say what it owns and may import"
