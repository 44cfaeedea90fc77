"""argparse that raises instead of exiting, so every entry point decides how to report."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import NoReturn

from tcpclose.errors import UsageError


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are `UsageError`s (one line, exit status 2 in tcpclose).

    Its help states the range of every fractional-number option (durations, factors, shares),
    found from the option's own converter (`accepted_range`), so the range said is the range
    enforced, whichever command defines the option.
    """

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)

    def format_help(self) -> str:
        for action in self._actions:
            if action.help and action.help is not argparse.SUPPRESS and callable(action.type):
                shown = range_text(action.type)
                if shown and shown not in action.help:
                    action.help += f" [{shown}]"
        return super().format_help()


#: a fractional-number option must refuse this: past about 1e9 s, sleep() and timeouts overflow
HUGE = 1e12


def _accepts(convert: Callable[[str], object], value: float) -> bool:
    try:
        convert(repr(value))
    except (ValueError, TypeError, argparse.ArgumentTypeError):
        return False
    return True


def is_fractional(convert: Callable[[str], object]) -> bool:
    """Is this an option that takes a fractional number (a duration, a factor, a share)?"""
    try:
        return isinstance(convert("0.5"), float)
    except (ValueError, TypeError, argparse.ArgumentTypeError):
        return False


def accepted_range(convert: Callable[[str], object]) -> tuple[float, float, bool] | None:
    """(lowest, highest, lowest itself accepted) of a fractional option's converter, found by
    bisection (the accepted values are one interval); None when it is not fractional, or has
    no upper bound below HUGE."""
    if not is_fractional(convert) or _accepts(convert, HUGE):
        return None
    inside, outside = 0.5, HUGE
    while outside - inside > 1e-9 * outside:
        middle = (inside + outside) / 2
        inside, outside = (middle, outside) if _accepts(convert, middle) else (inside, middle)
    low, high = 0.0, float(f"{inside:.6g}")
    if not _accepts(convert, 0.0):
        lowest_in, below = 0.5, 0.0  # the lower bound: bisect from 0.5 down
        while lowest_in - below > 1e-9:
            middle = (lowest_in + below) / 2
            lowest_in, below = (middle, below) if _accepts(convert, middle) else (lowest_in, middle)
        low = float(f"{below:.6g}")
        return low, high, _accepts(convert, low)
    return low, high, True


def range_text(convert: Callable[[str], object]) -> str | None:
    """`0 to 86400`, `more than 0, at most 86400`: the help's words for the accepted range."""
    found = accepted_range(convert)
    if found is None:
        return None
    low, high, low_included = found
    if low_included:
        return f"{low:g} to {high:g}"
    return f"more than {low:g}, at most {high:g}"


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
