"""Purpose-built endpoints on loopback (real sockets, in threads), one per verdict class, so
every exit status of the probe is produced by a real connection."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable, Iterator

import pytest

from tcpclose.probe.verdict import ProbeExit

from .helpers import probe_json

Handler = Callable[[socket.socket, int], None]


class Endpoint:
    """Accepts connections in a thread and hands each one, with its number, to `handler`."""

    def __init__(self, handler: Handler) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.handler = handler
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        count = 0
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            count += 1
            self.held.append(conn)
            conn.settimeout(10)
            with contextlib.suppress(OSError):  # the probe may reset first
                self.handler(conn, count)

    def close(self) -> None:
        self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        for conn in self.held:
            conn.close()


def read_to_eof(conn: socket.socket) -> bytes:
    data = b""
    while chunk := conn.recv(4096):
        data += chunk
    return data


def rst(conn: socket.socket) -> None:
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def answer_then_close(conn: socket.socket, _n: int) -> None:
    read_to_eof(conn)
    conn.sendall(b"answer\n")
    conn.close()


def close_on_eof(conn: socket.socket, _n: int) -> None:
    """Treats the half-close as the end: closes without answering (Docker's old proxy)."""
    read_to_eof(conn)
    conn.close()


def reset_on_eof(conn: socket.socket, _n: int) -> None:
    read_to_eof(conn)
    rst(conn)


def answer_then_reset(conn: socket.socket, _n: int) -> None:
    read_to_eof(conn)
    conn.sendall(b"part of the ans")
    rst(conn)


def answer_keep_open(conn: socket.socket, _n: int) -> None:
    conn.recv(4096)
    conn.sendall(b"answer\n")  # and never close: held until the test ends


def silent(conn: socket.socket, _n: int) -> None:
    conn.recv(4096)


def alternate(conn: socket.socket, n: int) -> None:
    (answer_then_close if n % 2 else close_on_eof)(conn, n)


@pytest.fixture
def endpoint(request: pytest.FixtureRequest) -> Iterator[Endpoint]:
    server = Endpoint(request.param)
    yield server
    server.close()


CASES = [
    (answer_then_close, "graceful", ProbeExit.OK),
    (close_on_eof, "closed-without-answer", ProbeExit.CLOSED_WITHOUT_ANSWER),
    (reset_on_eof, "reset-without-answer", ProbeExit.RESET),
    (answer_then_reset, "answer-then-reset", ProbeExit.RESET),
    (answer_keep_open, "answered-kept-open", ProbeExit.HANG),
    (silent, "no-answer", ProbeExit.HANG),
]


@pytest.mark.parametrize(
    ("endpoint", "verdict", "status"),
    CASES,
    indirect=["endpoint"],
    ids=[case[1] for case in CASES],
)
def test_each_verdict_class(capsys, endpoint: Endpoint, verdict: str, status: ProbeExit) -> None:
    rc, doc = probe_json(
        capsys, f"127.0.0.1:{endpoint.port}", "--preset", "echo", "--timeout", "1.5"
    )
    run = doc["runs"][0]
    assert (run["verdict"], rc, run["exit_class"]) == (verdict, status, status.name.lower())
    if verdict == "answer-then-reset":
        assert run["socket"]["first_line"] == "part of the ans"
        assert run["socket"]["read_errno"] == "ECONNRESET"
    if run["packets"] is not None and verdict.startswith("reset"):
        assert run["packets"]["peer_rst_t"] is not None


@pytest.mark.parametrize("endpoint", [alternate], indirect=True)
def test_repeat_reports_unstable_verdicts(capsys, endpoint: Endpoint) -> None:
    rc, doc = probe_json(
        capsys, f"127.0.0.1:{endpoint.port}", "--preset", "echo", "--repeat", "4", "--no-control"
    )
    assert rc == ProbeExit.UNSTABLE == 13
    assert doc["stable"] is False
    assert [run["verdict"] for run in doc["runs"]] == ["graceful", "closed-without-answer"] * 2
    assert doc["verdicts"] == {"graceful": 2, "closed-without-answer": 2}


@pytest.mark.parametrize("endpoint", [answer_then_close], indirect=True)
def test_send_escapes_reach_the_wire(capsys, endpoint: Endpoint) -> None:
    rc, doc = probe_json(capsys, f"127.0.0.1:{endpoint.port}", "--send", "PING\\r\\n\\x00")
    assert rc == 0
    assert doc["runs"][0]["socket"]["bytes_sent"] == 7
    assert doc["request"] == {"name": "custom", "bytes": 7}


def reset_on_request(conn: socket.socket, _n: int) -> None:
    """Resets as soon as the request arrives: the RST races the probe's shutdown(SHUT_WR),
    which then fails with ENOTCONN in some runs."""
    conn.recv(1)
    rst(conn)


@pytest.mark.parametrize("endpoint", [reset_on_request], indirect=True)
def test_a_reset_racing_our_shutdown_is_a_verdict_not_a_traceback(
    capsys, endpoint: Endpoint
) -> None:
    rc, doc = probe_json(
        capsys, f"127.0.0.1:{endpoint.port}", "--send", "x", "--repeat", "30", "--no-capture"
    )
    verdicts = {run["verdict"] for run in doc["runs"]}
    assert verdicts == {"reset-without-answer"}, doc["runs"]
    assert rc == ProbeExit.RESET and doc["stopped"] is None


def test_repeat_stops_when_the_target_stops_answering(capsys) -> None:
    """Answers once, then the port is closed: run 2 is refused. That is not a stable server."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def once() -> None:
        conn, _ = listener.accept()
        listener.close()
        answer_then_close(conn, 1)

    server = threading.Thread(target=once, daemon=True)
    server.start()
    port = listener.getsockname()[1]
    rc, doc = probe_json(
        capsys, f"127.0.0.1:{port}", "--preset", "echo", "--repeat", "3", "--no-control"
    )
    server.join(10)
    assert [run["verdict"] for run in doc["runs"]] == ["graceful"]
    assert doc["stopped"].startswith("run 2: cannot connect") and "refused" in doc["stopped"]
    assert rc == ProbeExit.UNSTABLE and doc["stable"] is False
