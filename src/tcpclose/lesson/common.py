"""What both lesson programs share: glibc-style error lines, argument plumbing, addresses."""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from typing import Literal, NoReturn

from tcpclose.addresses import is_ip, looks_like_hostname, lookup
from tcpclose.errors import TcpcloseError, from_oserror
from tcpclose.model.event import EventLog

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


def open_events(role: str, path: str | None) -> EventLog:
    """The --events log, or SetupError (in both voices) when the file cannot be opened."""
    try:
        return EventLog(role, path)
    except OSError as exc:
        raise SetupError(
            f"cannot open {path}: {exc.strerror}", from_oserror(exc, f"cannot write {path}")
        ) from exc


def say(text: str) -> None:
    """printf() to stdout, flushed at once (the C original buffers when piped; we never do,
    so a transcript is complete even when the process is killed by SIGPIPE)."""
    stream = sys.stdout
    try:
        stream.write(text)
    except UnicodeEncodeError:  # a non-UTF-8 locale: escape what it cannot show, never crash
        encoding = stream.encoding or "ascii"
        stream.write(text.encode(encoding, "backslashreplace").decode(encoding))
    stream.flush()


def error(program: str, status: int, message: str, errnum: int | None = None) -> NoReturn:
    """glibc's error(3): flush stdout, print `program: message[: strerror]` to stderr, exit.

    The C programs report everything this way, so `client closed ` goes to standard error,
    prefixed with the program's name, exactly as the originals print it.
    """
    sys.stdout.flush()
    line = f"{program}: {message}"
    if errnum is not None:
        line += f": {os.strerror(errnum)}"
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
    raise SystemExit(status)


def warn(program: str, message: str) -> None:
    """One line to stderr that does not end the program."""
    sys.stdout.flush()
    sys.stderr.write(f"{program}: {message}\n")
    sys.stderr.flush()


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
