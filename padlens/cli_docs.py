"""``python -m padlens.cli_docs [FILE]``: the ``--help`` of every registered command rendered into docs/cli.md."""
from __future__ import annotations

import sys
from pathlib import Path

import click

WIDTH = 100
"""Help is rendered at this width whatever the terminal, so the file is the same everywhere."""

HEADER = ("# Command-line reference\n\n"
          "Generated from each command's `--help` by `python -m padlens.cli_docs docs/cli.md`; do not edit by hand\n"
          "(a test fails when this file and the commands disagree). Worked examples: docs/index.md, one page per command.\n")


def _context(command: click.Command, name: str, parent: click.Context | None) -> click.Context:
    """A context with the CLI's own settings (``-h``), whatever contexts ran before in this process."""
    from padlens.cli import CONTEXT_SETTINGS

    return click.Context(command, info_name=name, parent=parent, max_content_width=WIDTH, terminal_width=WIDTH,
                         help_option_names=CONTEXT_SETTINGS["help_option_names"])


def _help(command: click.Command, name: str, parent: click.Context | None) -> str:
    return command.get_help(_context(command, name, parent)).rstrip() + "\n"


def render() -> str:
    """Markdown: ``padlens --help``, then each registered command's ``--help``, in the CLI's order."""
    from padlens.cli import _register, cli

    _register()
    root = _context(cli, "padlens", None)
    parts = [HEADER, "## `padlens`\n\n```text\n" + _help(cli, "padlens", None) + "```\n"]
    for name in cli.list_commands(root):
        parts.append(f"## `padlens {name}`\n\n```text\n" + _help(cli.get_command(root, name), name, root) + "```\n")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    """Write the reference to FILE (default docs/cli.md), or print it with ``-``."""
    args = sys.argv[1:] if argv is None else argv
    target = args[0] if args else "docs/cli.md"
    if len(args) > 1 or (target.startswith("-") and target != "-"):
        print(f"Error: usage: python -m padlens.cli_docs [FILE | -] (got {' '.join(args)})", file=sys.stderr)
        sys.exit(2)
    text = render()
    if target == "-":
        sys.stdout.write(text)
        return
    from padlens.fsio import atomic_write

    atomic_write(target, text)
    print(f"wrote {Path(target)}")


if __name__ == "__main__":
    main()
