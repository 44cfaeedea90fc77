"""Purpose-built endpoints for the kernel facts the lesson states.

Each actor is one small program that plays BOTH sides of one connection on loopback (forking
where the lesson's claim is about processes sharing a socket), in a fixed order, and reports
every call and what it returned as events (`--events FILE`, roles `client` and `server`).
The runner starts the actor, waits for its `listening` event, starts the capture on that port
and then writes `go` on the actor's standard input.

    python -m tcpclose.lab.actors NAME --events FILE
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tcpclose.errors import errno_name
from tcpclose.model.event import EventLog
from tcpclose.sockopts import linger_zero

#: pause that lets loopback deliver a segment and its ACK before the next step
SETTLE = 0.05


@dataclass
class Stage:
    """The listener and one event log per role."""

    listener: socket.socket
    client: EventLog
    server: EventLog

    def pair(self) -> tuple[socket.socket, socket.socket]:
        """connect() and accept(): the client's and the server's socket of one connection."""
        c = socket.create_connection(self.listener.getsockname()[:2], timeout=10)
        c.settimeout(None)
        self.client.emit("connected", text="connect()")
        s, _ = self.listener.accept()
        self.server.emit("accepted", text="accept()")
        return c, s


def call(log: EventLog, call_id: str, label: str, fn: Callable[[], Any]) -> Any:
    """Run one socket call and record it: its stable `call_id` (`close.child`: the syscall,
    then what tells it apart), its display `label`, and what it returned or the errno it raised.

    Returns the call's result, or the OSError it raised (so a script can go on).
    """
    syscall = call_id.split(".", 1)[0]
    own = {"id": call_id, "syscall": syscall, "call": label}
    started_ns = time.time_ns()  # the segment a call makes is sent between start and return
    try:
        result = fn()
    except OSError as exc:
        name = errno_name(exc.errno)
        log.emit("call", **own, errno=name, text=f"{label}: {name}", started_ns=started_ns)
        return exc
    if isinstance(result, bytes):
        shown = result.decode("utf-8", "replace")
        text = f"{label} = {len(result)}" + (f' "{shown}"' if result else " (EOF)")
        log.emit("call", **own, result=len(result), data=shown, text=text, started_ns=started_ns)
    elif isinstance(result, int):
        log.emit("call", **own, result=result, text=f"{label} = {result}", started_ns=started_ns)
    else:
        log.emit("call", **own, result=0, text=label, started_ns=started_ns)
    return result


def settle(seconds: float = SETTLE) -> None:
    time.sleep(seconds)


#: tcpi_state (the first byte of struct tcp_info) of a connection the peer's RST has closed
TCP_CLOSE = 7
#: how long an actor waits for a segment to arrive before going on anyway (loaded machines)
ARRIVAL_DEADLINE = 10.0


def wait_reset(sock: socket.socket, deadline: float = ARRIVAL_DEADLINE) -> None:
    """Wait until the peer's RST has reached `sock` (the kernel moved it to TCP_CLOSE), read
    with getsockopt(TCP_INFO); no read() or write() touches the socket meanwhile."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] == TCP_CLOSE:
            return
        time.sleep(0.001)


def wait_readable(sock: socket.socket, deadline: float = ARRIVAL_DEADLINE) -> None:
    """Wait until data (or EOF) is queued on `sock`, without reading it: select()."""
    select.select([sock], [], [], deadline)


def in_child(log: EventLog, body: Callable[[], None], *, sigpipe_default: bool = False) -> None:
    """fork(): run `body` in the child, then _exit(0); the parent waits for it and records a
    death by signal as a `killed` event (the child could not record it itself)."""
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        try:
            if sigpipe_default:
                signal.signal(signal.SIGPIPE, signal.SIG_DFL)
            body()
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        name = signal.Signals(os.WTERMSIG(status)).name
        log.emit("killed", signal=name, text=f"child killed by {name}")


def fork_and_call(stage: Stage, call_id: str, label: str, fn: Callable[[], Any]) -> None:
    """fork() the server: its socket now has two references; the child makes one call
    (recorded as `call_id`, `label`) and exits, the parent waits for it."""
    stage.server.emit("fork", text="fork(): 2 references")
    in_child(stage.server, lambda: call(stage.server, call_id, label, fn))


# --- the actors ----------------------------------------------------------------------------
#
# Every call that can make a kernel send FIN or RST (close, shutdown, SO_LINGER 0 + close, exit)
# is logged, so that each FIN and RST on the diagram names its real cause.


def exit_without_close(stage: Stage) -> None:
    """The server process exits with exit(0) and never calls close(): does a FIN go out?"""
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:  # the server process
        s, _ = stage.listener.accept()
        stage.server.emit("accepted", text="accept()")
        call(stage.server, "write", "write()", lambda: s.send(b"Hi, data1"))
        settle()
        stage.server.emit("exit", status=0, text="exit(0), no close()")
        os._exit(0)
    c = socket.create_connection(stage.listener.getsockname()[:2], timeout=10)
    stage.client.emit("connected", text="connect()")
    call(stage.client, "read.1", "read()", lambda: c.recv(4096))
    os.waitpid(pid, 0)
    call(stage.client, "read.2", "read()", lambda: c.recv(4096))
    call(stage.client, "close", "close()", c.close)


def exit_unread(stage: Stage) -> None:
    """The server process exits with the client's data unread: FIN, or RST?"""
    sys.stdout.flush()
    c = socket.create_connection(stage.listener.getsockname()[:2], timeout=10)
    stage.client.emit("connected", text="connect()")
    pid = os.fork()
    if pid == 0:  # the server process: accepts, never reads, exits
        conn, _ = stage.listener.accept()
        stage.server.emit("accepted", text="accept()")
        wait_readable(conn)  # the client's data1 is in this socket's receive buffer, unread
        stage.server.emit("exit", status=0, text="exit(0) with 5 bytes unread")
        os._exit(0)
    call(stage.client, "write", "write(data1)", lambda: c.send(b"data1"))
    os.waitpid(pid, 0)
    settle()
    call(stage.client, "read.1", "read()", lambda: c.recv(4096))
    call(stage.client, "read.2", "read()", lambda: c.recv(4096))
    call(stage.client, "close", "close()", c.close)


def unread_data_close(stage: Stage) -> None:
    """close() while the peer's data sits unread in the receive buffer."""
    c, s = stage.pair()
    call(stage.client, "write", "write(data1)", lambda: c.send(b"data1"))
    settle()
    call(stage.server, "close.unread", "close() with 5 bytes unread", s.close)
    settle()
    call(stage.client, "read", "read()", lambda: c.recv(4096))
    call(stage.client, "close", "close()", c.close)


def fork_close(stage: Stage) -> None:
    """After fork() two processes hold the socket: close() in one sends nothing."""
    c, s = stage.pair()
    fork_and_call(stage, "close.child", "close() in child", s.close)
    settle()
    call(stage.server, "write.parent", "write() in parent", lambda: s.send(b"still open"))
    settle()
    call(stage.client, "read.1", "read()", lambda: c.recv(4096))
    call(stage.server, "close.parent", "close() in parent", s.close)
    settle()
    call(stage.client, "read.2", "read()", lambda: c.recv(4096))
    call(stage.client, "close", "close()", c.close)


def fork_shutdown(stage: Stage) -> None:
    """After fork(), shutdown(SHUT_WR) in one process: FIN now, for every holder."""
    c, s = stage.pair()
    fork_and_call(
        stage, "shutdown.wr.child", "shutdown(SHUT_WR) in child", lambda: s.shutdown(socket.SHUT_WR)
    )
    settle()
    call(stage.client, "read", "read()", lambda: c.recv(4096))
    call(stage.server, "write.parent", "write() in parent", lambda: s.send(b"too late"))
    call(stage.client, "write", "write(data1)", lambda: c.send(b"data1"))
    settle()
    call(stage.server, "read.parent", "read() in parent", lambda: s.recv(4096))
    call(stage.server, "close.parent", "close() in parent", s.close)
    call(stage.client, "close", "close()", c.close)


def shut_rd(stage: Stage) -> None:
    """shutdown(SHUT_RD): is buffered data discarded, is new data ACKed and dropped?"""
    c, s = stage.pair()
    call(stage.client, "write.before", "write(before)", lambda: c.send(b"before"))
    settle()
    call(stage.server, "shutdown.rd", "shutdown(SHUT_RD)", lambda: s.shutdown(socket.SHUT_RD))
    s.setblocking(False)
    call(stage.server, "read.1", "read()", lambda: s.recv(4096))
    call(stage.client, "write.after", "write(after)", lambda: c.send(b"after"))
    settle()
    call(stage.server, "read.2", "read()", lambda: s.recv(4096))
    call(stage.server, "read.3", "read()", lambda: s.recv(4096))
    call(stage.server, "write", "write(Hi)", lambda: s.send(b"Hi"))
    settle()
    call(stage.client, "read", "read()", lambda: c.recv(4096))
    call(stage.server, "close", "close()", s.close)
    settle()
    call(stage.client, "close", "close()", c.close)


def shut_wr_write(stage: Stage) -> None:
    """Writing after shutdown(SHUT_WR): which error, which signal; reading still works."""
    c, s = stage.pair()
    call(stage.client, "shutdown.wr", "shutdown(SHUT_WR)", lambda: c.shutdown(socket.SHUT_WR))
    settle()
    call(stage.client, "write.late", "write(late)", lambda: c.send(b"late"))
    in_child(
        stage.client,
        lambda: call(
            stage.client,
            "write.late.sigdfl",
            "write(late), SIGPIPE default",
            lambda: c.send(b"late"),
        ),
        sigpipe_default=True,
    )
    call(stage.server, "read", "read()", lambda: s.recv(4096))
    call(stage.server, "write", "write(Hi)", lambda: s.send(b"Hi"))
    settle()
    call(stage.client, "read.1", "read()", lambda: c.recv(4096))
    call(stage.server, "close", "close()", s.close)
    settle()
    call(stage.client, "read.2", "read()", lambda: c.recv(4096))
    call(stage.client, "close", "close()", c.close)


def shut_rdwr(stage: Stage) -> None:
    """shutdown(SHUT_RDWR) in a forked child: unlike close(), it ignores the reference count."""
    c, s = stage.pair()
    fork_and_call(
        stage,
        "shutdown.rdwr.child",
        "shutdown(SHUT_RDWR) in child",
        lambda: s.shutdown(socket.SHUT_RDWR),
    )
    settle()
    call(stage.client, "read", "read()", lambda: c.recv(4096))
    call(stage.server, "read.parent", "read() in parent", lambda: s.recv(4096))
    call(stage.server, "write.parent", "write() in parent", lambda: s.send(b"Hi"))
    call(stage.server, "close.parent", "close() in parent", s.close)
    settle()
    call(stage.client, "close", "close()", c.close)


def _abort(stage: Stage, c: socket.socket) -> None:
    linger_zero(c)
    call(stage.client, "abort", "SO_LINGER 0, close()", c.close)


def write_after_rst(stage: Stage) -> None:
    """The peer reset the connection: what do the first writes return, and when is SIGPIPE?"""
    c, s = stage.pair()
    _abort(stage, c)
    settle()
    call(stage.server, "write.1", "write() #1", lambda: s.send(b"Hi, data1"))
    call(stage.server, "write.2", "write() #2", lambda: s.send(b"Hi, data2"))
    in_child(
        stage.server,
        lambda: call(
            stage.server, "write.3.sigdfl", "write() #3, SIGPIPE default", lambda: s.send(b"Hi")
        ),
        sigpipe_default=True,
    )
    call(stage.server, "close", "close()", s.close)


def read_after_rst(stage: Stage) -> None:
    """The peer reset the connection: what do the first reads return?"""
    c, s = stage.pair()
    _abort(stage, c)
    settle()
    call(stage.server, "read.1", "read() #1", lambda: s.recv(4096))
    call(stage.server, "read.2", "read() #2", lambda: s.recv(4096))
    call(stage.server, "close", "close()", s.close)


def read_after_rst_queued(stage: Stage) -> None:
    """The peer reset the connection while its data still sat unread here: does read() return
    the queued data, or ECONNRESET?"""
    c, s = stage.pair()
    call(stage.client, "write", "write(data1)", lambda: c.send(b"data1"))
    wait_readable(s)  # data1 is queued here, unread
    _abort(stage, c)
    wait_reset(s)
    call(stage.server, "read.1", "read() #1", lambda: s.recv(4096))
    call(stage.server, "read.2", "read() #2", lambda: s.recv(4096))
    call(stage.server, "read.3", "read() #3", lambda: s.recv(4096))
    call(stage.server, "close", "close()", s.close)


def read_after_rst_close_wait(stage: Stage) -> None:
    """The peer half-closed (this side is in CLOSE_WAIT, its read() returned EOF), then reset:
    is the reset ever reported to read(), or to write()?"""
    c, s = stage.pair()
    call(stage.client, "shutdown.wr", "shutdown(SHUT_WR)", lambda: c.shutdown(socket.SHUT_WR))
    settle()
    call(stage.server, "read.1", "read() #1", lambda: s.recv(4096))
    _abort(stage, c)
    wait_reset(s)  # the RST has arrived: this side is no longer in CLOSE_WAIT
    call(stage.server, "read.2", "read() #2", lambda: s.recv(4096))
    call(stage.server, "read.3", "read() #3", lambda: s.recv(4096))
    call(stage.server, "write", "write(Hi)", lambda: s.send(b"Hi"))
    call(stage.server, "close", "close()", s.close)


def close_flushes(stage: Stage) -> None:
    """close() right after a large write: is the send buffer still delivered before the FIN?"""
    c, s = stage.pair()
    payload = b"x" * (256 * 1024)
    c.setblocking(False)
    sent = call(stage.client, "write", "write(256 KiB)", lambda: c.send(payload))
    c.setblocking(True)
    call(stage.client, "close", "close()", c.close)
    total = 0
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        total += len(chunk)
    stage.server.emit(
        "call",
        id="read.until-eof",
        syscall="read",
        call="read() until EOF",
        result=total,
        text=f"read() until EOF = {total} bytes",
        sent=sent,
    )
    call(stage.server, "close", "close()", s.close)


ACTORS: dict[str, Callable[[Stage], None]] = {
    "exit-without-close": exit_without_close,
    "unread-data-close": unread_data_close,
    "fork-close": fork_close,
    "fork-shutdown": fork_shutdown,
    "shut-rd": shut_rd,
    "shut-wr-write": shut_wr_write,
    "shut-rdwr": shut_rdwr,
    "write-after-rst": write_after_rst,
    "read-after-rst": read_after_rst,
    "read-after-rst-queued": read_after_rst_queued,
    "read-after-rst-close-wait": read_after_rst_close_wait,
    "exit-unread": exit_unread,
    "close-flushes": close_flushes,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tcpclose.lab.actors")
    parser.add_argument("name", choices=sorted(ACTORS))
    parser.add_argument("--events", required=True)
    parser.add_argument("--bind", default="127.0.0.1")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    family = socket.AF_INET6 if ":" in args.bind else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.bind((args.bind, 0))
    listener.listen(8)
    stage = Stage(listener, EventLog("client", args.events), EventLog("server", args.events))
    stage.server.emit("listening", address=args.bind, port=listener.getsockname()[1])
    if sys.stdin.readline().strip() != "go":  # the capture is running once `go` arrives
        return 1
    ACTORS[args.name](stage)
    settle()
    return 0


if __name__ == "__main__":
    sys.exit(main())
