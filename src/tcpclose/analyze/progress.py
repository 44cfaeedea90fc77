"""A one-line progress bar on a terminal's standard error, for files that take a while.

Shown only after `DELAY` seconds (a quick run never draws it), redrawn at most every
`EVERY` seconds with carriage returns, and erased before anything else is written. The
command creates it only when standard error is a terminal.
"""

from __future__ import annotations

import os
import time
from typing import TextIO

from tcpclose.analyze.reading import Progress

#: seconds before the bar first shows (TCPCLOSE_PROGRESS_DELAY overrides: tests set 0)
DELAY = 1.0
EVERY = 0.1
_BAR = 24


class ProgressBar:
    def __init__(self, err: TextIO) -> None:
        self._err = err
        self._start = time.monotonic()
        try:
            delay = float(os.environ.get("TCPCLOSE_PROGRESS_DELAY", DELAY))
        except ValueError:
            delay = DELAY
        self._next = self._start + delay
        self._drawn = 0  # characters on the line now

    def update(self, p: Progress) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + EVERY
        if p.size:
            share = min(p.read / p.size, 1.0)
            filled = int(share * _BAR)
            head = (
                f"[{'#' * filled}{'.' * (_BAR - filled)}] {share:4.0%} "
                f"{p.read / 1e6:,.1f} of {p.size / 1e6:,.1f} MB"
            )
        else:
            head = f"{p.read / 1e6:,.1f} MB"
        text = f"{p.name}: {head}, {p.packets:,} packets, {p.connections:,} connections"
        pad = max(0, self._drawn - len(text))
        self._err.write("\r" + text + " " * pad)
        self._err.flush()
        self._drawn = len(text)

    def clear(self) -> None:
        if self._drawn:
            self._err.write("\r" + " " * self._drawn + "\r")
            self._err.flush()
            self._drawn = 0
