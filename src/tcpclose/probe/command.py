"""`tcpclose probe HOST:PORT`: options at the boundary, capture, runs, output, exit status."""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from tcpclose.argparsing import Parser, checked, non_negative_seconds
from tcpclose.capture import start_capture
from tcpclose.capture.frames import Frame
from tcpclose.capture.pcapfile import write_pcap
from tcpclose.classify import classify_packets
from tcpclose.errors import NetworkError, UsageError, from_oserror
from tcpclose.model.timeline import Timeline
from tcpclose.outputs import check_writable
from tcpclose.probe import presets
from tcpclose.probe.facts import Mode, connection_packets, packet_facts
from tcpclose.probe.presets import Request
from tcpclose.probe.report import ProbeReport, RunResult, render_summary
from tcpclose.probe.sockets import probe_once
from tcpclose.probe.target import Address, Target, parse_target, resolve
from tcpclose.probe.verdict import EXITS, MEANING, MODE_EXITS, ProbeExit, exit_class, judge
from tcpclose.render.console import stdout_console
from tcpclose.render.text import render_diagram, rich_diagram

MAX_REPEAT = 1000
DEFAULT_TIMEOUT = 5.0


@dataclass(frozen=True)
class ProbeOptions:
    """The command line, typed."""

    target: Target
    mode: Mode
    request: Request
    timeout: float
    connect_timeout: float
    repeat: int
    json: bool
    pcap: Path | None
    capture: bool


def _epilog() -> str:
    verdicts = "\n".join(f"  {v:<22} {MEANING[v]}" for v in EXITS)
    exits = "\n".join(f"  {int(e):>3} {e.name.lower()}" for e in ProbeExit)
    overrides = "; ".join(
        f"{mode}: " + ", ".join(f"{v} -> {int(e)}" for v, e in table.items())
        for mode, table in MODE_EXITS.items()
    )
    classes = ", ".join(f"{v} {int(e)}" for v, e in EXITS.items())
    return (
        f"verdicts:\n{verdicts}\n\nexit statuses per verdict class:\n{exits}\n"
        f"  by verdict: {classes}\n  mode overrides: {overrides}\n"
        "  errors: 2 usage, 3 network (unresolvable, refused, unreachable, connect timeout), "
        "5 input file, 130 interrupted\n\n"
        "Packets are captured on loopback when this process may (root or CAP_NET_RAW); "
        "otherwise the socket-level facts alone are shown. See docs/probe.md."
    )


def _repeat(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= MAX_REPEAT:
        raise ValueError(f"{value} is out of range 1-{MAX_REPEAT}")
    return value


def _positive_seconds(text: str) -> float:
    value = non_negative_seconds(text)
    if value == 0:
        raise ValueError("a timeout must be more than 0 seconds")
    return value


def configure(parser: Parser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _epilog()
    parser.add_argument("target", metavar="HOST:PORT", help="e.g. 127.0.0.1:8080, [::1]:80")
    parser.add_argument(
        "--mode",
        choices=[str(m) for m in Mode],
        default=str(Mode.SHUTDOWN),
        help="how we end our side after the request: shutdown (default: half-close with "
        "SHUT_WR), close, abort (RST), partial (incomplete request, then half-close), "
        "none (keep open, watch who closes first)",
    )
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--send", metavar="TEXT", help="send TEXT; escapes \\r \\n \\t \\xHH")
    what.add_argument("--send-file", metavar="FILE", help="send the bytes of FILE")
    what.add_argument(
        "--preset",
        choices=list(presets.PRESETS),
        help="a ready request: "
        + "; ".join(f"{k}: {v}" for k, v in presets.PRESETS.items())
        + " (default http)",
    )
    parser.add_argument(
        "--timeout",
        type=checked(_positive_seconds),
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"how long to wait for the server's answer and close (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--connect-timeout",
        type=checked(_positive_seconds),
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"bound on name resolution and on connect() (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--repeat",
        type=checked(_repeat),
        default=1,
        metavar="N",
        help=f"run N times (1-{MAX_REPEAT}) and report whether the verdict is stable",
    )
    parser.add_argument("--json", action="store_true", help="one JSON document with all runs")
    parser.add_argument("--pcap", metavar="FILE", help="save the captured packets as pcap")
    parser.add_argument(
        "--no-capture",
        dest="capture",
        action="store_false",
        help="do not capture packets: socket-level facts only",
    )


def options_from(args: argparse.Namespace) -> ProbeOptions:
    target = parse_target(args.target)
    if args.send is not None:
        request = presets.custom(presets.unescape(args.send))
    elif args.send_file is not None:
        try:
            data = Path(args.send_file).read_bytes()
        except OSError as exc:
            raise from_oserror(exc, f"cannot read {args.send_file}") from exc
        request = presets.custom(data)
    else:
        request = presets.preset(args.preset or "http", target.host, target.port)
    if args.pcap is not None and not args.capture:
        raise UsageError("--pcap needs packet capture: drop --no-capture")
    if args.pcap is not None:
        check_writable(Path(args.pcap))
    return ProbeOptions(
        target=target,
        mode=Mode(args.mode),
        request=request,
        timeout=args.timeout,
        connect_timeout=args.connect_timeout,
        repeat=args.repeat,
        json=args.json,
        pcap=Path(args.pcap) if args.pcap else None,
        capture=args.capture,
    )


def _is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def run_one(
    index: int, address: Address, options: ProbeOptions, frames_out: list[Frame]
) -> RunResult:
    """One run, captured when allowed: the socket facts, then the packets, then the verdict."""
    session = None
    capture_note: str | None = None
    if not options.capture:
        capture_note = "no packet capture (--no-capture): socket-level facts only"
    elif not _is_loopback(address.ip):
        capture_note = "no packet capture (it watches loopback only): socket-level facts only"
    else:
        session = start_capture([address.port])
    payload = options.request.payload(options.mode is Mode.PARTIAL)
    try:
        sock_facts, events = probe_once(
            address,
            payload,
            options.mode,
            timeout=options.timeout,
            connect_timeout=options.connect_timeout,
            shown=str(options.target),
        )
    finally:
        captured = session.stop() if session is not None else None
    method = "none"
    pk = termination = timeline = None
    if captured is not None:
        method, capture_note = captured.method, captured.note
        if captured.available:
            frames_out.extend(captured.frames)
            mine = connection_packets(captured.packets, sock_facts.local, sock_facts.peer)
            pk = packet_facts(mine, sock_facts.local, sock_facts.peer)
            termination = str(classify_packets(mine).termination) if mine else None
            timeline = Timeline.build(mine, events, server=sock_facts.peer, client=sock_facts.local)
    verdict = judge(sock_facts, pk)
    return RunResult(
        index=index,
        verdict=verdict,
        exit=exit_class(options.mode, verdict),
        socket=sock_facts,
        packets=pk,
        termination=termination,
        capture_method=method,
        capture_note=capture_note,
        timeline=timeline,
    )


def run_probe(options: ProbeOptions) -> tuple[ProbeReport, list[Frame]]:
    """Resolve once, then run `repeat` times."""
    address = resolve(options.target, options.connect_timeout)
    frames: list[Frame] = []
    runs: list[RunResult] = []
    stopped = None
    for index in range(1, options.repeat + 1):
        try:
            runs.append(run_one(index, address, options, frames))
        except NetworkError as exc:
            if not runs:
                raise  # the target never answered: a network error, not a verdict
            stopped = f"run {index}: {exc.message}"
            break
    report = ProbeReport(
        target=str(options.target),
        address=(address.ip, address.port),
        mode=options.mode,
        request=options.request.name,
        request_bytes=len(options.request.payload(options.mode is Mode.PARTIAL)),
        timeout=options.timeout,
        runs=tuple(runs),
        stopped=stopped,
    )
    return report, frames


_STYLE = {ProbeExit.OK: "bold green", ProbeExit.UNSTABLE: "bold yellow"}


def _write_text(report: ProbeReport) -> None:
    summary = render_summary(report)
    first = report.runs[0]
    timeline = first.timeline if first.timeline and first.timeline.entries else None
    note = first.capture_note
    if sys.stdout.isatty():
        from rich.text import Text

        console = stdout_console()
        style = _STYLE.get(report.exit, "bold red")
        for line in summary.splitlines():
            text = Text(line)
            if line.startswith(("verdict", "exit", "repeat")):
                text.stylize(style, 10)
            console.print(text)
        if timeline is not None:
            console.print()
            console.print(rich_diagram(timeline), end="")
        if note:
            console.print(Text(note, style="dim"))
        return
    out = summary + "\n"
    if timeline is not None:
        out += "\n" + render_diagram(timeline)
    if note:
        out += note + "\n"
    sys.stdout.write(out)
    sys.stdout.flush()


def execute(args: argparse.Namespace) -> int:
    options = options_from(args)
    report, frames = run_probe(options)
    if options.pcap is not None:
        write_pcap(options.pcap, frames)
    if options.json:
        sys.stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
        sys.stdout.flush()
    else:
        _write_text(report)
    return int(report.exit)
