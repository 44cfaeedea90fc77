"""`tcpclose lab [SCENARIO...]`: run scenarios for real, capture, draw and judge them."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from tcpclose.argparsing import Parser
from tcpclose.capture.pcapfile import write_pcap
from tcpclose.errors import from_oserror
from tcpclose.lab.jsonout import run_json
from tcpclose.lab.options import add_jobs_option, add_run_options, speed_of
from tcpclose.lab.present import run_text
from tcpclose.lab.runner import LabRun, run_many
from tcpclose.lab.scenarios import CATALOG, Scenario, select_scenarios
from tcpclose.model.jsonshape import versioned
from tcpclose.outputs import check_writable
from tcpclose.render.console import progress, stdout_console
from tcpclose.render.mermaid import render_mermaid
from tcpclose.status import ExitStatus


def configure(parser: Parser) -> None:
    parser.add_argument(
        "scenarios",
        nargs="*",
        metavar="SCENARIO",
        help="scenarios to run (default: all; see --list)",
    )
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    add_run_options(parser)
    parser.add_argument(
        "--mermaid",
        metavar="FILE",
        type=Path,
        help="write a Mermaid sequenceDiagram (several scenarios: FILE-NAME.ext)",
    )
    parser.add_argument(
        "--pcap",
        metavar="FILE",
        type=Path,
        help="write the captured packets as pcap (several: FILE-NAME.pcap)",
    )
    add_jobs_option(parser)


@dataclass(frozen=True)
class LabOptions:
    scenarios: tuple[Scenario, ...]
    speed: float
    json: bool
    show_acks: bool
    mermaid: Path | None
    pcap: Path | None
    jobs: int


def output_path(base: Path, scenario: Scenario, many: bool) -> Path:
    """`out.pcap` for one scenario; `out-close.pcap`, `out-shutdown.pcap` for several."""
    return base.with_name(f"{base.stem}-{scenario.name}{base.suffix}") if many else base


def write_outputs(runs: list[LabRun], mermaid: Path | None, pcap: Path | None) -> list[str]:
    written = []
    many = len(runs) > 1
    for run in runs:
        if mermaid is not None:
            path = output_path(mermaid, run.scenario, many)
            text = render_mermaid(run.timeline, title=f"tcpclose lab {run.scenario.name}")
            try:
                path.write_text(text, encoding="utf-8")
            except OSError as exc:
                raise from_oserror(exc, f"cannot write {path}", on_file=True) from exc
            written.append(f"mermaid: {path}")
        if pcap is not None:
            path = output_path(pcap, run.scenario, many)
            count = write_pcap(path, run.capture.frames)
            written.append(f"pcap: {path} ({count} packets)")
    return written


def print_list() -> None:
    width = max(len(s.name) for s in CATALOG)
    for s in CATALOG:
        sys.stdout.write(f"{s.name:<{width}}  {s.summary}\n")


def execute(args: argparse.Namespace) -> int:
    if args.list:
        print_list()
        return ExitStatus.OK
    for path in (args.mermaid, args.pcap):
        if path is not None:
            check_writable(path)
    options = LabOptions(
        scenarios=select_scenarios(args.scenarios),
        speed=speed_of(args),
        json=args.json,
        show_acks=args.acks,
        mermaid=args.mermaid,
        pcap=args.pcap,
        jobs=args.jobs,
    )
    return run_lab(options)


def run_lab(options: LabOptions) -> int:
    names = ", ".join(s.name for s in options.scenarios)
    with progress(f"running {len(options.scenarios)} scenarios: {names}"):
        runs = run_many(options.scenarios, speed=options.speed, jobs=options.jobs)
    written = write_outputs(runs, options.mermaid, options.pcap)
    if options.json:
        json.dump(versioned({"runs": [run_json(r) for r in runs]}), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        console = stdout_console()
        for run in runs:
            console.print(run_text(run, show_acks=options.show_acks), end="")
            console.print()
        for line in written:
            console.print(line)
    return ExitStatus.OK
