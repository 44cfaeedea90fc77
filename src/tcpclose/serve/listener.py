"""The listening socket, and the one trick that lets a server stop accepting without a loss.

Closing a listening socket resets every connection still waiting in its accept queue: the
kernel completed their handshakes (the clients think they are connected and may already have
sent a request), but the application never accepted them. A server that wants to stop
accepting without losing those must (1) stop new handshakes, (2) accept what is queued, and
only then (3) close the listener.

Step (1) uses a classic-BPF socket filter (setsockopt SO_ATTACH_FILTER) on the listener: the
kernel runs it on every segment that reaches the listening socket, with the data pointer at the
TCP header. The filter drops segments whose flags are SYN without ACK, so no new handshake
starts, while the final ACKs of handshakes already under way still pass and land in the queue.
A client whose SYN was dropped retransmits it after a second and is then refused by the closed
port (RST): it never got a connection, so nothing it sent is lost.
"""

from __future__ import annotations

import ctypes
import socket
import struct

SO_ATTACH_FILTER = 26  # <asm-generic/socket.h>; the socket module does not export it

#: ldb [13]       the TCP flags byte
#: and #0x12      keep SYN (0x02) and ACK (0x10)
#: jeq #0x02      a SYN without ACK: a new handshake
#: ret #0         drop it
#: ret #-1        anything else passes whole
_DROP_NEW_SYNS = (
    (0x30, 0, 0, 13),
    (0x54, 0, 0, 0x12),
    (0x15, 0, 1, 0x02),
    (0x06, 0, 0, 0),
    (0x06, 0, 0, 0xFFFFFFFF),
)


def open_listener(host: str, port: int, backlog: int = 1024) -> socket.socket:
    """socket() + setsockopt(SO_REUSEADDR) + bind() + listen(), non-blocking."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # SO_REUSEADDR: a restarted server may bind while old connections sit in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def refuse_new_handshakes(sock: socket.socket) -> bool:
    """Attach the SYN-dropping filter; False if this kernel refused it (then the accept queue
    is still drained, with a tiny window in which a late handshake may be reset)."""
    code = b"".join(struct.pack("HBBI", *insn) for insn in _DROP_NEW_SYNS)
    buffer = ctypes.create_string_buffer(code)
    # struct sock_fprog { unsigned short len; struct sock_filter *filter; }
    program = struct.pack("HL", len(_DROP_NEW_SYNS), ctypes.addressof(buffer))
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, program)
    except OSError:
        return False
    return True


def accept_queued(sock: socket.socket) -> list[socket.socket]:
    """accept() until EAGAIN: every connection the kernel has queued, non-blocking."""
    accepted: list[socket.socket] = []
    while True:
        try:
            conn, _ = sock.accept()
        except (BlockingIOError, InterruptedError):
            return accepted
        except ConnectionAbortedError:  # that one is gone already: try the next
            continue
        except OSError:  # EMFILE and the like: stop here, the rest stays queued
            return accepted
        conn.setblocking(False)
        accepted.append(conn)
