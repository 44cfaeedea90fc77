"""The shared helpers themselves, against real sockets and a real nginx."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from support.net import free_port, listening_ports, wait_listening
from support.nginx import nginx  # noqa: F401  (the fixture under test)


def test_free_port_is_bindable_and_wait_listening_sees_a_listener() -> None:
    port = free_port()
    assert port not in listening_ports()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen(1)
        wait_listening(port, deadline=5)
        assert port in listening_ports()


def test_wait_listening_names_a_dead_server_and_a_deadline() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    proc.wait(timeout=30)
    with pytest.raises(RuntimeError, match="exited with 3 before listening"):
        wait_listening(free_port(), proc, deadline=5)
    with pytest.raises(RuntimeError, match="nothing listening on port"):
        wait_listening(free_port(), deadline=0.05)


def test_wait_listening_makes_no_connection() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        s.setblocking(False)
        wait_listening(s.getsockname()[1], deadline=5)
        with pytest.raises(BlockingIOError):
            s.accept()  # nobody connected to find out


def test_nginx_fixture_answers_http(nginx: int) -> None:  # noqa: F811
    with socket.create_connection(("127.0.0.1", nginx), timeout=10) as c:
        c.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        c.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := c.recv(4096):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"hello from nginx\n")
