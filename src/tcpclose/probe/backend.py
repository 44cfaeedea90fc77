"""The proxy bench's backend: tcpclose listens where the proxy forwards, and answers late.

`Backend` is a listening socket on a loopback address with one accept thread and one thread
per connection. Each connection is served the same way, so that the client's FIN always
reaches the proxy before any answer exists (no race):

  http  read until the request's header block ends (or EOF), sleep `delay`, write
        `HTTP/1.1 200 OK` with a Content-Length and `Connection: close`, shutdown(SHUT_WR),
        read until EOF, close()
  echo  read until the first bytes (or EOF), sleep `delay`, write back everything read so
        far, then echo what follows at once; on EOF close()

The control request (no FIN, so no race) is answered at once: `delay` is read per connection.

Every syscall's outcome is noted with a timestamp (an `AppEvent` of role "server"), so that
the bench can tell where an answer died: never requested, never answered, written into a
connection the proxy had already closed (ECONNRESET, EPIPE), or delivered.
"""

from __future__ import annotations

import enum
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field

from tcpclose.errors import AddressInUse, UsageError, errno_name, from_oserror
from tcpclose.model.event import AppEvent, EventLog
from tcpclose.probe.answer import printable

Endpoint = tuple[str, int]

BODY = b"hello from the tcpclose backend\n"
HTTP_ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
    + str(len(BODY)).encode()
    + b"\r\nConnection: close\r\n\r\n"
    + BODY
)
RECV_SIZE = 65536
#: a request larger than this is not read further (the backend answers what it has)
MAX_REQUEST = 1 << 20


class BackendKind(enum.StrEnum):
    """What the backend answers."""

    #: a fixed `HTTP/1.1 200 OK` with a body, after the request's header block
    HTTP = "http"
    #: the request's bytes, back
    ECHO = "echo"


@dataclass
class BackendConn:
    """One connection the proxy opened to the backend, filled in by its thread."""

    peer: Endpoint  #: the proxy's end of the backend leg
    local: Endpoint  #: the backend's listening address
    t_accepted: float
    received: int = 0
    t_request: float | None = None  #: the request was complete (or EOF came first)
    t_eof: float | None = None  #: read() = 0: the proxy passed the client's FIN on
    t_answered: float | None = None  #: the answer's write() returned
    answered: int = 0  #: answer bytes written
    write_errno: str | None = None  #: the answer's write failed: the proxy had reset the leg
    read_errno: str | None = None  #: a read failed (ECONNRESET: the proxy's RST)
    t_closed: float | None = None
    delay: float = 0.0  #: this connection's answer delay (the backend's, when accepted)
    log: EventLog = field(default_factory=lambda: EventLog("server"))
    events: list[AppEvent] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)

    def note(self, event: str, **fields: object) -> float:
        record = self.log.emit(event, **fields)
        self.events.append(record)
        return record.t


class Backend:
    """The listening backend; `close()` stops accepting and waits for its connections."""

    def __init__(
        self, host: str, port: int, kind: BackendKind, delay: float, timeout: float
    ) -> None:
        self.kind = kind
        self.delay = delay
        self.timeout = timeout
        self.conns: list[BackendConn] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
            self.sock.listen(64)
        except OSError as exc:
            self.sock.close()
            import errno

            if exc.errno == errno.EADDRINUSE:
                raise AddressInUse(f"--backend {host}:{port}: the address is in use") from exc
            if exc.errno == errno.EADDRNOTAVAIL:
                raise UsageError(
                    f"--backend {host}:{port}: not an address of this machine"
                ) from exc
            raise from_oserror(exc, f"--backend {host}:{port}: cannot listen") from exc
        self.address: Endpoint = (host, int(self.sock.getsockname()[1]))
        self.sock.setblocking(False)
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept_loop, name="backend", daemon=True)
        self._acceptor.start()

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def count(self) -> int:
        with self._lock:
            return len(self.conns)

    def since(self, start: int) -> list[BackendConn]:
        """The connections accepted after the first `start` ones."""
        with self._lock:
            return list(self.conns[start:])

    def wait_done(self, start: int, timeout: float) -> None:
        """Wait (at most `timeout`) for the connections since `start` to finish."""
        end = time.monotonic() + timeout
        for conn in self.since(start):
            conn.done.wait(max(0.0, end - time.monotonic()))

    def close(self) -> None:
        self._stop.set()
        self._acceptor.join(timeout=2)
        for thread in list(self._threads):
            thread.join(timeout=self.timeout + self.delay + 2)
        self.sock.close()

    def _accept_loop(self) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(self.sock, selectors.EVENT_READ)
            while not self._stop.is_set():
                if not sel.select(0.05):
                    continue
                try:
                    conn, peer = self.sock.accept()
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    return
                record = BackendConn(
                    peer=(str(peer[0]), int(peer[1])),
                    local=self.address,
                    t_accepted=0.0,
                    delay=self.delay,
                )
                record.t_accepted = record.note("accepted")
                with self._lock:
                    self.conns.append(record)
                thread = threading.Thread(
                    target=self._serve, args=(conn, record), name="backend-conn", daemon=True
                )
                self._threads = [t for t in self._threads if t.is_alive()] + [thread]
                thread.start()

    def _request_complete(self, data: bytes) -> bool:
        if self.kind is BackendKind.HTTP:
            return b"\r\n\r\n" in data or len(data) >= MAX_REQUEST
        return bool(data)

    def _serve(self, conn: socket.socket, rec: BackendConn) -> None:
        """One connection: read the request, wait `delay`, answer, then finish as the kind says."""
        try:
            self._serve_inner(conn, rec)
        finally:
            conn.close()
            rec.t_closed = rec.note("close")
            rec.done.set()

    def _serve_inner(self, conn: socket.socket, rec: BackendConn) -> None:
        conn.setblocking(False)
        deadline = time.monotonic() + self.timeout + rec.delay
        data = b""
        answer_at: float | None = None
        shut = False
        with selectors.DefaultSelector() as sel:
            sel.register(conn, selectors.EVENT_READ)
            while time.monotonic() < deadline and not self._stop.is_set():
                if answer_at is None and (self._request_complete(data) or rec.t_eof):
                    rec.t_request = time.time()
                    answer_at = time.monotonic() + rec.delay
                due = answer_at is not None and time.monotonic() >= answer_at
                if due and rec.t_answered is None and not rec.write_errno:
                    if not data and rec.t_eof:
                        return  # EOF with no request at all: nothing to answer
                    answer = HTTP_ANSWER if self.kind is BackendKind.HTTP else data
                    if not self._write(conn, rec, answer):
                        return
                    if self.kind is BackendKind.HTTP:
                        try:
                            conn.shutdown(socket.SHUT_WR)
                        except OSError as exc:
                            rec.read_errno = errno_name(exc.errno)
                            return
                        shut = True
                        rec.note("shutdown", how="SHUT_WR")
                if rec.t_eof is not None and (rec.t_answered is not None or shut):
                    return
                wait = deadline - time.monotonic()
                if answer_at is not None and rec.t_answered is None:
                    wait = min(wait, answer_at - time.monotonic())
                if rec.t_eof is not None:  # nothing more to read: wait for the answer's time
                    time.sleep(max(0.0, min(wait, 0.1)))
                    continue
                if wait > 0 and not sel.select(min(wait, 0.1)):
                    continue
                try:
                    chunk = conn.recv(RECV_SIZE)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    rec.read_errno = errno_name(exc.errno)
                    rec.note("error", call="read", errno=rec.read_errno)
                    return
                if not chunk:
                    rec.t_eof = rec.note("eof")
                    continue
                rec.received += len(chunk)
                rec.note("received", bytes=len(chunk), data=printable(chunk[:80], 80))
                if rec.t_answered is not None and self.kind is BackendKind.ECHO:
                    if not self._write(conn, rec, chunk):
                        return
                elif len(data) < MAX_REQUEST:
                    data += chunk

    def _write(self, conn: socket.socket, rec: BackendConn, data: bytes) -> bool:
        """sendall() within the deadline; False (and the errno noted) when the proxy reset."""
        conn.setblocking(True)
        conn.settimeout(self.timeout)
        try:
            conn.sendall(data)
        except OSError as exc:
            rec.write_errno = errno_name(exc.errno) or "timeout"
            rec.note("error", call="write", errno=rec.write_errno)
            return False
        finally:
            conn.setblocking(False)
        first = rec.t_answered is None
        t = rec.note("sent", bytes=len(data))
        if first:
            rec.t_answered = t
        rec.answered += len(data)
        return True
