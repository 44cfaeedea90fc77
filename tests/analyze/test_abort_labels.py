"""The abort labels on captures of real sockets on loopback, made here with tcpdump.

On the wire, `close()` with unread data and `SO_LINGER {1, 0}` then `close()` after reading
look the same (an RST that ACKs everything, no FIN): both are `abort`, and the reason names
both causes. `rst-unread` is claimed only when the wire proves it: the resetting side's
receive window was closed (its buffer full of data its application had not read).
"""

from __future__ import annotations

import shutil
import socket
import struct
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from livetraffic import tcpdump

from tcpclose.analyze import analyze_files
from tcpclose.analyze.reading import read_rows
from tcpclose.classify import Side, Termination

pytestmark = pytest.mark.skipif(shutil.which("tcpdump") is None, reason="needs tcpdump")

LINGER_0 = struct.pack("ii", 1, 0)


def _server() -> socket.socket:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    return listener


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _wait_rst(client: socket.socket) -> None:
    """Until the client's socket has seen the server's RST (recv fails or returns EOF)."""
    client.settimeout(10)
    try:
        while client.recv(65536):
            pass
    except OSError:
        pass


def _capture(tmp_path: Path, scenario: str) -> Path:
    listener = _server()
    port = listener.getsockname()[1]
    path = tmp_path / f"{scenario}.pcap"
    with tcpdump(path, port) as probe:
        client = socket.create_connection(("127.0.0.1", port), timeout=10)
        server, _ = listener.accept()
        server.settimeout(10)
        if scenario == "linger-after-reading":
            client.sendall(b"request 1")
            assert _recv_exactly(server, 9) == b"request 1"  # read: nothing unread
            server.sendall(b"answer")
            assert _recv_exactly(client, 6) == b"answer"
            client.sendall(b"request 2")
            assert _recv_exactly(server, 9) == b"request 2"
            server.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_0)
            server.close()
        elif scenario == "close-unread":
            client.sendall(b"request 1")
            # wait until the server's kernel has ACKed it (it sits unread in the buffer)
            deadline = time.monotonic() + 10
            while _unread(server) < 9 and time.monotonic() < deadline:
                time.sleep(0.005)
            server.close()  # Linux: unread data -> RST instead of FIN
        elif scenario == "window-full":
            server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            client.setblocking(False)
            sent, stalled_since = 0, None
            deadline = time.monotonic() + 20
            # fill the server's buffer until the client cannot send (zero window)
            while time.monotonic() < deadline:
                try:
                    sent += client.send(b"x" * 65536)
                    stalled_since = None
                except BlockingIOError:
                    stalled_since = stalled_since or time.monotonic()
                    if time.monotonic() - stalled_since > 0.5:
                        break
                    time.sleep(0.01)
            assert sent > 0
            server.close()
        _wait_rst(client)
        client.close()
    listener.close()
    return _only(path, probe)


def _unread(sock: socket.socket) -> int:
    import fcntl
    import termios

    return struct.unpack("i", fcntl.ioctl(sock, termios.FIONREAD, b"\0\0\0\0"))[0]


def _only(path: Path, probe: int) -> Path:
    rows, _ = analyze_files(path, filter=f"not port {probe}")
    assert len(rows) == 1, rows
    return path


def _verdict(path: Path) -> object:
    (row,) = [r for r in read_rows(path) if r.verdict.history.startswith("ShAD")]
    return row.verdict


def test_so_linger_abort_after_reading_is_an_abort_naming_both_causes(tmp_path: Path) -> None:
    v = _verdict(_capture(tmp_path, "linger-after-reading"))
    assert v.termination is Termination.ABORT, v.reason  # type: ignore[attr-defined]
    assert v.first_rst is Side.RESPONDER  # type: ignore[attr-defined]
    reason = v.reason  # type: ignore[attr-defined]
    assert "SO_LINGER {1, 0}" in reason and "unread" in reason and "after receiving all" in reason
    assert "probably" not in reason


def test_close_with_unread_data_is_the_same_abort(tmp_path: Path) -> None:
    """The same wire as SO_LINGER: the label does not claim which of the two it was."""
    v = _verdict(_capture(tmp_path, "close-unread"))
    assert v.termination is Termination.ABORT, v.reason  # type: ignore[attr-defined]
    assert "SO_LINGER {1, 0}" in v.reason and "unread" in v.reason  # type: ignore[attr-defined]


def test_close_with_a_full_buffer_is_proven_unread(tmp_path: Path) -> None:
    v = _verdict(_capture(tmp_path, "window-full"))
    assert v.termination is Termination.RST_UNREAD, v.reason  # type: ignore[attr-defined]
    assert "zero window" in v.reason  # type: ignore[attr-defined]
    assert "w" in v.history  # type: ignore[attr-defined]  # Zeek's zero-window letter
