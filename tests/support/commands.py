"""How tests start tcpclose and the lesson's programs as real processes."""

from __future__ import annotations

import sys
from pathlib import Path

#: the lesson's programs, by console-script name: their modules (for `python -P -m`)
LESSON_MODULES = {"graceserver": "tcpclose.lesson.server", "graceclient": "tcpclose.lesson.client"}


def tcpclose_argv(*args: str) -> list[str]:
    """The installed console script when there is one (as users run it), else `python -P -m`
    (-P: nothing imported from the working directory)."""
    script = Path(sys.executable).parent / "tcpclose"
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-P", "-m", "tcpclose", *args]


def grace_argv(name: str, *args: str) -> list[str]:
    """`graceserver` or `graceclient`, the same way."""
    script = Path(sys.executable).parent / name
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-P", "-m", LESSON_MODULES[name], *args]
