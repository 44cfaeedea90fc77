"""`tcpclose demo`: the lesson's two experiments, run for real on this machine, side by side."""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

from rich.text import Text

from tcpclose.argparsing import Parser
from tcpclose.claims import judge_claims, needed_scenarios
from tcpclose.lab.jsonout import run_json
from tcpclose.lab.options import add_run_options, speed_of
from tcpclose.lab.present import experiment_block
from tcpclose.lab.runner import run_many
from tcpclose.lab.scenarios import BY_NAME
from tcpclose.model.jsonshape import versioned
from tcpclose.outputs import check_writable
from tcpclose.render.columns import output_width, print_blocks, print_wrapped
from tcpclose.render.console import progress, stdout_console
from tcpclose.render.html import write_report
from tcpclose.status import ExitStatus

EXPERIMENTS = ("close", "shutdown")
#: lanes narrow enough for two diagrams side by side in 160 columns
SIDE_BY_SIDE_WIDTH = 30


def configure(parser: Parser) -> None:
    add_run_options(parser)
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("tcpclose-report.html"),
        metavar="FILE",
        help="where to write the HTML report (default ./tcpclose-report.html)",
    )
    parser.add_argument("--no-report", action="store_true", help="do not write the report")


def _intro(speed: float) -> Text:
    system = f"{platform.system()} {platform.release()}, loopback"
    delay = 5 * speed
    timing = (
        "the lesson's own timings"
        if speed == 1.0
        else f"the server answers each message after {delay:g} s "
        "(the lesson waits 5 s: add --realtime)"
    )
    return Text.assemble(
        ("tcpclose demo", "bold"),
        f": the lesson's two experiments, run for real on this machine ({system}).\n",
        f"Client types data1, data2, then close or shutdown; {timing}.\n",
    )


def execute(args: argparse.Namespace) -> int:
    speed = speed_of(args)
    if not args.no_report:
        check_writable(args.output)
    experiments = [BY_NAME[name] for name in EXPERIMENTS]
    # The report's claims table needs the other scenarios too: run them all at once, so the
    # demo lasts as long as its slowest scenario.
    others = (
        [] if args.no_report else [BY_NAME[n] for n in needed_scenarios() if n not in EXPERIMENTS]
    )
    with progress(
        f"running the close and shutdown experiments ({len(others)} more for the claims)"
    ):
        everything = run_many([*experiments, *others], speed=speed, jobs=8)
    runs = everything[: len(experiments)]
    report = None
    if not args.no_report:
        claims = judge_claims(everything)
        report = write_report(
            runs, args.output, claims=claims, title="tcpclose demo: close or shutdown?"
        )
    if args.json:
        doc = versioned(
            {"runs": [run_json(r) for r in runs], "report": str(report) if report else None}
        )
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return ExitStatus.OK
    console = stdout_console(min_width=2 * (SIDE_BY_SIDE_WIDTH + 60))
    width = output_width()
    print_wrapped(console, _intro(speed), width)
    columns = [
        experiment_block(name, run, SIDE_BY_SIDE_WIDTH, args.acks)
        for name, run in zip(EXPERIMENTS, runs, strict=True)
    ]
    print_blocks(console, columns, width)
    if report is not None:
        print_wrapped(console, Text(f"report: {report}"), width)
    return ExitStatus.OK
