"""What both lesson programs share: glibc-style error lines, argument plumbing, addresses."""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence
from typing import Any, Literal, NoReturn, TextIO

from tcpclose.addresses import is_ip, looks_like_hostname, lookup
from tcpclose.errors import TcpcloseError, from_oserror
from tcpclose.model.event import AppEvent, EventLog
from tcpclose.outputs import open_missing_standard_fds

#: Who reports a failure before the lesson's dialogue starts: the `grace*` programs speak as the
#: C originals (`graceclient: connect failed : Connection refused`, exit 1); `tcpclose server`
#: and `tcpclose client` as tcpclose (`tcpclose: error: ...`, the status of `tcpclose.status`).
Voice = Literal["c", "tcpclose"]


class SetupError(Exception):
    """A failure before the dialogue starts (bad address, bind, connect), in both voices:
    `c_line` as the C original prints it after `program: `, `error` as tcpclose reports it."""

    def __init__(self, c_line: str, error: TcpcloseError) -> None:
        super().__init__(c_line)
        self.c_line = c_line
        self.error = error

    def report(self, program: str, voice: Voice) -> None:
        """Print `program: c_line` (C voice; the status is 1), or raise tcpclose's error."""
        if voice == "tcpclose":
            raise self.error from self.__cause__
        warn(program, self.c_line)


class ProgramEventLog(EventLog):
    """The --events log of a lesson program: a write that fails (a full disk, /dev/full) ends
    the program with one line, `cannot write FILE: <strerror>` (a SetupError, in both voices),
    instead of a traceback; after that, emit() records nothing (so `exit` is not retried)."""

    def __init__(self, role: str, path: str | None) -> None:
        super().__init__(role, path)
        self.path = path
        self.broken = False

    def emit(self, event: str, **fields: Any) -> AppEvent:
        if self.broken:
            return AppEvent(0, self.role, event, fields)
        try:
            return super().emit(event, **fields)
        except OSError as exc:
            self.broken = True
            raise SetupError(
                f"cannot write {self.path}: {exc.strerror}",
                from_oserror(exc, f"cannot write {self.path}", on_file=True),
            ) from exc

    def close(self) -> None:
        with contextlib.suppress(OSError):  # already reported by the emit() that failed
            super().close()


def exit_closing(log: EventLog, status: int, sockets: Sequence[socket.socket | None]) -> None:
    """What exit() does to the program's sockets, logged with the stamps that bracket it.

    In C the kernel closes every descriptor at exit(); a connection still open then sends its
    FIN (or RST, with unread data) from inside exit. Here the sockets are closed explicitly
    (close(fd)) between `started_ns` and the `exit` record's own `t_ns`, so the FIN or RST they
    send is attributed to the exit that sent it, not to whatever the program logged before.
    Leaving them to the garbage collector would close them before the record or after it,
    whenever the exception that ends the program lets go of them."""
    started_ns = time.time_ns()
    for sock in sockets:
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
    log.emit("exit", status=status, started_ns=started_ns)


def open_events(role: str, path: str | None) -> ProgramEventLog:
    """The --events log, or SetupError (in both voices) when the file cannot be opened."""
    try:
        return ProgramEventLog(role, path)
    except OSError as exc:
        raise SetupError(
            f"cannot open {path}: {exc.strerror}", from_oserror(exc, f"cannot write {path}")
        ) from exc


# --- standard streams, as C's stdio treats them ---------------------------------------------
#
# The C programs print through stdio and never check printf's result: a stdout that is closed
# (`>&-`) or full (`> /dev/full`) loses the output silently and the program goes on. A stdout
# whose reader went away (`| head -1`) raises SIGPIPE at the write: graceclient (default action)
# dies of it quietly; graceserver dies with `--sigpipe default`, runs its handler with
# `--sigpipe handler`, and with `--sigpipe ignore` the write fails silently. We do the same
# (see docs/lesson.md): `prepare_standard_streams()` at start-up, then `say`, `warn` and
# `error` never raise for their stream.

#: graceclient never changes SIGPIPE, so in C it has the default action: die on a broken pipe.
#: graceserver follows its --sigpipe mode. Python itself ignores SIGPIPE, hence this flag.
_DIES_OF_SIGPIPE = False


def prepare_standard_streams(*, dies_of_sigpipe: bool) -> None:
    """Open /dev/null on closed descriptors 0-2 (so that no socket takes descriptor 1 and
    receives our output, as it would in C) and say how a broken pipe on stdout ends us."""
    global _DIES_OF_SIGPIPE
    _DIES_OF_SIGPIPE = dies_of_sigpipe
    open_missing_standard_fds()


def _write_failed(stream: TextIO, exc: OSError) -> None:
    """A write to stdout or stderr failed: die of SIGPIPE if the C program would, else point
    the descriptor at /dev/null so that what stays buffered is dropped quietly, as stdio does."""
    broken_pipe = exc.errno == errno.EPIPE
    if broken_pipe and (_DIES_OF_SIGPIPE or signal.getsignal(signal.SIGPIPE) == signal.SIG_DFL):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGPIPE)
    try:
        fd = stream.fileno()
    except (OSError, ValueError, AttributeError):
        return  # an in-process caller's stream: nothing to redirect
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, fd)
    os.close(null)
    with contextlib.suppress(OSError):
        stream.flush()  # now into /dev/null: the buffer is empty again


def _write(stream: TextIO | None, text: str) -> None:
    if stream is None:
        return
    try:
        try:
            stream.write(text)
        except UnicodeEncodeError:  # a non-UTF-8 locale: escape what it cannot show
            encoding = stream.encoding or "ascii"
            stream.write(text.encode(encoding, "backslashreplace").decode(encoding))
        stream.flush()
    except OSError as exc:
        _write_failed(stream, exc)


def say(text: str) -> None:
    """printf() to stdout, flushed at once (the C original buffers when piped; we never do,
    so a transcript is complete even when the process is killed by SIGPIPE)."""
    _write(sys.stdout, text)


def error(program: str, status: int, message: str, errnum: int | None = None) -> NoReturn:
    """glibc's error(3): flush stdout, print `program: message[: strerror]` to stderr, exit.

    The C programs report everything this way, so `client closed ` goes to standard error,
    prefixed with the program's name, exactly as the originals print it.
    """
    line = f"{program}: {message}"
    if errnum is not None:
        line += f": {os.strerror(errnum)}"
    warn_line(line)
    raise SystemExit(status)


def warn(program: str, message: str) -> None:
    """One line to stderr that does not end the program."""
    warn_line(f"{program}: {message}")


def warn_line(line: str) -> None:
    """Flush stdout, then write `line` to stderr (error(3)'s order)."""
    _write(sys.stdout, "")
    _write(sys.stderr, line + "\n")


def family_of(address: str) -> socket.AddressFamily:
    """AF_INET or AF_INET6 for an IP literal; ValueError for anything else."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return socket.AF_INET6 if ip.version == 6 else socket.AF_INET


def resolve(host: str, port: int, timeout: float) -> tuple[socket.AddressFamily, tuple]:
    """An IP literal as is, else a host name through getaddrinfo (which may ask DNS), waiting
    at most `timeout` seconds.

    Raises ValueError for text that is neither an IP address nor a syntactically valid host
    name (checked before any lookup), socket.gaierror when a valid name does not resolve and
    TimeoutError when the resolver does not answer in time.
    """
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not is_ip(host) and not looks_like_hostname(host):
        raise ValueError(f"{host!r} is not an IP address or a host name")
    return lookup(host, port, timeout)


def show_bytes(data: bytes) -> str:
    """Bytes as the C programs print them (%s), made safe: invalid UTF-8 becomes U+FFFD and
    control characters other than newline and tab are escaped, so a terminal is never harmed."""
    text = data.decode("utf-8", errors="replace")
    out = []
    for ch in text:
        if ch.isprintable() or ch in "\n\t":
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out)


def port_number(text: str) -> int:
    """argparse type for --port: 0..65535 (0 asks the kernel for a free port)."""
    try:
        value = int(text, 10)
    except ValueError:
        raise ValueError(f"port must be a number, not {text!r}") from None
    if not 0 <= value <= 65535:
        raise ValueError(f"port {value} is out of range 0-65535")
    return value
