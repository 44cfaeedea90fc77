"""`tcpclose serve` on real sockets: answers, and each step of its graceful stop, one by one."""

from __future__ import annotations

import json
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

TCPCLOSE = [sys.executable, "-m", "tcpclose"]
REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


class Served:
    def __init__(self, *options: str) -> None:
        self.proc = subprocess.Popen(
            [*TCPCLOSE, "serve", "--port", "0", "--json", *options],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()  # "listening on 127.0.0.1:PORT ..."
        assert "listening on 127.0.0.1:" in line, line
        self.port = int(line.split("127.0.0.1:")[1].split()[0])

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)

    def stop(self, signum: int = signal.SIGTERM) -> None:
        self.proc.send_signal(signum)

    def finish(self) -> dict[str, object]:
        out, err = self.proc.communicate(timeout=30)
        assert self.proc.returncode == 0, err
        return json.loads(out)


@pytest.fixture
def served() -> Iterator[list[Served]]:
    started: list[Served] = []
    yield started
    for s in started:
        s.proc.kill()
        s.proc.wait()


def _start(served: list[Served], *options: str) -> Served:
    s = Served(*options)
    served.append(s)
    return s


def read_answer(sock: socket.socket) -> bytes:
    """One answer: the head, then Content-Length bytes."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def read_until_eof(sock: socket.socket) -> bytes:
    """Everything until the server's FIN; raises ConnectionResetError on RST."""
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


def wait_readable(sock: socket.socket, timeout: float) -> bool:
    return bool(select.select([sock], [], [], timeout)[0])


def test_answers_keep_alive_and_pipelined_requests(served: list[Served]) -> None:
    s = _start(served)
    with s.connect() as sock:
        sock.sendall(REQUEST)
        first = read_answer(sock)
        assert first.startswith(b"HTTP/1.1 200 OK\r\n") and b"Connection: close" not in first
        sock.sendall(REQUEST * 3)  # pipelined: answered in order, on the same connection
        data = b""
        while data.count(b"hello from tcpclose serve\n") < 3:
            chunk = sock.recv(4096)
            assert chunk, data
            data += chunk
        assert data.count(b"HTTP/1.1 200 OK\r\n") == 3
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert b"Connection: close" in read_answer(sock)
        assert read_until_eof(sock) == b""  # FIN after the last answer
    s.stop()
    assert s.finish()["requests"] == 5


def test_half_closed_client_still_gets_its_answer(served: list[Served]) -> None:
    s = _start(served, "--delay", "0.2")
    with s.connect() as sock:
        sock.sendall(REQUEST)
        sock.shutdown(socket.SHUT_WR)  # the lesson's half-close
        answer = read_until_eof(sock)
    assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"serve\n")
    s.stop()
    s.finish()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_in_flight_request_is_answered_with_connection_close(
    served: list[Served], signum: int
) -> None:
    s = _start(served, "--delay", "0.5")
    with s.connect() as sock:
        sock.sendall(REQUEST)
        time.sleep(0.1)  # the request is being "processed" (0.5 s) when the signal comes
        s.stop(signum)
        answer = read_until_eof(sock)  # an RST would raise here
    assert answer.startswith(b"HTTP/1.1 200 OK") and b"Connection: close\r\n" in answer
    stats = s.finish()
    assert stats["closing_answers"] == 1 and stats["aborted"] == 0
    assert stats["syn_filter"] is True


def test_idle_connection_gets_one_more_request_then_close(served: list[Served]) -> None:
    s = _start(served, "--idle-grace", "2")
    with s.connect() as sock:
        sock.sendall(REQUEST)
        read_answer(sock)
        s.stop()
        time.sleep(0.3)  # stopping, and this connection is idle: it is not closed at once
        assert not wait_readable(sock, 0)
        sock.sendall(REQUEST)  # the client's next request, racing the stop: answered
        answer = read_until_eof(sock)
    assert b"Connection: close\r\n" in answer and answer.endswith(b"serve\n")
    assert s.finish()["closing_answers"] == 1


def test_silent_idle_connection_is_closed_gracefully(served: list[Served]) -> None:
    s = _start(served, "--idle-grace", "0.2", "--linger", "5")
    with s.connect() as sock:
        sock.sendall(REQUEST)
        read_answer(sock)
        s.stop()
        assert wait_readable(sock, 10)
        assert sock.recv(10) == b""  # FIN, not RST
        time.sleep(0.2)
        assert s.proc.poll() is None  # lingering: still reading until our FIN
        sock.shutdown(socket.SHUT_WR)
    stats = s.finish()
    assert stats["idle_closed"] == 1 and stats["lingering_closes"] == 1


def test_queued_connection_is_accepted_and_answered(served: list[Served]) -> None:
    s = _start(served, "--delay", "0.3")
    # Connections whose requests are in the accept queue or in flight at the signal: all
    # answered, none reset.
    socks = [s.connect() for _ in range(20)]
    for sock in socks:
        sock.sendall(REQUEST)
    s.stop()
    for sock in socks:
        with sock:
            assert read_until_eof(sock).startswith(b"HTTP/1.1 200 OK")
    assert s.finish()["requests"] == 20


def test_new_connections_after_the_signal_are_refused_not_reset(served: list[Served]) -> None:
    s = _start(served, "--delay", "0.5")
    busy = s.connect()
    busy.sendall(REQUEST)
    time.sleep(0.1)
    s.stop()
    time.sleep(0.2)  # the listener is closed by now (50 ms after the signal)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", s.port), timeout=3)
    with busy:
        assert read_until_eof(busy).startswith(b"HTTP/1.1 200 OK")
    s.finish()


def test_abrupt_loses_the_request_in_flight(served: list[Served]) -> None:
    s = _start(served, "--delay", "1", "--abrupt")
    with s.connect() as sock:
        sock.sendall(REQUEST)
        time.sleep(0.1)
        s.stop()
        try:
            data = read_until_eof(sock)
        except ConnectionResetError:
            data = b""
    assert data == b""
    stats = s.finish()
    assert stats["mode"] == "abrupt" and stats["aborted"] == 1


def test_bad_request_gets_400_and_close(served: list[Served]) -> None:
    s = _start(served)
    with s.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nContent-Length: nope\r\n\r\n")
        assert read_until_eof(sock).startswith(b"HTTP/1.1 400 Bad Request")
    s.stop()
    s.finish()


def test_text_summary(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [*TCPCLOSE, "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    assert "listening on" in proc.stderr.readline()
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert out.startswith("tcpclose serve: stopped graceful in ")


def test_port_in_use_and_bad_port() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [*TCPCLOSE, "serve", "--port", str(port)], capture_output=True, text=True, timeout=20
        )
    assert done.returncode == 6
    assert done.stderr.startswith(f"tcpclose: error: cannot listen on 127.0.0.1:{port}: ")
    done = subprocess.run(
        [*TCPCLOSE, "serve", "--port", "http"], capture_output=True, text=True, timeout=20
    )
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1


def test_output_to_a_full_disk_is_one_error_line() -> None:
    with open("/dev/full", "w") as full:
        proc = subprocess.Popen(
            [*TCPCLOSE, "serve", "--port", "0", "--json"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stderr is not None
        assert "listening on" in proc.stderr.readline()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 5  # ExitStatus.INPUT: the output cannot be written
    assert err.strip() == (
        "tcpclose: error: cannot write standard output: no space left on device (ENOSPC)"
    )
