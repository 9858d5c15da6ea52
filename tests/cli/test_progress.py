"""The progress bar: only on a terminal, never with --quiet, silent for short runs; -v timings."""
from __future__ import annotations

import io
import types

import click

from padlens.cli_options import progress_bar
from padlens.progress import ProgressBar, progress_for
from padlens.timings import fmt_count, stage_timings


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_bar_is_drawn_when_stderr_is_not_a_terminal():
    stream = io.StringIO()
    bar = ProgressBar(total=100, stream=stream, delay=0)
    for done in range(10, 101, 10):
        bar(done)
    bar.close()
    assert stream.getvalue() == ""
    assert progress_for(False, stream=stream) is None


def test_quiet_turns_the_bar_off_even_on_a_terminal():
    assert progress_for(True, stream=Tty()) is None


def test_a_short_run_shows_no_bar():
    stream = Tty()
    bar = ProgressBar(total=30, stream=stream)
    for done in (10, 20, 30):
        bar(done)
    assert bar.done == 30
    assert stream.getvalue() == ""


def test_a_long_run_draws_a_bar_with_its_count_and_clears_it_at_the_end():
    stream = Tty()
    with ProgressBar(total=1000, stream=stream, delay=0) as bar:
        for done in range(32, 1001, 32):
            bar(done)
        drawn = stream.getvalue()
    assert "texts" in drawn and "/1.00k" in drawn
    assert stream.getvalue()[len(drawn):].startswith("\r")  # the line is cleared on close


def test_the_total_can_be_learned_after_the_bar_exists():
    bar = ProgressBar(stream=Tty(), delay=0)
    bar.total = 50
    bar(25)
    assert (bar.total, bar.done) == (50, 25)
    bar.close()


def test_the_cli_helper_gives_no_callback_under_quiet():
    ctx = click.Context(click.Command("x"), obj={"quiet": True})
    with progress_bar(ctx, 10) as progress:
        assert progress is None


def test_verbose_timings_name_each_stage_with_tokens_per_second():
    run = types.SimpleNamespace(label="m/fp32", n_tokens=4000, n_pad_tokens=12000,
                                timings={"load": 0.2, "forward": 2.0, "metrics": 0.5})
    result = types.SimpleNamespace(runs=[run], texts_count=100,
                                   settings=types.SimpleNamespace(timings={"tokenize": 0.1, "total": 3.0}))
    lines = stage_timings(result)
    assert lines[0].startswith("tokenize") and "40k tokens/s" in lines[0]
    assert any(line.startswith("run") and "2k tokens/s" in line and "8k positions/s" in line for line in lines)
    assert any(line.startswith("metrics") for line in lines)
    assert all(len(line) <= 80 for line in lines)
    assert fmt_count(123_456) == "123k" and fmt_count(12) == "12"


def test_a_quiet_or_piped_inspect_neither_counts_its_texts_nor_loads_tqdm(monkeypatch):
    """No bar will draw (-q, or stderr not a terminal): the texts file is not read again for a total,
    and tqdm is not imported (a 0.03 s start-up cost of every quiet inspect)."""
    import sys

    from padlens import cli_inspect

    def counted(path):
        raise AssertionError("texts counted for a bar that never draws")

    monkeypatch.setattr(cli_inspect, "count_texts_or_none", counted)
    monkeypatch.setitem(sys.modules, "tqdm", None)  # importing it now raises ImportError
    options = types.SimpleNamespace(engine=types.SimpleNamespace(on_ray=False), texts_file="texts.txt")
    for quiet in (True, False):  # pytest's stderr is not a terminal
        ctx = click.Context(click.Command("inspect"), obj={"quiet": quiet})
        with cli_inspect.engine_progress(ctx, options) as progress:
            assert progress is None
    assert progress_for(False, stream=io.StringIO()) is None
