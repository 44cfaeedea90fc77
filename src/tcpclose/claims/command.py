"""`tcpclose claims`: each claim of the lesson checked on the running kernel.

Exit status 0 when every claim was checked, whatever the verdicts; 1 when some claim could not
be checked (its verdict is `unchecked`: for example, no packets could be captured).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from tcpclose.argparsing import Parser
from tcpclose.claims.check import check_claims
from tcpclose.claims.model import ClaimResult, Verdict
from tcpclose.claims.present import claims_json, claims_table, explanations, heading
from tcpclose.errors import UsageError
from tcpclose.lab.command import positive_speed
from tcpclose.lab.runner import DEFAULT_SPEED
from tcpclose.render.console import progress, stdout_console
from tcpclose.status import ExitStatus


def configure(parser: Parser) -> None:
    timing = parser.add_mutually_exclusive_group()
    timing.add_argument(
        "--speed",
        type=positive_speed,
        default=DEFAULT_SPEED,
        metavar="FACTOR",
        help=f"scale the lesson's timings by FACTOR (default {DEFAULT_SPEED})",
    )
    timing.add_argument("--realtime", action="store_true", help="the lesson's own timings")
    parser.add_argument("--json", action="store_true", help="print the claims as JSON")
    parser.add_argument(
        "--jobs", type=int, default=8, metavar="N", help="scenarios run at once (default 8)"
    )


def status_of(results: Sequence[ClaimResult]) -> ExitStatus:
    """OK when every claim was checked; FAILURE when one is `unchecked`."""
    if any(r.verdict is Verdict.UNCHECKED for r in results):
        return ExitStatus.FAILURE
    return ExitStatus.OK


def execute(args: argparse.Namespace) -> int:
    if args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    speed = 1.0 if args.realtime else args.speed
    with progress("running the scenarios the claims need"):
        results = check_claims(speed=speed, jobs=args.jobs)
    if args.json:
        json.dump(claims_json(results), sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        console = stdout_console(min_width=120)
        console.print(heading(results), end="")
        console.print(claims_table(results))
        console.print(explanations(results), end="")
    return status_of(results)
