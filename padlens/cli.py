"""The `padlens` command line: thin click commands over the library."""
from __future__ import annotations

import logging
import sys
from typing import Callable

import click

from padlens import __version__
from padlens.errors import PadlensError, Param

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def flags_of(command: click.Command | None) -> dict[str, str]:
    """Parameter name -> the option a user types, from click's own parameter tables: ``command``'s
    first, then every other command's (a library parameter the command does not have, e.g. ``out``
    of ``padlens quantize -o``, reads as the flag other commands give it)."""
    _register()
    commands = [command] if command is not None else []
    commands += [cli, *(c for c in cli.commands.values() if c is not command)]
    table: dict[str, str] = {}
    for cmd in commands:
        for param in cmd.params:
            if isinstance(param, click.Option) and param.name is not None:
                table.setdefault(param.name, param.opts[0])
    return table


def flag_namer(command: click.Command | None) -> Callable[[Param], str]:
    """How the command line names a library ``Param``: ``max_length`` -> ``--max-length`` (the flag
    of ``command``'s click parameter of that name; else ``--`` and the name, dashed)."""
    table = flags_of(command)

    def name(param: Param) -> str:
        return param.as_flag(table.get(param.name, "--" + param.name.replace("_", "-")))

    return name


class FlagWords(logging.Filter):
    """padlens' log lines as the command line's user reads them: ``Param`` arguments named as flags."""

    def __init__(self, command: click.Command | None = None):
        super().__init__()
        self.namer = flag_namer(command)

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if record.name.startswith("padlens") and isinstance(args, tuple) and any(isinstance(a, Param) for a in args):
            record.args = tuple(self.namer(a) if isinstance(a, Param) else a for a in args)
        return True


class PadlensGroup(click.Group):
    """Lists commands in the order they were added (the order a user meets them)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


@click.group(cls=PadlensGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="padlens")
@click.option("-v", "--verbose", count=True, help="More logging: -v info and timings, -vv debug.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars, only results and errors.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """What do the [PAD] positions of a transformer encoder hold, and where do they leak?

    \b
    padlens exports Hugging Face encoders to ONNX with every layer exposed, and
    inspects any ONNX encoder (yours or a third party's) with ONNX Runtime.

    \b
    Examples:
      padlens demo                                   # the whole job on all-MiniLM-L6-v2
      padlens export minilm-l6 -o out/minilm         # four precisions, every layer
      padlens inspect out/minilm --text "this is a sample sentence"
      padlens audit out/minilm --json audit.json     # exit 1 when padding leaks
    """
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(level, logging.DEBUG), format="%(levelname)s %(name)s: %(message)s")
    words = FlagWords(cli.get_command(ctx, ctx.invoked_subcommand) if ctx.invoked_subcommand else None)
    for handler in logging.getLogger().handlers:
        for old in [f for f in handler.filters if isinstance(f, FlagWords)]:
            handler.removeFilter(old)  # an earlier run's command, in this process
        handler.addFilter(words)
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose
    ctx.obj["quiet"] = quiet


def _register() -> None:
    """Attach the commands; each module owns one part of the tool."""
    from padlens import cli_audit, cli_demo, cli_embed, cli_export, cli_inspect, cli_probe, cli_quantize, cli_study

    for module in (cli_export, cli_inspect, cli_audit, cli_embed, cli_probe, cli_quantize, cli_study, cli_demo):
        for command in getattr(module, "COMMANDS", ()):
            cli.add_command(command)


# click 8.2-8.4 call it NoArgsIsHelp, 8.5 NoArgsIsHelpError; older releases have neither.
_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError",
                           getattr(click.exceptions, "NoArgsIsHelp", ()))


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


def _command_of(argv: list[str] | None) -> click.Command | None:
    """The command ``argv`` ran (the group's own options take no values: the first word is it)."""
    args = sys.argv[1:] if argv is None else argv
    name = next((a for a in args if not a.startswith("-")), None)
    return cli.commands.get(name) if name is not None else None


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; turn PadlensError and usage errors into one `Error:` line."""
    _register()
    try:
        rv = cli.main(args=argv, prog_name="padlens", standalone_mode=False)
    except PadlensError as exc:
        click.echo(f"Error: {exc.message(flag_namer(_command_of(argv)))}", err=True)
        sys.exit(exc.exit_code)
    except _NO_ARGS_IS_HELP as exc:  # `padlens inspect` with no arguments: show its help
        click.echo(exc.ctx.get_help() if exc.ctx else "", err=True)
        sys.exit(2)
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        click.echo(f"Error: {_one_line(exc.format_message())}{hint}", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        click.echo(f"Error: {_one_line(exc.format_message())}", err=True)
        sys.exit(exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("Error: interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:  # `padlens inspect ... | head`
        sys.exit(0)
    if isinstance(rv, int):
        sys.exit(rv)
    sys.exit(0)
