"""The progress bar: only on a terminal, never with --quiet, silent for short runs, one line wide."""
from __future__ import annotations

import io
import logging
import types

from padlens.progress import ProgressBar, fmt_count, progress_for, progress_line, stage_timings


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_bar_is_drawn_when_stderr_is_not_a_terminal():
    stream = io.StringIO()
    bar = ProgressBar(total=100, stream=stream)
    for done in range(10, 101, 10):
        bar(done)
    bar.close()
    assert stream.getvalue() == ""
    assert progress_for(False, stream=stream) is None


def test_quiet_turns_the_bar_off_even_on_a_terminal():
    assert progress_for(True, stream=Tty()) is None


def test_a_run_of_a_few_batches_shows_no_bar():
    stream = Tty()
    bar = ProgressBar(total=30, stream=stream)
    for done in (10, 20, 30):
        bar(done)
    assert stream.getvalue() == ""


def test_a_long_run_draws_a_bar_and_clears_it_at_the_end():
    stream = Tty()
    with ProgressBar(total=1000, stream=stream) as bar:
        for done in range(32, 1001, 32):
            bar(done)
    text = stream.getvalue()
    assert "\r[" in text and "texts" in text
    assert text.endswith("\r\x1b[K")


def test_the_progress_line_fits_the_terminal():
    for total in (None, 100_000):
        line = progress_line(54_321, total, 12.5, "texts", width=80)
        assert len(line) < 80
    assert "eta" in progress_line(500, 1000, 10.0)
    assert fmt_count(123_456) == "123k" and fmt_count(12) == "12"


def test_verbose_timings_name_each_stage_with_tokens_per_second(caplog):
    run = types.SimpleNamespace(label="m/fp32", n_tokens=4000, n_pad_tokens=12000,
                                timings={"load": 0.2, "forward": 2.0, "metrics": 0.5})
    result = types.SimpleNamespace(runs=[run], texts_count=100,
                                   settings={"timings": {"tokenize": 0.1, "total": 3.0}})
    lines = stage_timings(result)
    assert lines[0].startswith("tokenize") and "40k tokens/s" in lines[0]
    assert any(line.startswith("run") and "2k tokens/s" in line and "8k positions/s" in line for line in lines)
    assert any(line.startswith("metrics") for line in lines)
    assert all(len(line) <= 80 for line in lines)
