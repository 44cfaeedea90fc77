"""`tcpclose serve`: run the small HTTP/1.1 server that drains the right way (or `--abrupt`)."""

from __future__ import annotations

import json
import sys
from argparse import Namespace

from tcpclose.argparsing import Parser, checked, non_negative_seconds
from tcpclose.errors import UsageError, from_oserror
from tcpclose.model.jsonshape import versioned
from tcpclose.serve import ServeOptions, ServeStats, serve
from tcpclose.status import ExitStatus


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise ValueError(f"{text!r} is not a port (0-65535; 0 picks a free one)")
    return int(text)


def configure(parser: Parser) -> None:
    parser.add_argument("--bind", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--port", type=checked(_port), default=8080, help="port (default 8080; 0: a free one)"
    )
    parser.add_argument(
        "--delay",
        type=checked(non_negative_seconds),
        default=0.0,
        help="seconds each answer takes, to keep requests in flight (default 0)",
    )
    parser.add_argument(
        "--abrupt",
        action="store_true",
        help="on SIGTERM, stop the wrong way: close the listener and every connection at once",
    )
    parser.add_argument(
        "--idle-grace",
        type=checked(non_negative_seconds),
        default=1.0,
        help="stopping: how long an idle keep-alive connection may still send one request "
        "(default 1 s)",
    )
    parser.add_argument(
        "--linger",
        type=checked(non_negative_seconds),
        default=2.0,
        help="lingering read after shutdown(SHUT_WR), as nginx's lingering_time (default 2 s)",
    )
    parser.add_argument(
        "--drain-timeout",
        type=checked(non_negative_seconds),
        default=10.0,
        help="stopping: abort the connections still open after this long (default 10 s)",
    )
    parser.add_argument("--json", action="store_true", help="print the final counts as JSON")


def execute(args: Namespace) -> int:
    options = ServeOptions(
        bind=args.bind,
        port=args.port,
        delay=args.delay,
        abrupt=args.abrupt,
        idle_grace=args.idle_grace,
        linger=args.linger,
        drain_timeout=args.drain_timeout,
    )
    if not args.bind:
        raise UsageError("--bind: an address is needed")

    def ready(stats: ServeStats) -> None:
        how = "abruptly" if options.abrupt else "gracefully"
        sys.stderr.write(
            f"tcpclose serve: listening on {options.bind}:{stats.port} "
            f"({stats.event_loop}); SIGTERM stops it {how}\n"
        )
        sys.stderr.flush()

    try:
        stats = serve(options, ready)
    except OSError as exc:
        raise from_oserror(exc, f"cannot listen on {options.bind}:{options.port}") from exc
    if args.json:
        _write(json.dumps(versioned(stats.to_json())) + "\n")
    else:
        _write(
            f"tcpclose serve: stopped {stats.mode} in {stats.drain_seconds:.3f} s: "
            f"{stats.requests} requests on {stats.connections} connections; "
            f"{stats.accepted_while_stopping} accepted from the queue while stopping, "
            f"{stats.closing_answers} answered with Connection: close, "
            f"{stats.idle_closed} idle closed, {stats.aborted} aborted\n"
        )
    return int(ExitStatus.OK)


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
