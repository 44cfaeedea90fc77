"""Command-line options of every command that runs lab scenarios (lab, demo, report, claims)."""

from __future__ import annotations

import argparse

from tcpclose.lab.runner import DEFAULT_SPEED

#: Below 0.05 the lesson's 5 s answer delay is under 250 ms: too little to type `close`
#: reliably before the first answer on a busy machine.
MIN_SPEED, MAX_SPEED = 0.05, 10.0
MAX_JOBS = 64


def positive_speed(text: str) -> float:
    """argparse type for --speed: a time scale from MIN_SPEED to MAX_SPEED."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not MIN_SPEED <= value <= MAX_SPEED:
        raise argparse.ArgumentTypeError(f"speed must be between {MIN_SPEED} and {MAX_SPEED:g}")
    return value


def job_count(text: str) -> int:
    """argparse type for --jobs: how many scenarios run at once."""
    try:
        value = int(text, 10)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_JOBS:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {MAX_JOBS}")
    return value


def add_timing_options(parser: argparse.ArgumentParser) -> None:
    """--speed FACTOR | --realtime."""
    timing = parser.add_mutually_exclusive_group()
    timing.add_argument(
        "--speed",
        type=positive_speed,
        default=DEFAULT_SPEED,
        metavar="FACTOR",
        help="scale the lesson's timings (5 s answer delay, 6 s wait after close) by FACTOR "
        f"(default {DEFAULT_SPEED})",
    )
    timing.add_argument(
        "--realtime", action="store_true", help="the lesson's own timings (same as --speed 1)"
    )


def add_jobs_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--jobs", type=job_count, default=8, metavar="N", help="scenarios run at once (default 8)"
    )


def speed_of(args: argparse.Namespace) -> float:
    return 1.0 if args.realtime else float(args.speed)


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by `lab` and `demo`: timing, --json, --acks."""
    add_timing_options(parser)
    parser.add_argument("--json", action="store_true", help="print the runs as JSON")
    parser.add_argument("--acks", action="store_true", help="show pure ACKs in diagrams")
