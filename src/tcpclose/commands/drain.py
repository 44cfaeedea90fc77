"""`tcpclose drain`: does a server lose requests when it stops or reloads under load - and why?"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
from pathlib import Path

from tcpclose.argparsing import Parser, checked, non_negative_seconds
from tcpclose.errors import UsageError, from_oserror
from tcpclose.model.jsonshape import versioned
from tcpclose.outputs import check_writable
from tcpclose.probe.presets import PRESETS
from tcpclose.status import ExitStatus

#: Signals that ask a server to reload rather than stop (nginx HUP/USR2, gunicorn HUP...).
RELOAD_SIGNALS = frozenset({"HUP", "USR1", "USR2", "WINCH"})
MAX_SECONDS = 3600.0


def _target(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) <= 65535:
        raise ValueError(f"{text!r} is not HOST:PORT (a port 1-65535)")
    host = host.strip("[]")
    if host == "localhost":
        host = "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{host!r} is not an IP address (or localhost)") from None
    if not address.is_loopback:
        raise ValueError(f"{host} is not a loopback address: drain loads 127.0.0.0/8 or ::1 only")
    return host, int(port)


def _positive_int(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 10_000:
        raise ValueError(f"{text!r} is not a whole number from 1 to 10000")
    return int(text)


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number from 0 to 1") from None
    if not 0 <= value <= 1:
        raise ValueError(f"{text!r} is not a number from 0 to 1")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number of requests per second") from None
    if not 0 < value <= 1_000_000:
        raise ValueError(f"{text!r} is not a rate above 0 (requests per second)")
    return value


def _pid(text: str) -> int:
    if not text.isdigit() or int(text) <= 1:
        raise ValueError(f"{text!r} is not a process id")
    return int(text)


def _seconds(text: str) -> float:
    value = non_negative_seconds(text)
    if value > MAX_SECONDS:
        raise ValueError(f"{text!r}: at most {MAX_SECONDS:g} s")
    return value


def configure(parser: Parser) -> None:
    parser.usage = (
        "tcpclose drain --target HOST:PORT [options] -- SERVER COMMAND...\n"
        "       tcpclose drain --target HOST:PORT (--pid PID | --pid-file FILE) [options]"
    )
    parser.add_argument(
        "--target",
        type=checked(_target),
        required=True,
        metavar="HOST:PORT",
        help="where the server listens (loopback only)",
    )
    who = parser.add_argument_group("the server")
    who.add_argument("--pid", type=checked(_pid), help="a server already running (no command)")
    who.add_argument(
        "--pid-file",
        type=Path,
        metavar="FILE",
        help="signal the pid in FILE (read when the signal is sent)",
    )
    who.add_argument(
        "--signal",
        metavar="SIG",
        help="TERM (default), INT, QUIT, HUP, USR1, USR2, KILL... or a number",
    )
    who.add_argument(
        "--group", action="store_true", help="send the signal to the server's process group"
    )
    who.add_argument(
        "--reload", metavar="COMMAND", help="run this shell command instead of sending a signal"
    )
    who.add_argument(
        "--expect",
        choices=("stop", "reload"),
        help="stop: refusals after the signal are expected, not lost (default for "
        "TERM/INT/QUIT/KILL); reload: every refusal is lost (default for "
        "HUP/USR1/USR2 and --reload)",
    )
    who.add_argument(
        "--grace",
        type=checked(_seconds),
        default=3.0,
        help="at the end: seconds between SIGTERM and SIGKILL (default 3)",
    )
    who.add_argument(
        "--ready-timeout",
        type=checked(_seconds),
        default=15.0,
        help="seconds to wait for the target to accept (default 15)",
    )
    when = parser.add_argument_group("timing")
    when.add_argument(
        "--at",
        type=checked(_seconds),
        default=1.0,
        help="seconds of load before the signal (default 1)",
    )
    when.add_argument(
        "--after", type=checked(_seconds), default=2.0, help="seconds of load after it (default 2)"
    )
    load = parser.add_argument_group("load")
    load.add_argument(
        "--preset", default="http", choices=sorted(PRESETS), help="what to send (default http)"
    )
    load.add_argument("--path", default="/", help="http: the path (default /)")
    load.add_argument(
        "--host",
        dest="host_header",
        metavar="HOST",
        help="http: the Host header (default: the target)",
    )
    load.add_argument(
        "--send",
        metavar="TEXT",
        help="send this instead (escapes \\r \\n \\xHH); answers end at a newline",
    )
    load.add_argument(
        "--concurrency",
        type=checked(_positive_int),
        default=20,
        help="clients at once (default 20)",
    )
    load.add_argument(
        "--rate",
        type=checked(_rate),
        help="requests per second in all (default: closed loop, as fast as answers)",
    )
    load.add_argument(
        "--keepalive-share",
        type=checked(_share),
        default=0.5,
        help="share of clients that keep connections alive (default 0.5)",
    )
    load.add_argument(
        "--check-share",
        type=checked(_share),
        default=0.5,
        help="share of keep-alive clients that check an idle connection first, "
        "as urllib3 does (default 0.5; the others reuse it blindly)",
    )
    load.add_argument(
        "--timeout",
        type=checked(_seconds),
        default=5.0,
        help="seconds for connect() and for each answer (default 5)",
    )
    out = parser.add_argument_group("output")
    out.add_argument("--no-capture", action="store_true", help="no packet capture (no causes)")
    out.add_argument("--pcap", type=Path, metavar="FILE", help="keep the run's capture")
    out.add_argument("--report", type=Path, metavar="FILE", help="write an HTML report")
    out.add_argument("--no-diagrams", action="store_true", help="summary without diagrams")
    out.add_argument(
        "--json", action="store_true", help="print the run as JSON (summary and every request)"
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, metavar="-- SERVER COMMAND...")


def _options(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from tcpclose.drain.load import LoadOptions
    from tcpclose.drain.processes import signal_name, signal_number
    from tcpclose.drain.protocol import workload
    from tcpclose.drain.run import DrainOptions

    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if command and command[0].startswith("-"):
        raise UsageError(f"unknown option {command[0]!r} (the server command goes after --)")
    if not command and args.pid is None and args.pid_file is None:
        raise UsageError("name the server: -- SERVER COMMAND..., --pid PID or --pid-file FILE")
    if command and args.pid is not None:
        raise UsageError("--pid names a running server: give it or a command, not both")
    if args.reload is not None and args.signal is not None:
        raise UsageError("--reload runs a command instead of sending a signal: not both")
    if args.reload is not None and not args.reload.strip():
        raise UsageError("--reload: the command is empty")
    if args.pcap is not None and args.no_capture:
        raise UsageError("--pcap needs the capture: drop --no-capture")
    for path in (args.pcap, args.report):
        if path is not None:
            check_writable(path)
    signum = signal_number(args.signal or "TERM")
    expect = args.expect
    if expect is None:
        reloading = args.reload is not None or signal_name(signum)[3:] in RELOAD_SIGNALS
        expect = "reload" if reloading else "stop"
    host, port = args.target
    load = LoadOptions(
        host=host,
        port=port,
        workload=workload(args.preset, host, port, args.path, args.host_header, args.send),
        concurrency=args.concurrency,
        rate=args.rate,
        keepalive_share=args.keepalive_share,
        check_share=args.check_share,
        timeout=args.timeout,
    )
    return DrainOptions(
        host=host,
        port=port,
        load=load,
        command=tuple(command),
        pid=args.pid,
        pid_file=args.pid_file,
        signal=signum,
        group=args.group,
        reload=args.reload,
        at=args.at,
        after=args.after,
        expect_stop=expect == "stop",
        ready_timeout=args.ready_timeout,
        grace=args.grace,
        capture=not args.no_capture,
        pcap=args.pcap,
    )


def execute(args: argparse.Namespace) -> int:
    from tcpclose.drain.present import summary_text, to_json
    from tcpclose.drain.report import report_html
    from tcpclose.drain.run import run_drain

    options = _options(args)
    # SIGTERM raises Terminated (tcpclose.cli's sigterm_raises), as Ctrl-C raises
    # KeyboardInterrupt: the finally clauses stop what drain started, then exit 143.
    run = run_drain(options)
    if args.report is not None:
        try:
            args.report.write_text(report_html(run), encoding="utf-8")
        except OSError as exc:
            raise from_oserror(exc, f"cannot write {args.report}") from exc
    if args.json:
        _write(json.dumps(versioned(to_json(run))) + "\n")
    else:
        _write(summary_text(run, diagrams=not args.no_diagrams))
        if args.report is not None:
            _write(f"report: {args.report}\n")
    return int(ExitStatus.OK if run.tally.lost_total == 0 else ExitStatus.REQUESTS_LOST)


def _write(text: str) -> None:
    """Standard output, flushed; a full disk (/dev/full) is one error line, a closed pipe is
    left to the CLI (not an error of ours)."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise from_oserror(exc, "cannot write standard output") from exc
