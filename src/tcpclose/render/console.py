"""The terminal writer: colour only on a tty, progress on standard error only on a tty."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console


def stdout_console(min_width: int | None = None) -> Console:
    """A Console for results. On a tty: colour, wrapped to the terminal (callers check
    `console.width` to lay out). Not a tty: no colour, lines never wrapped (one fact, one line,
    for grep), and tables laid out for `min_width` columns (rich would assume 80).

    Never markup: what we print holds file names and peers' bytes, which may contain `[`."""
    if sys.stdout.isatty():
        return Console(highlight=False, emoji=False, markup=False)
    return Console(
        highlight=False,
        emoji=False,
        markup=False,
        no_color=True,
        color_system=None,
        soft_wrap=True,
        width=max(min_width or 120, 120),
    )


@contextmanager
def progress(message: str) -> Iterator[None]:
    """A spinner on standard error while something runs (nothing when stderr is not a tty)."""
    err = Console(stderr=True)
    if not err.is_terminal:
        yield
        return
    with err.status(message):
        yield
