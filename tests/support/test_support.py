"""The shared helpers themselves, against real sockets and a real nginx."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from support.net import free_port, listening_ports, wait_listening
from support.nginx import nginx, run_nginx  # noqa: F401  (nginx: the fixture under test)


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


def test_run_nginx_on_a_given_port_sized_for_heavy_traffic(tmp_path: Path) -> None:
    """The variant the analyze tests and benchmark use: their port, many connections, no
    access log."""
    port = free_port()
    with run_nginx(
        tmp_path / "nginx", body="sized", port=port, worker_connections=4096, access_log=False
    ) as listening:
        assert listening == port
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
            c.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
            c.shutdown(socket.SHUT_WR)
            reply = b""
            while chunk := c.recv(4096):
                reply += chunk
        assert reply.endswith(b"sized\n")
    conf = (tmp_path / "nginx" / "nginx.conf").read_text()
    assert "worker_connections 4096;" in conf and "access_log off;" in conf
    assert not (tmp_path / "nginx" / "access.log").exists()
