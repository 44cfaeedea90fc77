"""The load generator: steady requests from three kinds of client, every one recorded.

Each worker is one client with at most one connection at a time:

- `new`: connect(), send one request with `Connection: close`, read the answer, close();
- `reuse`: keep-alive; it sends its next request on its connection whatever happened to it
  while idle (a server's FIN does not stop it: it writes on the half-closed connection and
  the server's kernel answers with RST), as many client pools do;
- `check`: keep-alive; before reusing its idle connection it looks (poll() for readability,
  as urllib3's `is_connection_dropped` does: readable while idle means EOF or junk) and opens
  a new one if the server closed it.

Closed loop by default (each worker sends its next request when the last one ends); with a
`rate`, workers take start slots spaced 1/rate apart (never more than `rate` per second).
Everything runs in one asyncio loop (uvloop when installed), with protocol callbacks rather
than streams: per request one future, one timer and one write.
"""

from __future__ import annotations

import asyncio
import errno
import os
import select
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from tcpclose.drain.protocol import AnswerReader, Workload
from tcpclose.drain.records import ClientKind, Outcome, RequestRecord
from tcpclose.errors import errno_name

#: Pause after a failed connect (refused; or EMFILE, EADDRNOTAVAIL here), so that a worker
#: facing a closed port or an exhausted resource does not spin.
REFUSED_PAUSE = 0.05
#: How often the watchdog looks for answers past their deadline (the timeout's resolution).
WATCHDOG_PERIOD = 0.05
#: Upper bound on the requests of one run, whatever the options.
MAX_REQUESTS = 5_000_000

_ANSWERED = (Outcome.OK, Outcome.ERROR_STATUS)
_Result = tuple[Outcome, int | None, int, str | None, bool]


@dataclass(frozen=True)
class LoadOptions:
    host: str
    port: int
    workload: Workload
    concurrency: int = 20
    rate: float | None = None  #: requests/s in total; None: closed loop
    keepalive_share: float = 0.5  #: share of clients that keep connections alive
    check_share: float = 0.5  #: share of those that check an idle connection first
    timeout: float = 5.0  #: seconds for connect() and for each answer

    def kinds(self) -> list[ClientKind]:
        """One kind per worker: new, then reuse, then check."""
        keep = round(self.concurrency * self.keepalive_share)
        check = round(keep * self.check_share)
        reuse = keep - check
        new = self.concurrency - keep
        return [ClientKind.NEW] * new + [ClientKind.REUSE] * reuse + [ClientKind.CHECK] * check


class ClientProtocol(asyncio.Protocol):
    """One client connection; `request()` sends and returns a future of the outcome."""

    __slots__ = ("closed", "deadline", "eof", "http", "loop", "reader", "transport", "waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop, http: bool) -> None:
        self.loop = loop
        self.http = http
        self.transport: asyncio.Transport | None = None
        self.reader: AnswerReader | None = None
        self.waiter: asyncio.Future[_Result] | None = None
        self.deadline = float("inf")  # loop time: the watchdog times the answer out then
        self.eof = False  # the server's FIN arrived
        self.closed = False  # the connection is gone (RST, or both sides closed)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, only alike
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        if reader is None:
            return  # bytes while idle: a `check` client sees them as a dropped connection
        if reader.feed(data):
            self._done(Outcome.ERROR_STATUS if reader.error else Outcome.OK, None)

    def eof_received(self) -> bool:
        self.eof = True
        reader = self.reader
        if reader is not None:
            if reader.eof():
                self._done(Outcome.ERROR_STATUS if reader.error else Outcome.OK, None)
            elif reader.buffer:
                self._done(Outcome.CLOSED_MID_ANSWER, None)
            else:
                self._done(Outcome.CLOSED_WITHOUT_ANSWER, None)
        # True: keep our sending direction open. A `reuse` client may still write on it.
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        reader = self.reader
        if reader is None:
            return
        error = errno_name(getattr(exc, "errno", None)) if exc is not None else None
        if isinstance(exc, ConnectionResetError | BrokenPipeError):
            outcome = Outcome.RESET_MID_ANSWER if reader.buffer else Outcome.RESET_BEFORE_ANSWER
        elif reader.eof():
            outcome = Outcome.ERROR_STATUS if reader.error else Outcome.OK
        else:
            outcome = Outcome.CLOSED_MID_ANSWER if reader.buffer else Outcome.CLOSED_WITHOUT_ANSWER
        self._done(outcome, error)

    def request(self, data: bytes, timeout: float) -> asyncio.Future[_Result]:
        assert self.transport is not None
        self.reader = AnswerReader(self.http)
        self.waiter = waiter = self.loop.create_future()
        self.deadline = self.loop.time() + timeout
        self.transport.write(data)
        if self.eof:
            # The server's FIN came while the connection was idle and this client wrote
            # anyway: its next read() returns 0 at once, unless an RST lands first.
            self.loop.call_soon(self._read_eof)
        return waiter

    def _read_eof(self) -> None:
        if self.reader is not None:
            self._done(Outcome.CLOSED_WITHOUT_ANSWER, None)

    def check_deadline(self, now: float) -> None:
        """Called by the watchdog: no complete answer by the deadline is a time-out."""
        if self.waiter is not None and now >= self.deadline:
            self._done(Outcome.TIMED_OUT, "timeout")

    def _done(self, outcome: Outcome, error: str | None) -> None:
        waiter, reader = self.waiter, self.reader
        self.waiter = self.reader = None
        self.deadline = float("inf")
        if waiter is not None and reader is not None and not waiter.done():
            status = reader.status if self.http else None
            waiter.set_result((outcome, status, len(reader.buffer), error, reader.close_after))

    def dropped(self) -> bool:
        """urllib3's check: is the idle connection readable (EOF, RST or junk) or gone?"""
        if self.closed or self.eof or self.transport is None:
            return True
        sock = self.transport.get_extra_info("socket")
        if sock is None:
            return True
        readable, _, _ = select.select([sock.fileno()], [], [], 0)
        return bool(readable)

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()


class LoadGenerator:
    """Runs the workers until `stop_at` (monotonic), appending to `records`."""

    def __init__(self, options: LoadOptions) -> None:
        self.options = options
        self.records: list[RequestRecord] = []
        self.stop_at = float("inf")
        self.connections = 0
        #: set by the caller when a stop signal was sent: refusals after it are expected
        self.stopping = False
        self._next_slot = 0.0
        self._conns: list[ClientProtocol | None] = []
        self._family = socket.AF_INET6 if ":" in options.host else socket.AF_INET

    async def run(self, on_start: Callable[[], Any] | None = None) -> None:
        loop = asyncio.get_running_loop()
        self._next_slot = time.monotonic()
        kinds = self.options.kinds()
        self._conns = [None] * len(kinds)
        workers = [loop.create_task(self._worker(loop, n, kind)) for n, kind in enumerate(kinds)]
        if on_start is not None:
            on_start()
        watchdog = loop.create_task(self._watchdog(loop))
        try:
            await asyncio.gather(*workers)
        finally:
            watchdog.cancel()

    async def _watchdog(self, loop: asyncio.AbstractEventLoop) -> None:
        """One timer for all clients (a timer per request costs more than the request's
        parsing): every WATCHDOG_PERIOD, time out the answers past their deadline."""
        while True:
            await asyncio.sleep(WATCHDOG_PERIOD)
            now = loop.time()
            for conn in self._conns:
                if conn is not None:
                    conn.check_deadline(now)

    async def _pace(self) -> None:
        rate = self.options.rate
        if not rate:
            return
        now = time.monotonic()
        slot = max(now, self._next_slot)
        self._next_slot = slot + 1.0 / rate
        if slot > now:
            await asyncio.sleep(slot - now)

    def _open_socket(self) -> tuple[socket.socket, int, int]:
        """A non-blocking socket whose connect() is under way: (socket, local port, errno).

        connect() on a non-blocking socket binds the ephemeral port and sends the SYN at once
        (EINPROGRESS); the port is read then, because a connection the server resets loses
        it (the kernel unhashes the socket) and every request must name its connection in
        the capture, the refused and the reset ones too."""
        sock = socket.socket(self._family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            err = sock.connect_ex((self.options.host, self.options.port))
            port = int(sock.getsockname()[1])
        except BaseException:
            sock.close()
            raise
        return sock, port, err

    async def _connect(
        self, loop: asyncio.AbstractEventLoop, sock: socket.socket, err: int
    ) -> ClientProtocol:
        """Waits for the handshake (writable, then SO_ERROR) and wraps the socket."""
        if err in (errno.EINPROGRESS, errno.EAGAIN):
            done = loop.create_future()

            def writable() -> None:
                if not done.done():
                    done.set_result(None)

            loop.add_writer(sock.fileno(), writable)
            try:
                await asyncio.wait_for(done, self.options.timeout)
            finally:
                loop.remove_writer(sock.fileno())
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise _connect_error(err)
        http = self.options.workload.http
        _, protocol = await loop.create_connection(lambda: ClientProtocol(loop, http), sock=sock)
        self.connections += 1
        return protocol

    async def _worker(self, loop: asyncio.AbstractEventLoop, number: int, kind: ClientKind) -> None:
        options = self.options
        payload = (
            options.workload.close_request
            if kind is ClientKind.NEW
            else options.workload.keepalive_request
        )
        records = self.records
        conn: ClientProtocol | None = None
        conn_number, port = -1, 0
        try:
            while time.monotonic() < self.stop_at and len(records) < MAX_REQUESTS:
                if options.rate:
                    await self._pace()
                    if time.monotonic() >= self.stop_at:
                        break
                record = RequestRecord(len(records), kind, number, time.time())
                records.append(record)
                if conn is not None and kind is ClientKind.CHECK and conn.dropped():
                    conn.close()
                    conn = None
                record.reused = conn is not None
                if conn is None:
                    sock = None
                    try:
                        sock, port, err = self._open_socket()  # EMFILE raises here
                        record.local_port = port
                        conn = await self._connect(loop, sock, err)
                    except OSError as exc:
                        if sock is not None:
                            sock.close()
                        self._connect_failed(record, exc)
                        # refused, or no descriptor or port left here: never spin on it
                        await asyncio.sleep(REFUSED_PAUSE)
                        continue
                    except BaseException:  # cancelled mid-handshake: the socket is ours
                        if sock is not None:
                            sock.close()
                        raise
                    conn_number = self.connections
                    self._conns[number] = conn
                record.connection, record.local_port = conn_number, port
                if conn.closed:  # a `reuse` client writing on a connection reset while idle
                    record.outcome, record.error = Outcome.RESET_BEFORE_ANSWER, "ECONNRESET"
                    record.end = time.time()
                    conn = None
                    continue
                result = await conn.request(payload, options.timeout)
                record.end = time.time()
                outcome, record.status, record.answer_bytes, record.error, close_after = result
                record.outcome = outcome
                if outcome is Outcome.TIMED_OUT and conn.transport is not None:
                    conn.transport.abort()
                    conn = None
                elif close_after or kind is ClientKind.NEW or outcome not in _ANSWERED:
                    conn.close()
                    conn = None
        finally:
            if conn is not None:
                conn.close()

    def _connect_failed(self, record: RequestRecord, exc: OSError) -> None:
        record.end = time.time()
        if isinstance(exc, ConnectionRefusedError):
            record.outcome = Outcome.REFUSED
            record.expected = self.stopping
        elif isinstance(exc, TimeoutError):
            record.outcome = Outcome.TIMED_OUT
        else:
            record.outcome = Outcome.RESET_BEFORE_ANSWER
        record.error = "timeout" if isinstance(exc, TimeoutError) else errno_name(exc.errno)


def _connect_error(err: int) -> OSError:
    """The exception connect() would have raised for `err` (ConnectionRefusedError...)."""
    return OSError(err, os.strerror(err))
