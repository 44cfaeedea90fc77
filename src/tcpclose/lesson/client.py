"""graceclient: the lesson's client, faithful to graceclient.c.

Lesson steps (comments below cite them):
  [connect] connect to <IPaddress>:43211; `connect failed ` + the error on failure
  [select]  wait on standard input AND the socket at once (select(); here `selectors`)
  [socket]  data: print it and a newline; EOF: `server terminated `, exit 1; error: `read error`
  [stdin]   `shutdown`: stop watching stdin, shutdown(fd, SHUT_WR), keep reading until EOF
            `close`:    stop watching stdin, close(fd), sleep 6 s, exit 0
            otherwise:  strip the newline, print `now sending <line>`, write it (no newline on
                        the wire), print `send bytes: <n> `

Where the C original is broken we do what users expect (documented in docs/lesson.md):
  - commands match whole lines (`shutdownX` is sent as data; the C compares 8 / 5 characters);
  - standard-input EOF (Ctrl-D, a pipe that ends) acts as `shutdown`; the C spins forever;
  - every line already read is handled (the C's stdio buffer hides lines from select());
  - `abort` (not in the lesson) sets SO_LINGER {on, 0} and closes, so the kernel sends RST.
"""

from __future__ import annotations

import argparse
import errno
import os
import selectors
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from tcpclose.addresses import host_port
from tcpclose.argparsing import Parser, checked, non_negative_seconds
from tcpclose.errors import NetworkError, TcpcloseError, UsageError, errno_name, from_oserror
from tcpclose.lesson import MAXLINE, SERV_PORT
from tcpclose.lesson.common import (
    SetupError,
    Voice,
    error,
    exit_closing,
    open_events,
    port_number,
    prepare_standard_streams,
    resolve,
    say,
    show_bytes,
    warn,
)
from tcpclose.model.event import EventLog
from tcpclose.sockopts import linger_zero

PROGRAM = "graceclient"
STDIN = 0  #: the C program's descriptor 0, whatever Python made of sys.stdin
USAGE = "usage: graceclient <IPaddress>"


@dataclass(frozen=True)
class ClientOptions:
    host: str
    port: int = SERV_PORT
    close_wait: float = 6.0
    connect_timeout: float = 10.0
    events: str | None = None


def build_parser(prog: str = PROGRAM) -> Parser:
    parser = Parser(
        prog=prog,
        description="The lesson's client: sends each line typed; `shutdown` half-closes, "
        "`close` closes, `abort` resets.",
    )
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The program's arguments, shared with `tcpclose client`."""
    parser.add_argument("host", metavar="IPaddress", help="server address (IPv4 or IPv6)")
    parser.add_argument(
        "--port",
        type=checked(port_number),
        default=SERV_PORT,
        help=f"server port (default {SERV_PORT})",
    )
    parser.add_argument(
        "--close-wait",
        type=checked(non_negative_seconds),
        default=6.0,
        metavar="SECONDS",
        help="sleep after `close`/`abort` (default 6)",
    )
    parser.add_argument(
        "--connect-timeout",
        type=checked(non_negative_seconds),
        default=10.0,
        metavar="SECONDS",
        help="give up connecting after this long (default 10)",
    )
    parser.add_argument(
        "--events", metavar="FILE", help="append one JSON line per step (timestamps in ns)"
    )


def options_from(namespace: argparse.Namespace) -> ClientOptions:
    return ClientOptions(
        host=namespace.host,
        port=namespace.port,
        close_wait=namespace.close_wait,
        connect_timeout=namespace.connect_timeout,
        events=namespace.events,
    )


class GraceClient:
    def __init__(self, options: ClientOptions, log: EventLog, stdin: int = STDIN) -> None:
        self.options = options
        self.log = log
        self.stdin = stdin  #: the descriptor the user's lines come from (0 in the C original)
        # select() itself, as in the lesson: epoll (DefaultSelector) refuses a regular file, so
        # `graceclient HOST < script.txt` would fail with EPERM; select() reports it readable.
        self.selector: selectors.BaseSelector = selectors.SelectSelector()
        self.sock: socket.socket | None = None
        self.pending = b""  # bytes read from stdin that do not yet form a whole line
        self.watching_stdin = True

    def connect(self) -> socket.socket:
        """[connect] socket(); connect() to host:port, bounded by --connect-timeout."""
        try:
            family, sockaddr = resolve(
                self.options.host, self.options.port, self.options.connect_timeout
            )
        except ValueError as exc:
            raise SetupError(f"bad address: {exc}", UsageError(f"bad address: {exc}")) from None
        except TimeoutError as exc:
            message = f"cannot resolve {self.options.host!r}: {exc}"
            raise SetupError(message, NetworkError(message)) from exc
        except socket.gaierror as exc:
            message = f"cannot resolve {self.options.host!r}: {exc.strerror}"
            raise SetupError(message, NetworkError(message)) from exc
        where = host_port(str(sockaddr[0]), self.options.port)
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(self.options.connect_timeout or None)
        try:
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            if isinstance(exc, TimeoutError) and exc.errno is None:  # our --connect-timeout
                exc = TimeoutError(errno.ETIMEDOUT, os.strerror(errno.ETIMEDOUT))
            self.log.emit(
                "error", call="connect", errno=errno_name(exc.errno), message=exc.strerror
            )
            raise SetupError(
                f"connect failed : {exc.strerror}", from_oserror(exc, f"cannot connect to {where}")
            ) from exc
        sock.settimeout(None)
        local, peer = sock.getsockname(), sock.getpeername()
        self.log.emit(
            "connected", local=local[0], local_port=local[1], peer=peer[0], peer_port=peer[1]
        )
        return sock

    def run(self) -> int:
        self.sock = self.connect()
        self.selector.register(self.sock, selectors.EVENT_READ)
        self.selector.register(self.stdin, selectors.EVENT_READ)
        stdin = self.stdin
        while True:
            ready = {key.fileobj for key, _ in self.selector.select()}  # [select]
            # The C handles the socket first, then standard input, in one wake-up.
            if self.sock in ready:
                self.on_socket_readable()
            if self.watching_stdin and stdin in ready:
                status = self.on_stdin_readable()
                if status is not None:
                    return status

    def on_socket_readable(self) -> None:
        """[socket] read up to MAXLINE bytes; print them and a newline; EOF ends the client."""
        assert self.sock is not None
        try:
            data = self.sock.recv(MAXLINE)
        except OSError as exc:
            self.log.emit("error", call="read", errno=errno_name(exc.errno), message=exc.strerror)
            error(PROGRAM, 1, "read error", exc.errno)
        if not data:
            self.log.emit("eof")
            error(PROGRAM, 1, "server terminated \n")
        self.log.emit("received", bytes=len(data), data=data.decode("utf-8", "replace"))
        say(show_bytes(data) + "\n")

    def on_stdin_readable(self) -> int | None:
        """[stdin] handle every whole line read; None means keep going, else the exit status."""
        chunk = os.read(self.stdin, MAXLINE)
        self.pending += chunk
        lines = self.pending.split(b"\n")
        self.pending = lines.pop()
        if not chunk and self.pending:  # EOF after a last line without its newline
            lines.append(self.pending)
            self.pending = b""
        for line in lines:
            status = self.on_line(line)
            if status is not None or not self.watching_stdin:
                return status
        if not chunk:  # standard-input EOF: half-close, as `shutdown` does
            self.half_close(reason="stdin-eof")
        return None

    def stop_watching_stdin(self) -> None:
        self.selector.unregister(self.stdin)  # FD_CLR(0, &allreads)
        self.watching_stdin = False

    def half_close(self, reason: str) -> None:
        """shutdown(fd, SHUT_WR): FIN to the server; this socket can still read."""
        assert self.sock is not None
        self.stop_watching_stdin()
        started_ns = time.time_ns()  # the FIN leaves during the call: say when it began
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            self.log.emit(
                "error", call="shutdown", errno=errno_name(exc.errno), message=exc.strerror
            )
            error(PROGRAM, 1, "shutdown failed", exc.errno)
        self.log.emit("shutdown", how="SHUT_WR", reason=reason, started_ns=started_ns)

    def on_line(self, raw: bytes) -> int | None:
        command = raw.rstrip(b"\r")
        assert self.sock is not None
        if command == b"shutdown":
            self.half_close(reason="command")
            return None
        if command in (b"close", b"abort"):
            self.stop_watching_stdin()
            started_ns = time.time_ns()  # the FIN or RST leaves during the calls
            if command == b"abort":
                linger_zero(self.sock)  # SO_LINGER {on, 0}: close() sends RST, not FIN
            self.selector.unregister(self.sock)
            self.sock.close()  # close(fd): both directions; the kernel sends FIN (or RST)
            self.log.emit(command.decode(), started_ns=started_ns)
            time.sleep(self.options.close_wait)
            return 0
        say(f"now sending {show_bytes(raw)}\n")
        try:
            self.sock.sendall(raw)  # no newline on the wire
        except OSError as exc:
            self.log.emit("error", call="write", errno=errno_name(exc.errno), message=exc.strerror)
            error(PROGRAM, 1, "write failed ", exc.errno)
        self.log.emit("sent", bytes=len(raw), data=raw.decode("utf-8", "replace"))
        say(f"send bytes: {len(raw)} \n")
        return None


def _stdin_fd() -> int:
    """The descriptor to read the user's lines from: sys.stdin's (an in-process caller may
    replace sys.stdin), else 0. With `graceclient HOST <&-` descriptor 0 is not open at all:
    /dev/null is opened there (the lowest free descriptor), so the input reads as empty, as
    after Ctrl-D, before a socket or the events file can take descriptor 0 for itself."""
    if sys.stdin is not None:
        try:
            return sys.stdin.fileno()
        except (OSError, ValueError):
            pass
    try:
        os.fstat(STDIN)
    except OSError:
        return os.open(os.devnull, os.O_RDONLY)
    return STDIN


def connect_and_run(options: ClientOptions, voice: Voice = "c") -> int:
    """Run the client until it exits; returns the exit status. A failure to connect is
    reported in `voice` (see `tcpclose.lesson.common.SetupError`)."""
    stdin = _stdin_fd()
    try:
        log = open_events("client", options.events)
    except SetupError as exc:
        exc.report(PROGRAM, voice)  # prints the C line, or raises tcpclose's error
        return 1
    status = 1
    client = GraceClient(options, log, stdin)
    try:
        status = client.run()
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 1
    except SetupError as exc:
        status = int(exc.error.status) if voice == "tcpclose" else 1
        exc.report(PROGRAM, voice)  # prints the C line, or raises tcpclose's error
    except KeyboardInterrupt:
        status = 130
    finally:
        exit_closing(log, status, [client.sock])  # its FIN (or RST) leaves from the exit
        log.close()
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """`graceclient <IPaddress>`: a wrong argument count prints the original's usage line."""
    prepare_standard_streams(dies_of_sigpipe=True)  # the C client never changes SIGPIPE
    try:
        options = options_from(build_parser().parse_args(argv))
    except SystemExit as exc:  # --help: argparse printed it and asked to exit(0)
        return exc.code if isinstance(exc.code, int) else 1
    except TcpcloseError as exc:
        message = str(exc)
        wrong_count = "required" in message or "unrecognized arguments" in message
        warn(PROGRAM, USAGE if wrong_count else message)
        return 1
    return connect_and_run(options)


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
