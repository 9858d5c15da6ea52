"""docs/cli.md is every registered command's --help, generated; it cannot drift from the commands."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click

from padlens import cli_docs
from padlens.cli import _register, cli

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "cli.md"


def test_docs_cli_md_is_the_generated_reference():
    assert DOCS.read_text(encoding="utf-8") == cli_docs.render(), \
        "docs/cli.md is out of date: run `python -m padlens.cli_docs docs/cli.md`"


def test_every_registered_command_has_a_section_with_its_options():
    _register()
    text = cli_docs.render()
    for name, command in cli.commands.items():
        assert f"## `padlens {name}`" in text, name
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                assert param.opts[0] in text, f"{name} {param.opts[0]}"


def test_a_command_added_later_is_picked_up_without_editing_the_generator():
    @click.command("zzz-extra")
    @click.option("--only-here", help="An option no other command has.")
    def extra(only_here):
        """A command registered after the others."""

    _register()
    cli.add_command(extra)
    try:
        text = cli_docs.render()
    finally:
        cli.commands.pop("zzz-extra")
    assert "## `padlens zzz-extra`" in text and "--only-here" in text


def test_the_generator_prints_the_reference():
    out = subprocess.run([sys.executable, "-m", "padlens.cli_docs", "-"], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    assert out.stdout == DOCS.read_text(encoding="utf-8")


def test_an_option_is_not_taken_for_the_file_to_write(tmp_path):
    out = subprocess.run([sys.executable, "-m", "padlens.cli_docs", "--check"], capture_output=True, text=True,
                         cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 2 and out.stderr.startswith("Error: usage:") and "Traceback" not in out.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written
