"""Errors carry the parameters they are about (``errors.Param``); the library says them as keywords, the
command line as the flags of the command that ran, read from click's own parameter table."""
from __future__ import annotations

import logging
import pickle

import pytest

from padlens.cli import FlagWords, cli, flag_namer, flags_of
from padlens.errors import BadInput, PadlensError, Param, ProviderError
from padlens.inspector.inputs.options import RunOptions, check_engine


def command(name: str):
    """A registered ``padlens`` command."""
    flags_of(None)  # registers the commands
    return cli.commands[name]


def raised(call) -> PadlensError:
    with pytest.raises(PadlensError) as exc:
        call()
    return exc.value


# (the error, the library's words, what `padlens inspect ...` prints)
MESSAGES = [
    (raised(lambda: RunOptions(max_length=1)), "max_length must be at least 2 (room for [CLS] and [SEP]), got 1",
     "--max-length must be at least 2 (room for [CLS] and [SEP]), got 1"),
    (raised(lambda: RunOptions(batch_size=0)), "batch_size must be at least 1, got 0",
     "--batch-size must be at least 1, got 0"),
    (raised(lambda: check_engine("local", workers=2)), 'workers needs engine="ray"', "--workers needs --engine ray"),
    (raised(lambda: check_engine("local", ray_address="auto")), 'ray_address needs engine="ray"',
     "--ray-address needs --engine ray"),
    (raised(lambda: check_engine("ray", workers=0)), "workers must be at least 1, got 0",
     "--workers must be at least 1, got 0"),
    (BadInput("Name the tensors with ", Param("layers", meta="[NAME, ...]", cli_meta="NAME,...")),
     "Name the tensors with layers=[NAME, ...]", "Name the tensors with --layers NAME,..."),
    (BadInput("use ", Param("pooling", "auto"), " to take its sentence_embedding as it is"),
     'use pooling="auto" to take its sentence_embedding as it is',
     "use --pooling auto to take its sentence_embedding as it is"),
    (BadInput("the batch has 70: pass ", Param("max_length", 64), " or less"),
     "the batch has 70: pass max_length=64 or less", "the batch has 70: pass --max-length 64 or less"),
    (ProviderError("(asked for cuda); pass ", Param("allow_fallback", True), " to accept this"),
     "(asked for cuda); pass allow_fallback=True to accept this", "(asked for cuda); pass --allow-fallback to accept this"),
    (BadInput(Param("out", meta="m.txt"), ": the output must be an .onnx file"),
     "out=m.txt: the output must be an .onnx file", "-o m.txt: the output must be an .onnx file"),
    (BadInput(Param("engine", "ray"), " reads a corpus: pass ", Param("texts_file", meta="FILE"),
              ", FOLDER or GLOB, not ", Param("texts")),
     'engine="ray" reads a corpus: pass texts_file=FILE, FOLDER or GLOB, not texts',
     "--engine ray reads a corpus: pass --texts FILE, FOLDER or GLOB, not --text"),
    (BadInput(Param("providers", "cuda"), " with ", Param("engine", "ray"), " needs 2 GPU(s)"),
     'providers="cuda" with engine="ray" needs 2 GPU(s)', "--provider cuda with --engine ray needs 2 GPU(s)"),
    (BadInput("'x' is not NAME=VALUE", parameter="tolerances"), "tolerances 'x' is not NAME=VALUE",
     "--tolerance 'x' is not NAME=VALUE"),
]


@pytest.mark.parametrize("error, library, command_line", MESSAGES)
def test_an_error_names_its_parameters_as_keywords_in_the_library_and_as_flags_on_the_command_line(
        error, library, command_line):
    assert str(error) == library
    assert error.message(flag_namer(command("inspect"))) == command_line


def test_the_parameter_an_error_is_about_is_data():
    error = raised(lambda: RunOptions(threads=0))
    assert error.parameter == "threads" and error.parameters == ["threads"]
    mixed = BadInput("pass ", Param("batch_size", 1), " or ", Param("max_length"))
    assert mixed.parameter == "batch_size" and mixed.parameters == ["batch_size", "max_length"]
    assert BadInput("no parameter here").parameter is None


def test_an_error_keeps_its_parameters_through_pickling_as_ray_workers_send_it():
    error = pickle.loads(pickle.dumps(raised(lambda: RunOptions(max_length=1))))
    assert type(error) is BadInput and error.parameter == "max_length"
    assert error.message(flag_namer(None)).startswith("--max-length must be at least 2")


def test_flags_come_from_the_commands_own_click_parameters():
    flags_of(None)  # registers the commands
    for name, cmd in cli.commands.items():
        table = flags_of(cmd)
        for param in cmd.params:
            if param.param_type_name == "option":
                assert table[param.name] == param.opts[0], (name, param.name)
    assert flags_of(command("embed"))["out"] == "-o"
    assert flags_of(command("inspect"))["texts"] == "--text"


def test_a_parameter_no_command_has_reads_as_its_dashed_name():
    assert BadInput("needs ", Param("no_such_thing")).message(flag_namer(None)) == "needs --no-such-thing"


def test_padlens_log_lines_name_flags_other_loggers_are_left_alone():
    records = [logging.LogRecord(name, logging.WARNING, __file__, 1, "padding on the %s (pass %s to choose)",
                                 ("right", Param("padding_side")), None) for name in ("padlens.inspector.steps",
                                                                                      "elsewhere")]
    for record in records:
        assert FlagWords().filter(record)
    assert [r.getMessage() for r in records] == ["padding on the right (pass --padding-side to choose)",
                                                 "padding on the right (pass padding_side to choose)"]


def test_the_command_line_prints_a_library_error_with_the_flag(cli_run, tmp_path):
    texts = tmp_path / "t.txt"
    texts.write_text("a\n")
    code, _, err = cli_run("embed", tmp_path / "missing", "--texts", texts, "-o", tmp_path / "o.npy",
                           "--workers", "2")
    assert code == 2 and err.strip() == "Error: --workers needs --engine ray"
