"""The public API: `from padlens import export, inspect, audit, embed`, imported lazily."""
from __future__ import annotations

import subprocess
import sys

import padlens
import padlens.inspector


def _python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout


def test_import_padlens_loads_neither_onnxruntime_nor_torch():
    out = _python("import sys, padlens, padlens.inspector, padlens.inspector.contract\n"
                  "print(sorted(m for m in ('onnx', 'onnxruntime', 'torch', 'transformers') if m in sys.modules))")
    assert out.strip() == "[]"


def test_the_four_entry_points_are_the_library_functions():
    from padlens import audit, embed, export, inspect
    from padlens.exporter.pipeline import export as export_fn
    from padlens.inspector.audit.run import audit as audit_fn
    from padlens.inspector.embed import embed as embed_fn
    from padlens.inspector.inspect import inspect as inspect_fn

    assert (export, inspect, audit, embed) == (export_fn, inspect_fn, audit_fn, embed_fn)
    assert {"export", "inspect", "audit", "embed"} <= set(padlens.__all__)


def test_every_name_in_all_resolves():
    for module in (padlens, padlens.inspector):
        for name in module.__all__:
            assert getattr(module, name) is not None, f"{module.__name__}.{name}"


def test_an_unknown_name_is_an_attribute_error():
    for module in (padlens, padlens.inspector):
        try:
            module.no_such_name  # noqa: B018
        except AttributeError as exc:
            assert "no_such_name" in str(exc)
        else:
            raise AssertionError(f"{module.__name__}.no_such_name resolved")


def test_the_public_functions_share_their_options_in_one_order_and_by_keyword():
    import inspect as pyinspect

    import padlens

    shared = ["texts_file", "text_column", "tokenizer", "max_length", "padding", "padding_side", "batch_size",
              "providers", "threads", "allow_fallback", "layers"]
    for name in ("inspect", "embed", "probe", "audit"):
        params = pyinspect.signature(getattr(padlens, name)).parameters
        present = [p for p in params if p in shared]
        assert present == [p for p in shared if p in params], (name, present)
        assert len(present) >= 6, (name, present)
        keywords = [p for p in present if not (name == "embed" and p == "texts_file")]  # embed's corpus is required
        assert all(params[p].kind is pyinspect.Parameter.KEYWORD_ONLY for p in keywords), name


def test_the_command_lines_start_imports_no_commands_library_but_its_own():
    """Registering every command imports the command modules only: the audit's check registry is
    read when ``audit`` runs or shows its help, not at every other command's start."""
    out = _python("import sys\nfrom padlens.cli import _register\n_register()\n"
                  "print(sorted(m for m in sys.modules if m.startswith(('padlens.inspector.audit', "
                  "'padlens.inspector.inspect', 'onnxruntime'))))")
    assert out.strip() == "[]"
