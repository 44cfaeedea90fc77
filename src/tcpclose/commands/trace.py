"""`tcpclose trace [options] -- COMMAND [ARGS...]` and `tcpclose trace -p PID [-p PID]`:
any program's socket calls and its packets, per TCP connection, on the lab's diagram, judged
by the lab's verdicts.

Command mode passes the command's standard input, output and error through and exits with its
status (128 + N when signal N ended it). Attach mode exits 0 once it has detached. Errors of
tcpclose itself: 1 strace missing or failing, 2 usage (no command, no such PID, --connection
out of range), 4 permission (ptrace refused, not executable), 5 command not found.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from tcpclose.argparsing import Parser, checked, non_negative_seconds
from tcpclose.errors import TcpcloseError, UsageError, from_oserror
from tcpclose.model.jsonshape import versioned
from tcpclose.outputs import check_writable
from tcpclose.status import ExitStatus
from tcpclose.trace.session import TraceResult, preload, trace_command, trace_pids

if TYPE_CHECKING:
    from tcpclose.lab.runner import LabRun

# The lab, the renderers and rich are imported where they are used, after the trace: they
# load in a thread while the program runs (trace.session.preload), so it starts at once.


def configure(parser: Parser) -> None:
    parser.usage = (
        "tcpclose trace [options] -- COMMAND [ARGS...]\n"
        "       tcpclose trace [options] -p PID [-p PID ...] [--duration S]"
    )
    parser.add_argument(
        "command", nargs="*", metavar="COMMAND", help="the program to run and trace, after --"
    )
    parser.add_argument(
        "-p",
        "--pid",
        dest="pids",
        action="append",
        type=int,
        default=[],
        metavar="PID",
        help="attach to a running process (twice: both ends of a conversation)",
    )
    parser.add_argument(
        "--duration",
        type=checked(non_negative_seconds),
        metavar="S",
        help="attach mode: detach after S seconds (default: when the processes end or Ctrl-C)",
    )
    parser.add_argument(
        "--connection", type=int, metavar="N", help="draw connection N of a trace of several"
    )
    parser.add_argument("--json", action="store_true", help="print the runs as the lab's JSON")
    parser.add_argument("--acks", action="store_true", help="show pure ACKs in diagrams")
    parser.add_argument("--pcap", type=Path, metavar="FILE", help="write the packets as pcap")
    parser.add_argument(
        "--mermaid",
        type=Path,
        metavar="FILE",
        help="write a Mermaid sequenceDiagram (several connections: FILE-N.ext)",
    )
    parser.add_argument("--report", type=Path, metavar="FILE", help="write the HTML report")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="FILE",
        help="write the diagram (or JSON) to FILE instead of standard output, which the "
        "command keeps for itself",
    )
    parser.add_argument(
        "--no-capture", action="store_true", help="socket calls only, no packet capture"
    )


def _check(args: argparse.Namespace) -> None:
    if args.pids and args.command:
        raise UsageError("give a COMMAND or -p PID, not both")
    if not args.pids and not args.command:
        raise UsageError("no command to trace (tcpclose trace [options] -- COMMAND [ARGS...])")
    if args.duration is not None and not args.pids:
        raise UsageError("--duration applies to -p PID (a command is traced until it ends)")
    if args.connection is not None and args.connection < 1:
        raise UsageError("--connection counts from 1")
    for path in (args.pcap, args.mermaid, args.report, args.output):
        if path is not None:
            check_writable(path)


def _numbered(base: Path, number: int, many: bool) -> Path:
    return base.with_name(f"{base.stem}-{number}{base.suffix}") if many else base


def summary_line(number: int, run: LabRun) -> str:
    v = run.verdict
    how = v.termination or "no packets"
    return (
        f"#{number}  {run.scenario.summary}  {how}  client: {run.client.ending}, "
        f"server: {run.server.ending}: {v.conclusion}"
    )


def _heading(result: TraceResult) -> str:
    what = f"tcpclose trace: {result.target}"
    if result.mode == "command":
        status = result.exit_status
        what += f" (exit status {status})" if status is not None else " (did not end)"
    else:
        what += " (detached)" if result.interrupted else ""
    n = len(result.runs)
    capture = result.capture
    packets = sum(len(r.capture.packets) for r in result.runs)
    if capture.method == "none":
        where = capture.note or "none"
    elif capture.note and capture.note.startswith(capture.method):
        where = f"{capture.note}; {packets} packets"  # `tcpdump on every interface (...)`
    else:
        where = f"{capture.method}, {packets} packets" + (
            f"; {capture.note}" if capture.note else ""
        )
    return f"{what}\n{n} TCP connection{'s' if n != 1 else ''}; capture: {where}\n"


def _traced_line(result: TraceResult, index: int) -> str:
    roles = result.traced[index]
    if not roles:
        return "traced: neither side's calls (packets only)\n"
    sides = " and ".join(roles)
    return f"traced: {sides} (calls{' and packets' if result.capture.available else ''})\n"


def _write_files(result: TraceResult, runs: list[tuple[int, LabRun]], args: Any) -> list[str]:
    from tcpclose.capture.pcapfile import write_pcap
    from tcpclose.render.html import write_report
    from tcpclose.render.mermaid import render_mermaid

    written = []
    many = len(runs) > 1
    if args.mermaid is not None:
        for number, run in runs:
            path = _numbered(args.mermaid, number, many)
            text = render_mermaid(run.timeline, title=f"tcpclose trace #{number}")
            try:
                path.write_text(text, encoding="utf-8")
            except OSError as exc:
                raise from_oserror(exc, f"cannot write {path}") from exc
            written.append(f"mermaid: {path}")
    if args.pcap is not None:
        frames = sorted((f for _n, run in runs for f in run.capture.frames), key=lambda f: f.t_ns)
        count = write_pcap(args.pcap, frames)
        written.append(f"pcap: {args.pcap} ({count} packets)")
    if args.report is not None:
        path = write_report(
            [run for _n, run in runs], args.report, title=f"tcpclose trace: {result.target}"
        )
        written.append(f"report: {path}")
    return written


def result_json(result: TraceResult, runs: list[tuple[int, LabRun]]) -> dict[str, Any]:
    """The lab's JSON (`runs`, one per connection) and what the trace itself knows."""
    from tcpclose.lab.jsonout import run_json

    return {
        "trace": {
            "mode": result.mode,
            "target": result.target,
            "exit_status": result.exit_status,
            "interrupted": result.interrupted,
            "connections": len(result.runs),
            "capture": {
                "method": result.capture.method,
                "note": result.capture.note,
                "dropped": result.capture.dropped,
            },
            "processes": [
                {
                    "pid": p.pid,
                    "parent": p.parent,
                    "argv": list(p.argv),
                    "exit_status": p.exit_status,
                    "signal": p.signal,
                    "ended": p.ended,
                    "started_ns": p.started_ns,
                    "ended_ns": p.ended_ns,
                }
                for p in result.processes
            ],
        },
        "runs": [
            {"connection": number, "traced": list(result.traced[number - 1]), **run_json(run)}
            for number, run in runs
        ],
    }


def _print(result: TraceResult, args: Any, out: IO[str] | None) -> None:
    from rich.console import Console

    from tcpclose.lab.present import run_text
    from tcpclose.render.console import stdout_console

    selected = list(enumerate(result.runs, start=1))
    if args.connection is not None:
        if args.connection > len(result.runs):
            raise UsageError(
                f"--connection {args.connection}: the trace has {len(result.runs)} connection"
                + ("s" if len(result.runs) != 1 else "")
            )
        selected = [(args.connection, result.runs[args.connection - 1])]
    written = _write_files(result, selected, args)
    if args.json:
        text = json.dumps(versioned(result_json(result, selected)), indent=2) + "\n"
        (out or sys.stdout).write(text)
        (out or sys.stdout).flush()
        return
    console = (
        stdout_console()
        if out is None
        else Console(
            file=out, highlight=False, emoji=False, markup=False, no_color=True, soft_wrap=True
        )
    )
    console.print(_heading(result), end="")
    draw = len(selected) == 1
    for number, run in selected:
        if draw:
            console.print()
            console.print(run_text(run, show_acks=args.acks), end="")
            console.print(_traced_line(result, number - 1), end="")
        else:
            console.print(summary_line(number, run))
    if not draw and selected:
        console.print("(a diagram: --connection N)")
    for line in written:
        console.print(line)


def _report(result: TraceResult, args: argparse.Namespace) -> None:
    """Print (or write to --output) what the trace found; a full disk is one line, not a
    traceback (a reader that went away is the CLI's BrokenPipeError: not an error)."""
    where = str(args.output) if args.output is not None else "standard output"
    try:
        if args.output is None:
            _print(result, args, None)
            sys.stdout.flush()
            return
        with open(args.output, "w", encoding="utf-8") as out:
            _print(result, args, out)
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise from_oserror(exc, f"cannot write {where}") from exc


def execute(args: argparse.Namespace) -> int:
    _check(args)
    loading = preload()
    if args.pids:

        def ready() -> None:
            pids = ", ".join(str(p) for p in args.pids)
            sys.stderr.write(f"tcpclose: tracing PID {pids} (Ctrl-C detaches)\n")
            sys.stderr.flush()

        result = trace_pids(
            args.pids, duration=args.duration, capture=not args.no_capture, on_attached=ready
        )
    else:
        result = trace_command(args.command, capture=not args.no_capture)
        if not result.processes:
            raise TcpcloseError("strace could not run the command (see its message above)")
    loading.join()
    _report(result, args)
    if result.mode == "command":
        return result.exit_status if result.exit_status is not None else ExitStatus.FAILURE
    return ExitStatus.OK
