"""graceserver: the lesson's server, faithful to graceserver.c.

Lesson steps, in order (comments below cite them):
  [bind]    socket(), bind() to port 43211, listen(LISTENQ)
  [signals] SIGINT prints `\\nreceived <count> datagrams\\n` and exits 0; SIGPIPE per --sigpipe
  [accept]  accept() ONE connection
  [loop]    read() up to MAXLINE bytes: one read is one message
  [eof]     read() returned 0: `client closed `, exit 1
  [reply]   print `received <n> bytes: <message>`, sleep 5 s ("processing"), send `Hi, <message>`,
            print `send bytes: <n> `, and only then check: a failed send prints
            `send bytes: 4294967295 ` (its -1, unsigned) and `error write: <strerror>`, exit 1
"""

from __future__ import annotations

import argparse
import errno
import signal
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType

from tcpclose.addresses import host_port
from tcpclose.argparsing import Parser, checked, non_negative_seconds
from tcpclose.errors import TcpcloseError, UsageError, errno_name, from_oserror
from tcpclose.lesson import LISTENQ, MAXLINE, SERV_PORT
from tcpclose.lesson.common import (
    SetupError,
    Voice,
    error,
    exit_closing,
    family_of,
    open_events,
    port_number,
    prepare_standard_streams,
    say,
    show_bytes,
    warn,
)
from tcpclose.model.event import EventLog

PROGRAM = "graceserver"
#: what the course's `printf("send bytes: %zu \n", n)` shows for n = -1 (an int, read as
#: unsigned 32 bits on x86-64 Linux)
FAILED_SEND_SHOWN = 4294967295
SIGPIPE_MODES = ("ignore", "default", "handler")


@dataclass(frozen=True)
class ServerOptions:
    port: int = SERV_PORT
    bind: str = "127.0.0.1"
    delay: float = 5.0
    sigpipe: str = "ignore"
    events: str | None = None


def build_parser(prog: str = PROGRAM) -> Parser:
    parser = Parser(
        prog=prog,
        description="The lesson's server: answers each message with `Hi, <message>` after "
        "a processing delay; accepts one connection.",
    )
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The program's arguments, shared with `tcpclose server`."""
    parser.add_argument(
        "--port",
        type=checked(port_number),
        default=SERV_PORT,
        help=f"port to listen on (default {SERV_PORT}; 0 picks a free port)",
    )
    parser.add_argument(
        "--bind",
        default="127.0.0.1",
        metavar="ADDRESS",
        help="address to bind (default 127.0.0.1; 0.0.0.0 or :: is the lesson's INADDR_ANY)",
    )
    parser.add_argument(
        "--delay",
        type=checked(non_negative_seconds),
        default=5.0,
        metavar="SECONDS",
        help="processing time before each answer (default 5)",
    )
    parser.add_argument(
        "--sigpipe",
        choices=SIGPIPE_MODES,
        default="ignore",
        help="ignore: a failed write reports EPIPE (the lesson's listing); "
        "default: the kernel kills the process (the course repository's copy); "
        "handler: a handler reports the signal, then the write fails",
    )
    parser.add_argument(
        "--events", metavar="FILE", help="append one JSON line per step (timestamps in ns)"
    )


def options_from(namespace: argparse.Namespace) -> ServerOptions:
    try:
        family_of(namespace.bind)
    except ValueError:
        raise UsageError(f"--bind: {namespace.bind!r} is not an IP address") from None
    return ServerOptions(
        port=namespace.port,
        bind=namespace.bind,
        delay=namespace.delay,
        sigpipe=namespace.sigpipe,
        events=namespace.events,
    )


class GraceServer:
    """The server's state: the message count that the SIGINT handler reports."""

    def __init__(self, options: ServerOptions, log: EventLog) -> None:
        self.options = options
        self.log = log
        self.count = 0
        self.in_sigpipe_handler = False
        self.conn: socket.socket | None = None  #: the one accepted connection

    def on_sigint(self, signum: int, frame: FrameType | None) -> None:
        # [signals] sig_int(): printf("\nreceived %d datagrams\n", count); exit(0);
        say(f"\nreceived {self.count} datagrams\n")
        self.log.emit("signal", signal="SIGINT")
        raise SystemExit(0)

    def on_sigpipe(self, signum: int, frame: FrameType | None) -> None:
        # The readers' handler: it runs, then the write returns EPIPE. A stdout whose reader
        # went away raises SIGPIPE too, and so does this handler's own print to it: the flag
        # lets that nested signal pass (C's handler would just print into stdio's buffer).
        if self.in_sigpipe_handler:
            return
        self.in_sigpipe_handler = True
        try:
            say("caught SIGPIPE\n")
            self.log.emit("signal", signal="SIGPIPE")
        finally:
            self.in_sigpipe_handler = False

    def install_signals(self) -> None:
        signal.signal(signal.SIGINT, self.on_sigint)
        mode = self.options.sigpipe
        if mode == "ignore":
            signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # signal(SIGPIPE, SIG_IGN);
        elif mode == "default":
            # Python sets SIG_IGN at start-up; restore the kernel's default action (terminate).
            signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        else:
            signal.signal(signal.SIGPIPE, self.on_sigpipe)

    def listen(self) -> socket.socket:
        """[bind] socket(); setsockopt(SO_REUSEADDR); bind(); listen(LISTENQ)."""
        family = family_of(self.options.bind)
        listener = socket.socket(family, socket.SOCK_STREAM)
        # Not in the C original: lets a rerun bind while an old connection sits in TIME_WAIT.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self.options.bind, self.options.port))
        except OSError as exc:
            listener.close()
            self.log.emit("error", call="bind", errno=errno_name(exc.errno), message=exc.strerror)
            where = host_port(self.options.bind, self.options.port)
            error = from_oserror(exc, f"cannot listen on {where}")
            if exc.errno == errno.EADDRNOTAVAIL:  # --bind names no address of this machine
                error = UsageError(
                    f"cannot listen on {where}: {self.options.bind} is not an address of this "
                    "machine (EADDRNOTAVAIL)"
                )
            raise SetupError(f"bind failed : {exc.strerror}", error) from exc
        listener.listen(LISTENQ)
        host, port = listener.getsockname()[:2]
        self.log.emit("listening", address=host, port=port)
        if self.options.port == 0:
            warn(PROGRAM, f"listening on {host_port(host, port)}")
        return listener

    def serve(self) -> int:
        listener = self.listen()
        self.install_signals()  # after listen(), as in the lesson's listing
        try:
            conn, peer = listener.accept()  # [accept] one connection only
        except OSError as exc:
            error(PROGRAM, 1, "accept failed ", exc.errno)
        listener.close()
        self.conn = conn
        self.log.emit(
            "accepted",
            peer=peer[0],
            peer_port=peer[1],
            local=conn.getsockname()[0],
            local_port=conn.getsockname()[1],
        )
        while True:
            try:
                message = conn.recv(MAXLINE)  # [loop] one read is one message
            except OSError as exc:
                self.log.emit(
                    "error", call="read", errno=errno_name(exc.errno), message=exc.strerror
                )
                error(PROGRAM, 1, "error read", exc.errno)
            if not message:
                self.log.emit("eof")
                error(PROGRAM, 1, "client closed \n")  # [eof]
            self.log.emit("received", bytes=len(message), data=message.decode("utf-8", "replace"))
            say(f"received {len(message)} bytes: {show_bytes(message)}\n")
            self.count += 1
            time.sleep(self.options.delay)  # [reply] "processing"
            reply = b"Hi, " + message
            try:
                sent = conn.send(reply)
            except OSError as exc:
                self.log.emit(
                    "error", call="write", errno=errno_name(exc.errno), message=exc.strerror
                )
                # The original's quirk: it prints the result before checking it, so a failed
                # send shows its -1 printed unsigned, then the error line (stdout, then stderr).
                say(f"send bytes: {FAILED_SEND_SHOWN} \n")
                error(PROGRAM, 1, "error write", exc.errno)
            self.log.emit("sent", bytes=sent, data=reply[:sent].decode("utf-8", "replace"))
            say(f"send bytes: {sent} \n")


def serve(options: ServerOptions, voice: Voice = "c") -> int:
    """Run the server until it exits; returns the exit status (SystemExit carries it).

    A failure to listen is reported in `voice`: the C original's line and status 1, or
    (`tcpclose server`) raised as tcpclose's error for the CLI to report."""
    try:
        log = open_events("server", options.events)
    except SetupError as exc:
        exc.report(PROGRAM, voice)  # prints the C line, or raises tcpclose's error
        return 1
    status: int = 1
    server = GraceServer(options, log)
    try:
        server.serve()
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 1
    except SetupError as exc:
        status = int(exc.error.status) if voice == "tcpclose" else 1
        exc.report(PROGRAM, voice)  # prints the C line, or raises tcpclose's error
    finally:
        exit_closing(log, status, [server.conn])  # its FIN (or RST) leaves from the exit
        log.close()
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """`graceserver [options]`: errors are reported as the C original reports them."""
    prepare_standard_streams(dies_of_sigpipe=False)  # the --sigpipe mode decides
    parser = build_parser()
    try:
        options = options_from(parser.parse_args(argv))
    except SystemExit as exc:  # --help: argparse printed it and asked to exit(0)
        return exc.code if isinstance(exc.code, int) else 1
    except TcpcloseError as exc:
        warn(PROGRAM, str(exc))
        return 1
    return serve(options)


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
