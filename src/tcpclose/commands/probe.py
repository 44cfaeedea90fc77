"""`tcpclose probe HOST:PORT`: options at the boundary, capture, runs, output, exit status."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import ipaddress
import json
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from tcpclose.argparsing import Parser, checked, non_negative_seconds
from tcpclose.errors import InputError, NetworkError, UsageError, from_oserror
from tcpclose.model.jsonshape import versioned
from tcpclose.model.packet import Packet
from tcpclose.model.timeline import Timeline
from tcpclose.outputs import check_writable
from tcpclose.probe import presets
from tcpclose.probe.answer import kind_for, printable
from tcpclose.probe.backend import HTTP_ANSWER, Backend, BackendKind
from tcpclose.probe.bench import BackendLeg, backend_leg, where_died
from tcpclose.probe.capturing import PcapStream, WindowedCapture
from tcpclose.probe.diagram import rich_two_column_diagram, three_column_diagram, two_column_diagram
from tcpclose.probe.facts import ControlResult, Mode, connection_packets
from tcpclose.probe.presets import Request
from tcpclose.probe.report import ProbeReport, RunResult, render_summary
from tcpclose.probe.sockets import control_once, probe_once
from tcpclose.probe.target import Address, Target, parse_target, resolve
from tcpclose.probe.verdict import (
    EXITS,
    MEANING,
    MODE_EXITS,
    ProbeExit,
    Verdict,
    change_reason,
    exit_class,
    judge,
)
from tcpclose.probe.window import Gap, window_facts
from tcpclose.render.console import stdout_console

MAX_REPEAT = 1000
DEFAULT_TIMEOUT = 5.0
DEFAULT_BACKEND_DELAY = 0.5
MAX_BACKEND_DELAY = 60.0
#: --send-file reads at most this many bytes (a documented limit, not a memory accident)
MAX_SEND_BYTES = 64 * 1024 * 1024
#: how long a run waits, after its client side ended, for the backend leg to finish
BACKEND_SETTLE = 2.0
#: per-run segments kept for --json at each end of a connection
SEGMENTS_KEPT = 20
#: diagrams kept: one per distinct verdict, at most this many
MAX_PICTURES = 4

Endpoint = tuple[str, int]


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
    control: bool = True
    backend: Target | None = None
    backend_kind: BackendKind = BackendKind.HTTP
    backend_delay: float = DEFAULT_BACKEND_DELAY


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
        "5 input file (--send-file: regular files up to 64 MiB), 6 --backend address in use, "
        "130 interrupted\n\n"
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


def _backend_delay(text: str) -> float:
    value = non_negative_seconds(text)
    if value > MAX_BACKEND_DELAY:
        raise ValueError(f"{value:g} is out of range 0-{MAX_BACKEND_DELAY:g} seconds")
    return value


def read_send_file(name: str) -> bytes:
    """The bytes of a regular file, at most MAX_SEND_BYTES. A FIFO, a device or a socket could
    block forever (no writer) or never end (/dev/zero): refused, before open() can block."""
    path = Path(name)
    try:
        info = path.stat()
    except OSError as exc:
        raise from_oserror(exc, f"cannot read {name}") from exc
    if not stat.S_ISREG(info.st_mode):
        raise InputError(
            f"--send-file {name}: not a regular file (a FIFO or a device may never end); "
            "copy what to send into a file"
        )
    if info.st_size > MAX_SEND_BYTES:
        raise InputError(
            f"--send-file {name}: {info.st_size} bytes, more than the limit of "
            f"{MAX_SEND_BYTES} ({MAX_SEND_BYTES // (1 << 20)} MiB)"
        )
    try:
        with path.open("rb") as source:
            data = source.read(MAX_SEND_BYTES + 1)
    except OSError as exc:
        raise from_oserror(exc, f"cannot read {name}") from exc
    if len(data) > MAX_SEND_BYTES:
        raise InputError(f"--send-file {name}: grew beyond the limit of {MAX_SEND_BYTES} bytes")
    return data


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
    parser.add_argument(
        "--no-control",
        dest="control",
        action="store_false",
        help="skip the control request (the same request without half-close, to compare "
        "answers; made by default in shutdown mode)",
    )
    parser.add_argument(
        "--backend",
        metavar="HOST:PORT",
        help="proxy bench: listen on this loopback address as the backend the proxy at "
        "HOST:PORT forwards to, capture both legs, draw client | proxy | backend",
    )
    parser.add_argument(
        "--backend-kind",
        choices=[str(k) for k in BackendKind],
        default=str(BackendKind.HTTP),
        help="what the bench's backend answers: http (200 OK, default) or echo",
    )
    parser.add_argument(
        "--backend-delay",
        type=checked(_backend_delay),
        default=DEFAULT_BACKEND_DELAY,
        metavar="SECONDS",
        help=f"the bench's backend answers this long after the request (default "
        f"{DEFAULT_BACKEND_DELAY:g}, 0-{MAX_BACKEND_DELAY:g}): the client's FIN is at the "
        "proxy long before any answer exists",
    )


def options_from(args: argparse.Namespace) -> ProbeOptions:
    target = parse_target(args.target)
    if args.send is not None:
        request = presets.custom(presets.unescape(args.send))
    elif args.send_file is not None:
        request = presets.custom(read_send_file(args.send_file))
    else:
        request = presets.preset(args.preset or "http", target.host, target.port)
    if args.pcap is not None and not args.capture:
        raise UsageError("--pcap needs packet capture: drop --no-capture")
    if args.pcap is not None:
        check_writable(Path(args.pcap))
    backend = None
    if args.backend is not None:
        backend = parse_target(args.backend)
        if not backend.is_literal or not _is_loopback(backend.host):
            raise UsageError(
                f"--backend {args.backend}: the bench listens on loopback only "
                "(127.0.0.0/8 or [::1])"
            )
        if args.timeout <= args.backend_delay:
            raise UsageError(
                f"--timeout {args.timeout:g} must be longer than --backend-delay "
                f"{args.backend_delay:g}, or every answer comes too late"
            )
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
        control=args.control,
        backend=backend,
        backend_kind=BackendKind(args.backend_kind),
        backend_delay=args.backend_delay,
    )


def _is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _segments(packets: list[Packet], t0: float, client: Endpoint) -> tuple[dict, ...]:
    """Per-run segments for the JSON, bounded: the first and last SEGMENTS_KEPT."""

    def row(p: Packet) -> dict:
        sender = "client" if p.src_endpoint == client else "server"
        return {
            "t_ms": round((p.t - t0) * 1000, 3),
            "sender": sender,
            "flags": p.letters,
            "length": p.length,
        }

    if len(packets) > 2 * SEGMENTS_KEPT:
        packets = packets[:SEGMENTS_KEPT] + packets[-SEGMENTS_KEPT:]
    return tuple(row(p) for p in packets)


def run_one(
    index: int,
    address: Address,
    options: ProbeOptions,
    pcap: PcapStream | None,
    *,
    control: ControlResult | None = None,
    backend: Backend | None = None,
    keep_picture: bool = True,
) -> RunResult:
    """One run, captured when allowed: the socket facts, then the packets, then the verdict.

    With a backend (the proxy bench) the capture covers both legs and the backend's
    connections of this run are judged with it. The capture keeps a bounded window of each
    connection (probe/window.py), however long the server streams; only what `keep_picture`
    asks is kept of it (the diagram), so that --repeat 1000 stays in bounded memory.
    """
    session = None
    capture_note: str | None = None
    if not options.capture:
        capture_note = "no packet capture (--no-capture): socket-level facts only"
    elif not _is_loopback(address.ip):
        capture_note = "no packet capture (it watches loopback only): socket-level facts only"
    else:
        ports = [address.port] + ([backend.address[1]] if backend is not None else [])
        session = WindowedCapture(ports, also=pcap.write if pcap is not None else None)
    payload = options.request.payload(options.mode is Mode.PARTIAL)
    first_conn = backend.count() if backend is not None else 0
    try:
        sock_facts, events = probe_once(
            address,
            payload,
            options.mode,
            timeout=options.timeout,
            connect_timeout=options.connect_timeout,
            shown=str(options.target),
            kind=kind_for(options.request.name, payload),
            on_port=session.window.ours.add if session is not None else None,
        )
        if backend is not None:
            backend.wait_done(first_conn, BACKEND_SETTLE)
    finally:
        captured = session.stop() if session is not None else None
    conns = backend.since(first_conn) if backend is not None else []
    method = "none"
    pk = termination = timeline = None
    segments: tuple[dict, ...] = ()
    legs: list[BackendLeg] = []
    picture: str | None = None
    dropped = 0
    all_packets: list[Packet] | None = None
    gaps: tuple[Gap, ...] = ()
    seen = 0
    if captured is not None:
        method, capture_note, dropped = captured.method, captured.note, captured.dropped
        if captured.available:
            window = captured.window
            all_packets = window.packets()
            seen = window.seen
            mine = connection_packets(all_packets, sock_facts.local, sock_facts.peer)
            pk = window_facts(window, sock_facts.local, sock_facts.peer)
            ours = window.connection(sock_facts.local, sock_facts.peer)
            gaps = tuple(ours.gaps) if ours is not None else ()
            # the classifier's verdict on these same packets, computed once by the facts
            run_termination = pk.run.termination if pk.run is not None else None
            termination = run_termination.termination if run_termination else None
            t0 = mine[0].t if mine else (sock_facts.t_connected or 0.0)
            segments = _segments(mine, t0, sock_facts.local)
            if keep_picture and backend is None:
                timeline = Timeline.build(
                    mine, events, server=sock_facts.peer, client=sock_facts.local
                )
    for conn in conns:
        leg_packets = (
            connection_packets(all_packets, conn.peer, conn.local)
            if all_packets is not None
            else None
        )
        judged = backend_leg(conn, leg_packets)
        # The window kept some of the leg's packets; it counted them all.
        counted = captured.window.connection(conn.peer, conn.local) if captured else None
        legs.append(dataclasses.replace(judged, packets=counted.packets) if counted else judged)
    verdict = judge(sock_facts, pk, control)
    where = None
    if backend is not None:
        answer = (
            printable(HTTP_ANSWER.split(b"\r\n", 1)[0])
            if options.backend_kind is BackendKind.HTTP
            else "echo"
        )
        where = where_died(verdict, sock_facts, pk, legs, answer)
        if keep_picture and all_packets is not None:
            mine = connection_packets(all_packets, sock_facts.local, sock_facts.peer)
            backend_packets: list[Packet] = []
            backend_gaps: list[Gap] = []
            for conn in conns:
                backend_packets += connection_packets(all_packets, conn.peer, conn.local)
                leg = captured.window.connection(conn.peer, conn.local) if captured else None
                backend_gaps += leg.gaps if leg is not None else []
            picture = three_column_diagram(
                mine,
                backend_packets,
                sock_facts.local,
                backend.address,
                events,
                [e for conn in conns for e in conn.events],
                client_gaps=gaps,
                backend_gaps=backend_gaps,
            )
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
        segments=segments,
        change=change_reason(sock_facts, control) if verdict is Verdict.ANSWER_CHANGED else None,
        legs=tuple(legs),
        where=where,
        picture=picture,
        dropped=dropped,
        gaps=gaps,
        seen=seen,
    )


def run_probe(options: ProbeOptions) -> ProbeReport:
    """Resolve once; start the bench's backend if asked; the control; then `repeat` runs,
    each run's frames streamed to --pcap as they are captured."""
    address = resolve(options.target, options.connect_timeout)
    with contextlib.ExitStack() as stack:
        pcap = None
        if options.pcap is not None:
            pcap = PcapStream(options.pcap)
            stack.callback(pcap.close)
        backend = None
        if options.backend is not None:
            backend = stack.enter_context(
                Backend(
                    options.backend.host,
                    options.backend.port,
                    options.backend_kind,
                    options.backend_delay,
                    options.timeout,
                )
            )
        return _runs(options, address, backend, pcap)


def _runs(
    options: ProbeOptions, address: Address, backend: Backend | None, pcap: PcapStream | None
) -> ProbeReport:
    payload = options.request.payload(options.mode is Mode.PARTIAL)
    control = None
    if options.control and options.mode is Mode.SHUTDOWN:
        if backend is not None:
            # The control sends no FIN, so there is no race to avoid: answered at once.
            backend.delay = 0.0
        control = control_once(
            address,
            payload,
            kind_for(options.request.name, payload),
            timeout=options.timeout,
            connect_timeout=options.connect_timeout,
            shown=str(options.target),
        )
        if backend is not None:
            backend.wait_done(0, BACKEND_SETTLE)
            backend.delay = options.backend_delay
    runs: list[RunResult] = []
    stopped = None
    pictured: set[Verdict] = set()
    for index in range(1, options.repeat + 1):
        try:
            # A picture for the first run of each verdict: bounded, and an unstable mix
            # still shows each of its outcomes.
            run = run_one(
                index,
                address,
                options,
                pcap,
                control=control,
                backend=backend,
                keep_picture=len(pictured) < MAX_PICTURES,
            )
        except NetworkError as exc:
            if not runs:
                raise  # the target never answered: a network error, not a verdict
            stopped = f"run {index}: {exc.message}"
            break
        if run.verdict in pictured:
            run = dataclasses.replace(run, timeline=None, picture=None)
        pictured.add(run.verdict)
        runs.append(run)
    report = ProbeReport(
        target=str(options.target),
        address=(address.ip, address.port),
        mode=options.mode,
        request=options.request.name,
        request_bytes=len(payload),
        timeout=options.timeout,
        runs=tuple(runs),
        stopped=stopped,
        control=control,
        backend=(
            {
                "address": list(backend.address),
                "kind": str(backend.kind),
                "delay_s": backend.delay,
            }
            if backend is not None
            else None
        ),
    )
    return report


_STYLE = {ProbeExit.OK: "bold green", ProbeExit.UNSTABLE: "bold yellow"}


def _write_text(report: ProbeReport) -> None:
    summary = render_summary(report)
    first = report.runs[0]
    timeline = first.timeline if first.timeline and first.timeline.entries else None
    picture = first.picture
    note = first.capture_note
    if sys.stdout.isatty():
        from rich.text import Text

        console = stdout_console()
        style = _STYLE.get(report.exit, "bold red")
        for line in summary.splitlines():
            text = Text(line)
            if line.startswith(("verdict", "exit", "repeat")):
                text.stylize(style, 10)
            elif line.startswith("hint"):
                text.stylize("dim")
            console.print(text)
        if picture is not None:
            console.print()
            console.print(Text(picture), end="")
        elif timeline is not None:
            console.print()
            console.print(rich_two_column_diagram(timeline, first.gaps), end="")
        if note:
            console.print(Text(note, style="dim"))
        return
    out = summary + "\n"
    if picture is not None:
        out += "\n" + picture
    elif timeline is not None:
        out += "\n" + two_column_diagram(timeline, first.gaps)
    if note:
        out += note + "\n"
    sys.stdout.write(out)
    sys.stdout.flush()


def execute(args: argparse.Namespace) -> int:
    options = options_from(args)
    report = run_probe(options)
    if options.json:
        sys.stdout.write(json.dumps(versioned(report.to_json()), indent=2) + "\n")
        sys.stdout.flush()
    else:
        _write_text(report)
    return int(report.exit)
