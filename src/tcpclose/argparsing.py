"""argparse that raises instead of exiting, so every entry point decides how to report."""

from __future__ import annotations

import argparse
import os
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


#: the longest duration any option accepts: one day. Longer would be a typo, and past about
#: 1e9 s sleep(), settimeout() and thread joins raise OverflowError.
MAX_SECONDS = 86400.0


def non_negative_seconds(text: str) -> float:
    """argparse type: a duration in seconds from 0 to MAX_SECONDS (fractions allowed); every
    duration option of tcpclose and of the lesson's programs uses it."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number of seconds") from None
    if not value >= 0:
        raise ValueError(f"{text!r} is not a duration of 0 seconds or more")
    if value > MAX_SECONDS:
        raise ValueError(f"{text!r} is out of range: at most {MAX_SECONDS:g} seconds (one day)")
    return value


def wire_bytes(text: str) -> bytes:
    """argparse type for bytes given on the command line (`--send TEXT`): exactly the bytes the
    user typed, UTF-8 or not (Python decodes argv with surrogateescape; this undoes it)."""
    return os.fsencode(text)
