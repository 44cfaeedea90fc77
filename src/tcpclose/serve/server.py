"""A small concurrent HTTP/1.1 server that stops the right way: the lesson of `tcpclose serve`.

What "the right way" means, step by step, when SIGTERM (or SIGINT) arrives:

1. Stop accepting, without resetting anyone. New handshakes are refused first (a socket filter
   drops new SYNs, see `tcpclose.serve.listener`), the connections the kernel already queued
   are accepted, and only then is the listening socket closed. Closing it first would reset
   every queued connection: clients that think they are connected, whose request is lost.
2. Answer what is in flight. A request being worked on is answered, with `Connection: close`.
3. Close idle keep-alive connections at a request boundary. An idle connection is not closed
   at once: its client may be sending the next request right now, and a close would race it
   (the keep-alive race: RST, or a FIN in reply to that request). The server waits up to
   `idle_grace` seconds for that next request and answers it with `Connection: close`; a
   connection that stays silent is then closed gracefully.
4. Close gracefully, as nginx's lingering close does: shutdown(SHUT_WR) sends FIN after the
   last answer, then the server keeps reading (and discarding) for at most `linger` seconds
   until the client's FIN. Closing with unread data would make the kernel send RST, and an RST
   can destroy the answer still in the client's receive buffer (RFC 2525, the lesson's case).
5. Exit when every connection is closed (or after `drain_timeout`, aborting what is left).

`--abrupt` does what a naive server does: close the listener (resetting the queue), close every
connection whatever its state, exit. `tcpclose drain` shows the requests that costs.

The event loop is asyncio's, or uvloop's when it is installed.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, cast

from tcpclose.serve.listener import accept_queued, open_listener, refuse_new_handshakes

#: Cap on a request's header block: a client that sends more gets 431 and is closed.
MAX_HEAD = 16 * 1024
#: How long after refusing new SYNs the server still accepts, so that handshakes under way
#: when the filter went on (SYN-ACK sent, final ACK not yet in) land in the queue first.
HANDSHAKE_SETTLE = 0.05


@dataclass(frozen=True)
class ServeOptions:
    """What `tcpclose serve` was asked to do (typed at the CLI boundary)."""

    bind: str = "127.0.0.1"
    port: int = 8080
    delay: float = 0.0  #: seconds each answer takes ("processing")
    abrupt: bool = False  #: stop the wrong way
    idle_grace: float = 1.0  #: draining: how long an idle connection may bring one more request
    linger: float = 2.0  #: lingering read after shutdown(SHUT_WR), as nginx's lingering_time
    drain_timeout: float = 10.0  #: draining: abort what is still open after this long
    body: bytes = b"hello from tcpclose serve\n"


@dataclass
class ServeStats:
    """What the server did, printed when it exits (`--json` prints it as JSON)."""

    port: int = 0
    connections: int = 0
    requests: int = 0
    #: connections accepted from the queue while stopping (step 1)
    accepted_while_stopping: int = 0
    #: answers sent with `Connection: close` because the server was stopping (steps 2, 3)
    closing_answers: int = 0
    #: idle connections closed after `idle_grace` without a new request (step 3)
    idle_closed: int = 0
    #: connections closed by shutdown(SHUT_WR) + lingering read (step 4)
    lingering_closes: int = 0
    #: connections aborted: `--abrupt`, or still open at `drain_timeout`
    aborted: int = 0
    syn_filter: bool = False
    drain_seconds: float = 0.0
    mode: str = "graceful"
    event_loop: str = "asyncio"
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Connection(asyncio.Protocol):
    """One client connection: parse requests, answer them in order, close gracefully."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.pending: deque[tuple[bool, bool]] = deque()  # (keep_alive, head_only) per request
        self.busy = False  # a request is being answered
        self.closing = False  # FIN sent (or about to be): nothing more will be answered
        self.peer_eof = False  # the client half-closed (read returned 0)
        self.timer: asyncio.TimerHandle | None = None

    # -- asyncio's callbacks ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, only alike
        self.transport = cast(asyncio.Transport, transport)
        self.server.connections.add(self)
        self.server.stats.connections += 1
        if self.server.draining:
            self.wait_for_last_request()  # accepted from the queue while stopping

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return  # lingering read: after our FIN, read and discard (step 4)
        self.buffer += data
        self.parse_requests()

    def eof_received(self) -> bool:
        # The client half-closed. Requests it already sent are still answered (the lesson's
        # shutdown case); once they are, the connection is closed. Returning True keeps our
        # own direction open for those answers.
        self.peer_eof = True
        if self.closing or not (self.busy or self.pending):
            self.close_now()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.cancel_timer()
        self.server.connections.discard(self)
        self.server.maybe_done()

    # -- requests and answers --------------------------------------------------------------

    def parse_requests(self) -> None:
        """Cut complete requests out of the buffer (pipelined ones too) and queue them."""
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD:
                    self.reject(b"431 Request Header Fields Too Large")
                return
            head = bytes(self.buffer[:end]).lower()
            length = 0
            keep_alive = not head.split(b"\r\n", 1)[0].endswith(b"http/1.0")
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name, value = name.strip(), value.strip()
                if name == b"content-length":
                    if not value.isdigit():
                        self.reject(b"400 Bad Request")
                        return
                    length = int(value)
                elif name == b"connection":
                    keep_alive = value == b"keep-alive" if not keep_alive else value != b"close"
                elif name == b"transfer-encoding":
                    self.reject(b"501 Not Implemented")  # no request bodies in chunks here
                    return
            if len(self.buffer) < end + 4 + length:
                return  # the body is still coming
            del self.buffer[: end + 4 + length]
            self.cancel_timer()  # a request came: an idle-grace timer is moot
            self.pending.append((keep_alive, head.startswith(b"head ")))
            self.next_request()

    def next_request(self) -> None:
        """Start on the oldest queued request, after `delay` seconds of "processing"."""
        if self.busy or not self.pending or self.closing:
            return
        self.busy = True
        if self.server.options.delay > 0:
            self.timer = self.server.loop.call_later(self.server.options.delay, self.answer)
        else:
            self.answer()

    def answer(self) -> None:
        """Write one answer. While stopping, it says `Connection: close` and is the last."""
        self.timer = None
        keep_alive, head_only = self.pending.popleft()
        last = not keep_alive or self.server.draining or (self.peer_eof and not self.pending)
        body = self.server.options.body
        self.write_response(b"200 OK", body, head_only, last)
        self.server.stats.requests += 1
        if self.server.draining and keep_alive:
            self.server.stats.closing_answers += 1
        self.busy = False
        if last:
            self.close_gracefully()
        else:
            self.next_request()

    def write_response(self, status: bytes, body: bytes, head_only: bool, last: bool) -> None:
        assert self.transport is not None
        head = b"HTTP/1.1 %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n%s\r\n" % (
            status,
            len(body),
            b"Connection: close\r\n" if last else b"",
        )
        self.transport.write(head if head_only else head + body)

    def reject(self, status: bytes) -> None:
        """A request we cannot parse: answer the error and close (nothing else is readable)."""
        self.pending.clear()
        self.write_response(status, b"", False, True)
        self.close_gracefully()

    # -- closing ---------------------------------------------------------------------------

    def wait_for_last_request(self) -> None:
        """Stopping, and this connection is idle: give its client `idle_grace` seconds to
        send one more request (answered with Connection: close); then close it (step 3)."""
        if self.busy or self.pending or self.closing:
            return  # `answer` closes it after the answer
        self.cancel_timer()
        self.timer = self.server.loop.call_later(self.server.options.idle_grace, self.idle_over)

    def idle_over(self) -> None:
        self.timer = None
        self.server.stats.idle_closed += 1
        self.close_gracefully()

    def close_gracefully(self) -> None:
        """shutdown(SHUT_WR) once the answers are written, then a bounded lingering read."""
        if self.closing or self.transport is None:
            return
        self.closing = True
        self.buffer.clear()
        self.server.stats.lingering_closes += 1
        if self.peer_eof:  # the client already sent FIN: nothing more to read, close now
            self.transport.close()
            return
        # write_eof() is shutdown(fd, SHUT_WR), done by the transport after its write buffer
        # is flushed: our answers, then FIN. The client's FIN (eof_received) ends the linger.
        self.transport.write_eof()
        self.cancel_timer()
        self.timer = self.server.loop.call_later(self.server.options.linger, self.close_now)

    def close_now(self) -> None:
        """close(): the write buffer is flushed first, and what the client sent was read."""
        self.timer = None
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Close at once, whatever is in flight (the wrong way, or the drain timeout)."""
        self.cancel_timer()
        self.server.stats.aborted += 1
        if self.transport is not None:
            self.transport.abort()

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class Server:
    """The listener, the live connections, and the stop sequence."""

    def __init__(self, options: ServeOptions, loop: asyncio.AbstractEventLoop) -> None:
        self.options = options
        self.loop = loop
        self.stats = ServeStats(mode="abrupt" if options.abrupt else "graceful")
        self.connections: set[Connection] = set()
        self.draining = False
        self.done = loop.create_future()
        self.listener = open_listener(options.bind, options.port)
        self.stats.port = self.listener.getsockname()[1]
        self.stopping_since = 0.0
        self.pending_tasks: set[asyncio.Task[Any]] = set()
        loop.add_reader(self.listener.fileno(), self.accept_ready)

    def accept_ready(self) -> None:
        """The listener is readable: accept() every queued connection (non-blocking)."""
        for conn in accept_queued(self.listener):
            self.adopt(conn)

    def adopt(self, conn: socket.socket) -> None:
        # TCP_NODELAY: answers leave at once instead of waiting for the client's ACK.
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        task = self.loop.create_task(
            self.loop.connect_accepted_socket(lambda: Connection(self), conn)
        )
        self.pending_tasks.add(task)
        task.add_done_callback(self.pending_tasks.discard)

    def stop(self, signame: str) -> None:
        """The signal handler: the first signal stops the chosen way, a second one aborts."""
        if self.draining:
            self.abort_all()
            return
        self.draining = True
        self.stopping_since = time.monotonic()
        if self.options.abrupt:
            self.close_listener()  # the queued connections are reset by the kernel
            self.abort_all()
            return
        self.stats.syn_filter = refuse_new_handshakes(self.listener)  # step 1
        if not self.stats.syn_filter:
            self.stats.notes.append("the kernel refused the SYN filter: closed the listener")
        self.loop.call_later(HANDSHAKE_SETTLE, self.stop_accepting)
        for connection in list(self.connections):
            connection.wait_for_last_request()  # steps 2 and 3
        self.loop.call_later(self.options.drain_timeout, self.abort_all)  # step 5's bound
        self.maybe_done()

    def stop_accepting(self) -> None:
        """Accept what the kernel queued, then close the listening socket."""
        queued = accept_queued(self.listener)
        self.stats.accepted_while_stopping += len(queued)
        for conn in queued:
            self.adopt(conn)
        self.close_listener()
        self.maybe_done()

    def close_listener(self) -> None:
        if self.listener.fileno() >= 0:
            self.loop.remove_reader(self.listener.fileno())
            self.listener.close()

    def abort_all(self) -> None:
        self.close_listener()
        for connection in list(self.connections):
            connection.abort()
        self.draining = True
        self.finish()

    def maybe_done(self) -> None:
        """Exit once stopping, the listener is closed, and no connection is left (step 5)."""
        if (
            self.draining
            and self.listener.fileno() < 0
            and not self.connections
            and not self.pending_tasks
        ):
            self.finish()

    def finish(self) -> None:
        if not self.done.done():
            self.stats.drain_seconds = round(time.monotonic() - self.stopping_since, 3)
            self.done.set_result(None)


async def _main(options: ServeOptions, ready: Callable[[ServeStats], None]) -> ServeStats:
    loop = asyncio.get_running_loop()
    server = Server(options, loop)
    server.stats.event_loop = type(loop).__module__.split(".")[0]
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, server.stop, signal.Signals(signum).name)
    ready(server.stats)
    await server.done
    # Let the transports finish closing (flushes, close() calls) before the loop ends.
    for _ in range(3):
        await asyncio.sleep(0)
    return server.stats


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop  # type: ignore[no-any-return]


def serve(options: ServeOptions, ready: Callable[[ServeStats], None]) -> ServeStats:
    """Listen, serve until SIGTERM/SIGINT, stop the chosen way; return what was done.

    `ready` is called once the socket listens (the port is in the stats). Raises OSError
    from bind()/listen() (the caller translates it)."""
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(_main(options, ready))
