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
from tcpclose.lab.options import add_jobs_option, add_timing_options, speed_of
from tcpclose.render.console import progress, stdout_console
from tcpclose.status import ExitStatus


def configure(parser: Parser) -> None:
    add_timing_options(parser)
    parser.add_argument("--json", action="store_true", help="print the claims as JSON")
    add_jobs_option(parser)


def status_of(results: Sequence[ClaimResult]) -> ExitStatus:
    """OK when every claim was checked; FAILURE when one is `unchecked`."""
    if any(r.verdict is Verdict.UNCHECKED for r in results):
        return ExitStatus.FAILURE
    return ExitStatus.OK


def execute(args: argparse.Namespace) -> int:
    speed = speed_of(args)
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
