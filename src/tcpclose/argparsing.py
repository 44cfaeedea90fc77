"""argparse that raises instead of exiting, so every entry point decides how to report."""

from __future__ import annotations

import argparse
from typing import NoReturn

from tcpclose.errors import UsageError


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are `UsageError`s (one line, exit status 2 in tcpclose)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def checked(convert):  # type: ignore[no-untyped-def]
    """Wrap a converter so that its ValueError message reaches the user as is."""

    def wrapper(text: str):  # type: ignore[no-untyped-def]
        try:
            return convert(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    wrapper.__name__ = getattr(convert, "__name__", "value")
    return wrapper


def non_negative_seconds(text: str) -> float:
    """argparse type: a duration in seconds, 0 or more (fractions allowed)."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number of seconds") from None
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"{text!r} is not a duration of 0 seconds or more")
    return value
