"""The terminal writer: colour only on a tty, progress on standard error only on a tty."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console


def stdout_console(min_width: int | None = None) -> Console:
    """A Console for results. Not a tty: no colour, and a fixed width (rich would assume 80)."""
    tty = sys.stdout.isatty()
    console = Console(highlight=False, soft_wrap=False, emoji=False)
    if not tty:
        console = Console(
            highlight=False,
            soft_wrap=False,
            emoji=False,
            no_color=True,
            width=max(min_width or 100, 100),
            color_system=None,
        )
    elif min_width and console.width < min_width:
        pass  # a narrow terminal: callers check `console.width` and lay out accordingly
    return console


@contextmanager
def progress(message: str) -> Iterator[None]:
    """A spinner on standard error while something runs (nothing when stderr is not a tty)."""
    err = Console(stderr=True)
    if not err.is_terminal:
        yield
        return
    with err.status(message):
        yield
