"""The probe itself, on the socket side: connect, send, end our side as the mode says, read.

Syscalls per mode, after connect(). In shutdown, partial and close modes the request is sent
corked (setsockopt TCP_CORK 1, send(), then shutdown()/close(), then TCP_CORK 0), so that the
request and our FIN leave in ONE segment: no peer can answer between them. The socket is
non-blocking and reads while it sends, so a large request to an echo server cannot deadlock.

  shutdown  shutdown(fd, SHUT_WR)     the kernel sends FIN with the request; we keep reading
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

import contextlib
import errno
import fcntl
import selectors
import socket
import struct
import termios
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tcpclose.errors import NetworkError, errno_name, from_oserror
from tcpclose.model.event import AppEvent, EventLog
from tcpclose.probe.answer import (
    RAW_IDLE_SECONDS,
    AnswerDigest,
    AnswerKind,
    printable,
)
from tcpclose.probe.facts import (
    HEAD_BYTES,
    AfterClose,
    ControlResult,
    Mode,
    ReadEnd,
    SocketFacts,
)
from tcpclose.probe.target import Address
from tcpclose.sockopts import linger_zero

RECV_SIZE = 65536
SEND_SIZE = 262144
#: received chunks noted on the timeline; later ones only count (a long answer, a short diagram)
NOTED_CHUNKS = 8
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


def connect(
    address: Address,
    timeout: float,
    shown: str,
    on_port: Callable[[int], None] | None = None,
) -> socket.socket:
    """socket() + connect() within `timeout` seconds; NetworkError (one line) when it fails.

    With `on_port`, bind() to port 0 first: the kernel picks the local port before the SYN
    exists, and `on_port` learns it (the capture then follows our connection, however many
    others the server carries)."""
    sock = socket.socket(address.family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        if on_port is not None:
            sock.bind(("::" if address.family == socket.AF_INET6 else "0.0.0.0", 0))
            on_port(int(sock.getsockname()[1]))
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


def cork(sock: socket.socket, on: bool) -> None:
    """setsockopt(TCP_CORK): while on, the kernel holds partial segments back, so the request
    and the FIN that shutdown()/close() queues behind it leave together in one segment."""
    # OSError: a socket already reset has nothing to hold back.
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1 if on else 0)


@dataclass
class _Exchange:
    """What send-while-reading saw: bytes out, the answer so far, how reading ended."""

    digest: AnswerDigest
    sent: int = 0
    t_first: float | None = None
    read_end: ReadEnd = ReadEnd.NOT_READ
    read_errno: str | None = None
    t_end: float | None = None
    send_errno: str | None = None
    noted_chunks: int = 0

    def take(self, chunk: bytes, note: _Recorder) -> None:
        if self.t_first is None:
            self.t_first = time.time()
        self.digest.feed(chunk)
        if self.noted_chunks < NOTED_CHUNKS:  # bounded: a long answer is not a long diagram
            self.noted_chunks += 1
            note("received", bytes=len(chunk), data=printable(chunk[:80], 80))


def _send_all(
    sock: socket.socket, payload: bytes, deadline: float, ex: _Exchange, note: _Recorder
) -> bool:
    """send() the whole payload on a non-blocking socket while reading whatever comes back
    (an echo server answering a large request would otherwise fill both buffers: deadlock).
    Returns False when sending stopped (reset, EOF-and-reset, or the deadline)."""
    view = memoryview(payload)
    with selectors.DefaultSelector() as sel:
        sel.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
        while ex.sent < len(payload):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                ex.send_errno = "ETIMEDOUT"
                note("error", call="send", errno="timeout")
                return False
            for _key, mask in sel.select(remaining):
                if mask & selectors.EVENT_READ and ex.read_end is ReadEnd.NOT_READ:
                    try:
                        chunk = sock.recv(RECV_SIZE)
                    except BlockingIOError:
                        chunk = None
                    except OSError as exc:
                        ex.t_end = time.time()
                        ex.read_end, ex.read_errno = _read_end_of(exc)
                        note("error", call="read", errno=ex.read_errno)
                        return False
                    if chunk == b"":
                        ex.read_end, ex.t_end = ReadEnd.EOF, note("eof")
                        ex.digest.feed(b"")
                        sel.modify(sock, selectors.EVENT_WRITE)
                    elif chunk:
                        ex.take(chunk, note)
                if mask & selectors.EVENT_WRITE:
                    try:
                        ex.sent += sock.send(view[ex.sent : ex.sent + SEND_SIZE])
                    except BlockingIOError:
                        pass
                    except OSError as exc:
                        ex.t_end = ex.t_end or time.time()
                        end, ex.send_errno = _read_end_of(exc)
                        if ex.read_end is ReadEnd.NOT_READ:
                            ex.read_end, ex.read_errno = end, ex.send_errno
                        note("error", call="send", errno=ex.send_errno)
                        return False
    return True


def _read_until(
    sock: socket.socket,
    deadline: float,
    ex: _Exchange,
    note: _Recorder,
    *,
    stop_when_complete: bool = False,
) -> None:
    """recv() until EOF, an error, the deadline, or (control) a complete answer."""
    idle_since = time.monotonic()
    with selectors.DefaultSelector() as sel:
        sel.register(sock, selectors.EVENT_READ)
        while ex.read_end is ReadEnd.NOT_READ:
            if stop_when_complete and ex.digest.complete:
                return
            now = time.monotonic()
            remaining = deadline - now
            wait = remaining
            if stop_when_complete and ex.digest.kind is AnswerKind.RAW and ex.digest.length:
                idle_left = idle_since + RAW_IDLE_SECONDS - now
                if idle_left <= 0:
                    return
                wait = min(wait, idle_left)
            if remaining <= 0:
                ex.read_end, ex.t_end = ReadEnd.TIMEOUT, time.time()
                note("timeout", after=round(remaining, 3))
                return
            if not sel.select(wait):
                continue
            try:
                chunk = sock.recv(RECV_SIZE)
            except BlockingIOError:
                continue
            except OSError as exc:
                ex.t_end = time.time()
                ex.read_end, ex.read_errno = _read_end_of(exc)
                note("error", call="read", errno=ex.read_errno)
                return
            if not chunk:
                ex.read_end, ex.t_end = ReadEnd.EOF, note("eof")
                ex.digest.feed(b"")
                return
            idle_since = time.monotonic()
            ex.take(chunk, note)


def probe_once(
    address: Address,
    payload: bytes,
    mode: Mode,
    *,
    timeout: float,
    connect_timeout: float,
    shown: str,
    kind: AnswerKind = AnswerKind.RAW,
    on_port: Callable[[int], None] | None = None,
) -> tuple[SocketFacts, list[AppEvent]]:
    """One run: connect, send `payload`, end our side per `mode`, observe until `timeout`
    (`on_port`: told our local port before the SYN leaves, see `connect`).

    In the half-close modes the request and the FIN leave in one segment: TCP_CORK on,
    send(), shutdown(SHUT_WR) (or close()), TCP_CORK off. Connection failures raise
    NetworkError; everything after connect() is an observation.
    """
    note = _Recorder()
    sock = connect(address, connect_timeout, shown, on_port)
    local = _endpoint(sock.getsockname())
    # Not getpeername(): a reset that lands right after connect() makes it fail (ENOTCONN).
    peer = _endpoint(address.sockaddr)
    t_connected = note(
        "connected", local=local[0], local_port=local[1], peer=peer[0], peer_port=peer[1]
    )
    ex = _Exchange(AnswerDigest(kind, payload))
    unread = 0
    after_close: AfterClose | None = None
    t_closed: float | None = None
    t_sent: float | None = None
    corked = mode in (Mode.SHUTDOWN, Mode.PARTIAL, Mode.CLOSE)
    deadline = time.monotonic() + timeout
    try:
        sock.setblocking(False)
        if corked:
            cork(sock, True)
        if _send_all(sock, payload, deadline, ex, note):
            t_sent = note("sent", bytes=len(payload), data=printable(payload[:80], 80))
            if mode in (Mode.SHUTDOWN, Mode.PARTIAL):
                try:
                    sock.shutdown(socket.SHUT_WR)
                except OSError as exc:  # reset already (ENOTCONN): reading will tell how
                    note("error", call="shutdown", errno=errno_name(exc.errno))
                else:
                    t_closed = note("shutdown", how="SHUT_WR")
                cork(sock, False)
            elif mode is Mode.CLOSE:
                unread = unread_bytes(sock)
                sock.close()
                t_closed = note("close", unread=unread)
                after_close, ex.t_end = watch_orphan(address.family, local, peer, timeout)
            elif mode is Mode.ABORT:
                unread = unread_bytes(sock)
                abort(sock)
                t_closed = ex.t_end = note("abort", unread=unread)
        if mode.reads and ex.read_end is ReadEnd.NOT_READ:
            _read_until(sock, time.monotonic() + timeout, ex, note)
    finally:
        if sock.fileno() != -1:
            sock.close()
            if mode.reads:
                note("close")
    summary = ex.digest.summary()
    facts = SocketFacts(
        mode=mode,
        local=local,
        peer=peer,
        sent=ex.sent,
        received=summary.length,
        head=summary.head[:HEAD_BYTES],
        read_end=ex.read_end,
        read_errno=ex.read_errno,
        unread_at_close=unread,
        after_close=after_close,
        t_connected=t_connected,
        t_sent=t_sent,
        t_closed=t_closed,
        t_first_byte=ex.t_first,
        t_end=ex.t_end,
        answer=summary,
        request_bytes=len(payload),
    )
    return facts, note.events


def control_once(
    address: Address,
    payload: bytes,
    kind: AnswerKind,
    *,
    timeout: float,
    connect_timeout: float,
    shown: str,
) -> ControlResult:
    """The control request: send, read until the answer is complete (or EOF, or `timeout`),
    then close(). No shutdown(): the server sees no FIN before it has answered."""
    note = _Recorder()
    sock = connect(address, connect_timeout, shown)
    local = _endpoint(sock.getsockname())
    ex = _Exchange(AnswerDigest(kind, payload))
    t_sent = None
    try:
        sock.setblocking(False)
        deadline = time.monotonic() + timeout
        if _send_all(sock, payload, deadline, ex, note):
            t_sent = time.time()
            _read_until(sock, deadline, ex, note, stop_when_complete=True)
    finally:
        sock.close()
    return ControlResult(ex.digest.summary(), ex.read_end, ex.read_errno, local, t_sent, ex.t_first)


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
