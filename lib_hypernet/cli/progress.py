"""A minimal progress bar for the command line (carriage-return redraw on stderr), counting bytes or files.

Used by :mod:`lib_hypernet.cli.commands` while hashing (bytes) and converting or repairing a folder (files).
It draws nothing unless asked to; :func:`should_show` decides whether a bar is worth showing.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

MIB = 1024 * 1024
# A bar is shown automatically only for work above these sizes.
AUTO_MIN_BYTES = 64 * MIB
AUTO_MIN_FILES = 8
BAR_WIDTH = 24
MIN_INTERVAL_S = 0.1


def should_show(total_bytes: int, n_files: int, force: bool | None, isatty: bool) -> bool:
    """Whether to draw a bar.

    ``force`` True/False (``--progress``/``--no-progress``) decides outright; otherwise
    the bar is drawn on a terminal only for more than 64 MiB or more than 8 files.
    """
    if force is not None:
        return force
    return isatty and (total_bytes > AUTO_MIN_BYTES or n_files > AUTO_MIN_FILES)


class ProgressBar:
    """``label [#####-----]  45%  123.4/456.7 MiB  210.3 MiB/s`` (``… 45%  17/37 files`` with ``files``),
    redrawn at most every 0.1 s.

    Call :meth:`update` with byte counts (it fits ``hashing.sha256(progress=...)``) or file counts and
    :meth:`close` at the end, which draws the final state and a newline.  A disabled bar
    does nothing.
    """

    def __init__(
        self,
        total: int,
        *,
        label: str = "hashing",
        stream: TextIO | None = None,
        enabled: bool = True,
        min_interval: float = MIN_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        files: bool = False,
    ) -> None:
        self.total = max(0, int(total))
        self.done = 0
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.min_interval = min_interval
        self.files = files
        self._clock = clock
        self._start = clock()
        self._last_draw: float | None = None
        self._last_len = 0
        self._closed = False

    def update(self, n: int) -> None:
        """Count ``n`` more bytes; redraw if the last redraw is old enough."""
        self.done += n
        if not self.enabled or self._closed:
            return
        now = self._clock()
        if self._last_draw is None or now - self._last_draw >= self.min_interval:
            self._draw(now)

    def render(self, now: float | None = None) -> str:
        """The bar's text (without the carriage return)."""
        now = self._clock() if now is None else now
        fraction = min(1.0, self.done / self.total) if self.total else 1.0
        filled = round(fraction * BAR_WIDTH)
        bar = f"{self.label} [{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {fraction * 100:3.0f}%  "
        if self.files:
            return f"{bar}{self.done}/{self.total} files"
        rate = self.done / MIB / max(now - self._start, 1e-9)
        return f"{bar}{self.done / MIB:.1f}/{self.total / MIB:.1f} MiB  {rate:.1f} MiB/s"

    def _draw(self, now: float) -> None:
        text = self.render(now)
        pad = " " * max(0, self._last_len - len(text))
        self.stream.write(f"\r{text}{pad}")
        self.stream.flush()
        self._last_len = len(text)
        self._last_draw = now

    def close(self) -> None:
        """Draw the final state and end the line (once)."""
        if self._closed:
            return
        self._closed = True
        if self.enabled:
            self._draw(self._clock())
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
