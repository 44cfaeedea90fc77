"""`tcpclose report [SCENARIO...] -o FILE`: run scenarios and write one self-contained HTML page.

Prints the path written. The claims table (on by default) runs the scenarios the claims need
besides the ones asked for; `--no-claims` leaves it out.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tcpclose.argparsing import Parser
from tcpclose.claims.check import judge_claims, needed_scenarios
from tcpclose.lab.jsonout import run_json
from tcpclose.lab.options import add_jobs_option, add_timing_options, speed_of
from tcpclose.lab.runner import run_many
from tcpclose.lab.scenarios import BY_NAME, select_scenarios
from tcpclose.model.jsonshape import versioned
from tcpclose.outputs import check_writable
from tcpclose.render.console import progress
from tcpclose.render.html import write_report
from tcpclose.status import ExitStatus

DEFAULT_OUTPUT = Path("tcpclose-report.html")


def configure(parser: Parser) -> None:
    parser.add_argument(
        "scenarios", nargs="*", metavar="SCENARIO", help="scenarios to draw (default: all)"
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        metavar="FILE",
        help=f"where to write the report (default ./{DEFAULT_OUTPUT})",
    )
    parser.add_argument(
        "--claims",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="include the claims table (runs the scenarios it needs; default: yes)",
    )
    add_timing_options(parser)
    add_jobs_option(parser)
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the report's path, the runs and the claims as JSON",
    )


def execute(args: argparse.Namespace) -> int:
    check_writable(args.output)
    shown = select_scenarios(args.scenarios)
    speed = speed_of(args)
    extra = [n for n in needed_scenarios() if n not in {s.name for s in shown}]
    to_run = [*shown, *(BY_NAME[n] for n in extra)] if args.claims else list(shown)
    with progress(f"running {len(to_run)} scenarios"):
        runs = run_many(to_run, speed=speed, jobs=args.jobs)
    claims = judge_claims(runs) if args.claims else None
    path = write_report(runs[: len(shown)], args.output, claims=claims)
    if args.json:
        doc = versioned(
            {
                "report": str(path),
                "runs": [run_json(run) for run in runs[: len(shown)]],
                "claims": None if claims is None else [claim.to_json() for claim in claims],
            }
        )
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(f"report: {path}\n")
    return ExitStatus.OK
