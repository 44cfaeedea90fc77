"""Every fractional-number option of every command (durations, speed factors, shares) has a
range, its help says it, and a value outside it is one line on stderr and the documented
status: 2 for `tcpclose ...`, 1 for graceserver and graceclient (docs/lesson.md), never an
OverflowError from sleep() or settimeout().

The options are found by walking each command's argparse actions, so a new option is covered
without touching this file.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tcpclose.argparsing import HUGE, Parser, accepted_range, is_fractional, range_text
from tcpclose.cli import COMMANDS
from tcpclose.cli import main as tcpclose_main
from tcpclose.lesson import client, server

SRC = str(Path(__file__).resolve().parents[1] / "src")

#: (program, how to build its parser, its main, its status for bad arguments)
Program = tuple[str, Callable[[], argparse.ArgumentParser], Callable[[list[str]], int], int]


def _command_parser(name: str) -> Callable[[], argparse.ArgumentParser]:
    def build() -> argparse.ArgumentParser:
        module = importlib.import_module(COMMANDS[name][0])
        parser = Parser(prog=f"tcpclose {name}")
        (getattr(module, f"configure_{name}", None) or module.configure)(parser)
        return parser

    return build


def _command_main(name: str) -> Callable[[list[str]], int]:
    return lambda argv: tcpclose_main([name, *argv])


PROGRAMS: list[Program] = [
    *((f"tcpclose {name}", _command_parser(name), _command_main(name), 2) for name in COMMANDS),
    ("graceserver", server.build_parser, server.main, 1),
    ("graceclient", client.build_parser, client.main, 1),
]


def fractional_options() -> list[tuple[Program, str, argparse.Action]]:
    found = []
    for program in PROGRAMS:
        for action in program[1]()._actions:
            if action.option_strings and action.type and is_fractional(action.type):
                found.append((program, action.option_strings[-1], action))
    return found


OPTIONS = fractional_options()
IDS = [f"{program[0]} {option}" for program, option, _ in OPTIONS]


def test_the_walk_finds_the_known_duration_options() -> None:
    """Not vacuous: the options named in the hardening issue are among those found."""
    found = set(IDS)
    for known in [
        "tcpclose probe --timeout",
        "tcpclose probe --connect-timeout",
        "tcpclose probe --backend-delay",
        "tcpclose client --connect-timeout",
        "tcpclose client --close-wait",
        "tcpclose server --delay",
        "graceserver --delay",
        "graceclient --close-wait",
        "tcpclose serve --drain-timeout",
        "tcpclose drain --timeout",
        "tcpclose trace --duration",
        "tcpclose lab --speed",
    ]:
        assert known in found, known


def _bad_values(action: argparse.Action) -> list[str]:
    found = accepted_range(action.type)  # type: ignore[arg-type]
    assert found is not None, "no upper bound below 1e12: sleep() or timeouts would overflow"
    low, high, _ = found
    above = high * (1 + 1e-6) + 1e-6
    return ["1e10", "1e12", "1e300", "nan", "inf", "-inf", "-1", repr(above)] + (
        [repr(low / 2)] if low > 0 else []
    )


@pytest.mark.parametrize(("program", "option", "action"), OPTIONS, ids=IDS)
def test_out_of_range_is_one_line_and_the_documented_status(
    capsys: pytest.CaptureFixture[str],
    program: Program,
    option: str,
    action: argparse.Action,
) -> None:
    _name, _build, run, status = program
    assert action.type is not None
    for bad in _bad_values(action):
        capsys.readouterr()
        assert run([f"{option}={bad}"]) == status, (option, bad)
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and option in err[0], (bad, err)
    assert math.isfinite(action.type("0.5"))


@pytest.mark.parametrize(("program", "option", "action"), OPTIONS, ids=IDS)
def test_the_range_is_in_the_help(program: Program, option: str, action: argparse.Action) -> None:
    parser = program[1]()
    shown = range_text(next(a for a in parser._actions if option in a.option_strings).type)  # type: ignore[arg-type]
    assert shown is not None
    text = " ".join(parser.format_help().split())  # help is wrapped: compare words
    assert shown in text, (option, shown)


def test_accepted_range_finds_the_bounds() -> None:
    from tcpclose.argparsing import MAX_SECONDS, non_negative_seconds

    assert accepted_range(non_negative_seconds) == (0.0, MAX_SECONDS, True)
    assert range_text(non_negative_seconds) == "0 to 86400"
    assert accepted_range(float) is None  # unbounded: not a sane option type
    assert accepted_range(int) is None  # not fractional
    assert HUGE > MAX_SECONDS


@pytest.mark.parametrize(
    ("argv", "status"),
    [
        (["tcpclose", "probe", "127.0.0.1:9", "--timeout", "1e300"], 2),
        (["tcpclose", "probe", "127.0.0.1:9", "--connect-timeout", "nan"], 2),
        (["tcpclose", "client", "127.0.0.1", "--connect-timeout", "1e10"], 2),
        (["tcpclose", "client", "127.0.0.1", "--close-wait", "1e10"], 2),
        (["tcpclose", "server", "--delay", "1e10"], 2),
        (["graceserver", "--delay", "inf"], 1),
        (["graceclient", "127.0.0.1", "--close-wait", "-1"], 1),
    ],
)
def test_as_a_subprocess(argv: list[str], status: int) -> None:
    module = {"tcpclose": "tcpclose", "graceserver": "tcpclose.lesson.server"}.get(
        argv[0], "tcpclose.lesson.client"
    )
    done = subprocess.run(
        [sys.executable, "-m", module, *argv[1:]],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": SRC},
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == status
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
