"""The probe itself, on the socket side: connect, send, end our side as the mode says, read.

Syscalls per mode, after connect() and send() of the request:

  shutdown  shutdown(fd, SHUT_WR)     the kernel sends FIN after the request; we keep reading
  partial   the same, after an incomplete request
  none      nothing; we read until the server closes or --timeout, then close()
  close     close(fd)                 FIN; answer data arriving later draws RST from our kernel;
                                      if answer bytes are already unread, close() sends RST
  abort     setsockopt(SO_LINGER, {l_onoff=1, l_linger=0}); close(fd)   the kernel sends RST

Reads are recv() with a deadline (settimeout): 0 bytes is the server's FIN (EOF),
ECONNRESET its RST. After close() the descriptor is gone, so close mode watches the orphaned
socket in /proc/net/tcp instead: TIME_WAIT or CLOSING means the server's FIN came (and no data:
data would have drawn our RST); the socket vanishing means a reset.
"""

from __future__ import annotations

import errno
import fcntl
import socket
import struct
import termios
import time
from dataclasses import dataclass, field

from tcpclose.errors import NetworkError, errno_name, from_oserror
from tcpclose.model.event import AppEvent, EventLog
from tcpclose.probe.facts import HEAD_BYTES, AfterClose, Mode, ReadEnd, SocketFacts
from tcpclose.probe.target import Address
from tcpclose.sockopts import linger_zero

RECV_SIZE = 65536
#: how often close mode looks at /proc/net/tcp
PROC_POLL_SECONDS = 0.005

# /proc/net/tcp "st" column (include/net/tcp_states.h)
_TIME_WAIT = 0x06
_CLOSING = 0x0B


@dataclass
class _Recorder:
    """The probe's own application events (role "client"), for the timeline's notes."""

    log: EventLog = field(default_factory=lambda: EventLog("client"))
    events: list[AppEvent] = field(default_factory=list)

    def __call__(self, event: str, **fields: object) -> float:
        record = self.log.emit(event, **fields)
        self.events.append(record)
        return record.t


def connect(address: Address, timeout: float, shown: str) -> socket.socket:
    """socket() + connect() within `timeout` seconds; NetworkError (one line) when it fails."""
    sock = socket.socket(address.family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(address.sockaddr)
    except TimeoutError as exc:
        sock.close()
        raise NetworkError(f"cannot connect to {shown}: timed out after {timeout:g} s") from exc
    except OSError as exc:
        sock.close()
        raise from_oserror(exc, f"cannot connect to {shown}") from exc
    return sock


def unread_bytes(sock: socket.socket) -> int:
    """ioctl(FIONREAD): bytes received by the kernel that we have not read."""
    try:
        raw = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    except OSError:
        return 0
    return int(struct.unpack("i", raw)[0])


def abort(sock: socket.socket) -> None:
    """SO_LINGER {1, 0} then close(): the kernel discards the send queue and sends RST."""
    linger_zero(sock)
    sock.close()


def probe_once(
    address: Address,
    payload: bytes,
    mode: Mode,
    *,
    timeout: float,
    connect_timeout: float,
    shown: str,
) -> tuple[SocketFacts, list[AppEvent]]:
    """One run: connect, send `payload`, end our side per `mode`, observe until `timeout`.

    Connection failures raise NetworkError; everything after connect() is an observation.
    """
    note = _Recorder()
    sock = connect(address, connect_timeout, shown)
    local = _endpoint(sock.getsockname())
    # Not getpeername(): a reset that lands right after connect() makes it fail (ENOTCONN).
    peer = _endpoint(address.sockaddr)
    t_connected = note(
        "connected", local=local[0], local_port=local[1], peer=peer[0], peer_port=peer[1]
    )
    received = 0
    head = b""
    read_end = ReadEnd.NOT_READ
    read_errno: str | None = None
    unread = 0
    after_close: AfterClose | None = None
    t_closed = t_first = t_end = None
    t_sent: float | None = None
    try:
        try:
            sock.settimeout(timeout)
            sock.sendall(payload)
            t_sent = note("sent", bytes=len(payload), data=payload[:80].decode("utf-8", "replace"))
        except OSError as exc:  # the server reset before taking the request
            t_end = time.time()
            read_end, read_errno = _read_end_of(exc)
            note("error", call="send", errno=read_errno)
        else:
            if mode in (Mode.SHUTDOWN, Mode.PARTIAL):
                try:
                    sock.shutdown(socket.SHUT_WR)
                except OSError as exc:  # reset already (ENOTCONN): reading will tell how
                    note("error", call="shutdown", errno=errno_name(exc.errno))
                else:
                    t_closed = note("shutdown", how="SHUT_WR")
            elif mode is Mode.CLOSE:
                unread = unread_bytes(sock)
                sock.close()
                t_closed = note("close", unread=unread)
                after_close, t_end = watch_orphan(address.family, local, peer, timeout)
            elif mode is Mode.ABORT:
                unread = unread_bytes(sock)
                abort(sock)
                t_closed = t_end = note("abort", unread=unread)
        if mode.reads and read_end is ReadEnd.NOT_READ:
            deadline = time.monotonic() + timeout
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    read_end, t_end = ReadEnd.TIMEOUT, time.time()
                    note("timeout", after=timeout)
                    break
                sock.settimeout(remaining)
                try:
                    chunk = sock.recv(RECV_SIZE)
                except TimeoutError:
                    continue
                except OSError as exc:
                    t_end = time.time()
                    read_end, read_errno = _read_end_of(exc)
                    note("error", call="read", errno=read_errno)
                    break
                if not chunk:
                    read_end, t_end = ReadEnd.EOF, note("eof")
                    break
                if t_first is None:
                    t_first = time.time()
                received += len(chunk)
                if len(head) < HEAD_BYTES:
                    head += chunk[: HEAD_BYTES - len(head)]
                note("received", bytes=len(chunk), data=chunk[:80].decode("utf-8", "replace"))
    finally:
        if sock.fileno() != -1:
            sock.close()
            if mode.reads:
                note("close")
    facts = SocketFacts(
        mode=mode,
        local=local,
        peer=peer,
        sent=len(payload) if t_sent is not None else 0,
        received=received,
        head=head,
        read_end=read_end,
        read_errno=read_errno,
        unread_at_close=unread,
        after_close=after_close,
        t_connected=t_connected,
        t_sent=t_sent,
        t_closed=t_closed,
        t_first_byte=t_first,
        t_end=t_end,
    )
    return facts, note.events


def _endpoint(sockaddr: tuple) -> tuple[str, int]:
    return (str(sockaddr[0]), int(sockaddr[1]))


def _read_end_of(exc: OSError) -> tuple[ReadEnd, str | None]:
    # ENOTCONN: the connection is gone already, reset before we could use it.
    if exc.errno in (errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN):
        return ReadEnd.RESET, errno_name(exc.errno)
    return ReadEnd.ERROR, errno_name(exc.errno) or type(exc).__name__


def orphan_state(
    family: socket.AddressFamily, local: tuple[str, int], peer: tuple[str, int]
) -> int | None:
    """The TCP state (tcp_states.h number) of local<->peer in /proc/net/tcp[6]; None if absent.

    Raises OSError when the file cannot be read.
    """
    path = "/proc/net/tcp6" if family == socket.AF_INET6 else "/proc/net/tcp"
    with open(path, encoding="ascii") as table:
        next(table, None)
        for line in table:
            fields = line.split()
            if len(fields) < 4:
                continue
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            peer_port = int(fields[2].rsplit(":", 1)[1], 16)
            if local_port == local[1] and peer_port == peer[1]:
                return int(fields[3], 16)
    return None


def watch_orphan(
    family: socket.AddressFamily, local: tuple[str, int], peer: tuple[str, int], timeout: float
) -> tuple[AfterClose, float | None]:
    """After close(): poll /proc/net/tcp until the server's FIN shows (TIME_WAIT, CLOSING),
    the socket vanishes (reset), or `timeout` passes. Returns what happened and when."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            state = orphan_state(family, local, peer)
        except OSError:
            return AfterClose.UNKNOWN, None
        if state is None:
            return AfterClose.GONE, time.time()
        if state in (_TIME_WAIT, _CLOSING):
            return AfterClose.PEER_FIN, time.time()
        if time.monotonic() >= deadline:
            return AfterClose.OPEN, None
        time.sleep(PROC_POLL_SECONDS)
