"""Progress bars (tqdm on stderr, terminals only) for the library's ``progress(done)`` callback."""
from __future__ import annotations

import contextlib
import sys
from typing import Iterator, TextIO

#: Seconds a run stays silent before its bar appears: short runs never show one.
DELAY_S = 0.5
#: Seconds between redraws (a redraw per batch would slow tiny-model runs).
REDRAW_S = 0.1


class ProgressBar:
    """A callable ``progress(done)`` for inspect/audit/embed: a tqdm bar on a terminal.

    ``done`` is the running count the library reports. Draws nothing when the stream is
    not a TTY, when ``enabled`` is False (``--quiet``), or before ``delay`` seconds have
    passed. ``close()`` clears the line so the results print on a clean one.
    """

    def __init__(self, total: int | None = None, unit: str = "texts", stream: TextIO | None = None,
                 enabled: bool = True, delay: float = DELAY_S):
        from tqdm import tqdm  # imported by the commands that draw a bar only

        self.stream = stream if stream is not None else sys.stderr
        self.enabled = bool(enabled) and _is_tty(self.stream)
        self._bar = tqdm(total=total, unit=f" {unit}", unit_scale=True, file=self.stream, leave=False,
                         dynamic_ncols=True, mininterval=REDRAW_S, delay=delay, disable=not self.enabled)

    @property
    def total(self) -> int | None:
        """How many ``done`` means finished (None: unknown, no bar or ETA)."""
        return self._bar.total

    @total.setter
    def total(self, value: int | None) -> None:
        self._bar.total = value

    @property
    def done(self) -> int:
        """The last count reported."""
        return int(self._bar.n)

    def __call__(self, done: int) -> None:
        self._bar.update(int(done) - self._bar.n)

    def close(self) -> None:
        """Erase the bar."""
        self._bar.close()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _is_tty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def will_draw(quiet: bool, stream: TextIO | None = None) -> bool:
    """Whether a bar would draw on ``stream`` (stderr): not ``quiet``, and a terminal. A command asks
    before it counts a bar's total (its texts file read once more)."""
    return not quiet and _is_tty(stream if stream is not None else sys.stderr)


def progress_for(quiet: bool, total: int | None = None, unit: str = "texts",
                 stream: TextIO | None = None) -> ProgressBar | None:
    """The bar for a command, or None when it would never draw (``--quiet`` or not a TTY)."""
    if not will_draw(quiet, stream):
        return None
    # An audit "run" is long: draw from the first one instead of after a quiet delay.
    bar = ProgressBar(total, unit, stream, enabled=not quiet, delay=0.0 if unit == "runs" else DELAY_S)
    if bar.enabled:
        return bar
    bar.close()
    return None


@contextlib.contextmanager
def progress_bar(quiet: bool, total: int | None = None, unit: str = "texts") -> Iterator[ProgressBar | None]:
    """``progress_for`` as a block: yields the bar (or None) and clears it when the block ends."""
    bar = progress_for(quiet, total, unit)
    try:
        yield bar
    finally:
        if bar is not None:
            bar.close()
