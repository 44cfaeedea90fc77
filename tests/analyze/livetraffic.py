"""Real loopback traffic for tests and the benchmark: nginx, tcpdump and small clients.

`free_port` and the nginx starter are the shared ones (tests/support, importable as `support`:
the tests and bench/analyze/run.py put tests/ on sys.path).

Everything runs on 127.0.0.1 on free ports, started here with throwaway configurations in a
temporary directory; readiness is waited for on events (a port accepting, tcpdump saying it
listens), never with fixed sleeps.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from support.net import free_port as free_port  # re-exported: tests and bench import it here
from support.nginx import run_nginx

REQUEST = b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n"


@contextlib.contextmanager
def nginx(tmp: Path, port: int, body: str = "hello from nginx") -> Iterator[int]:
    """nginx on 127.0.0.1:port answering every request with `body` (the shared starter,
    tests/support/nginx.py, sized for the benchmark's traffic)."""
    with run_nginx(
        tmp, body=body, port=port, worker_connections=4096, access_log=False
    ) as listening:
        yield listening


@contextlib.contextmanager
def tcpdump(path: Path, *ports: int, timeout: float = 15.0) -> Iterator[int]:
    """Capture TCP on lo to or from any of `ports` into `path` until the block ends.

    Yields the probe port: tcpdump says "listening" a little before packets really flow into
    the file, so connections to this closed port (refused: SYN, RST) are sent until the first
    one shows in the file. Leave them out with `not port PROBE`. The probe port stays bound
    (not listening, so connections are refused) for the whole capture: freed, any process on
    the machine could pick it as its ephemeral source port and join the capture.
    """
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    probe = holder.getsockname()[1]
    expression = " or ".join(f"tcp port {port}" for port in (*ports, probe))
    proc = subprocess.Popen(
        [
            "tcpdump",
            "-i",
            "lo",
            "--immediate-mode",
            "-U",
            "-B",
            "16384",
            "-n",
            "-w",
            str(path),
            expression,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    # tcpdump says "listening on lo" once the capture is open.
    os.set_blocking(proc.stderr.fileno(), True)
    line = proc.stderr.readline()
    while b"listening on" not in line:
        if not line or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"tcpdump did not start: {line!r}")
        line = proc.stderr.readline()
    try:
        while path.stat().st_size <= 24:
            if time.monotonic() > deadline:
                raise RuntimeError("tcpdump captures nothing")
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", probe), timeout=1).close()
            time.sleep(0.02)
        yield probe
        wait_settled(path)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        holder.close()


def wait_settled(path: Path, quiet: float = 0.3, timeout: float = 15.0) -> None:
    """Wait until the capture file stops growing (tcpdump -U writes each packet at once)."""
    deadline = time.monotonic() + timeout
    size, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        now_size = path.stat().st_size if path.exists() else 0
        if now_size != size:
            size, since = now_size, time.monotonic()
        elif size > 24 and time.monotonic() - since >= quiet:
            return
        time.sleep(0.05)


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def exchange(port: int, kind: str, source: str = "127.0.0.1") -> int:
    """One HTTP/1.0 exchange with the server; returns the client's port.

    graceful: request, read to the server's FIN, close.
    half-close: request, shutdown(SHUT_WR), read to EOF, close.
    reset: request, read the first bytes only, abort (SO_LINGER 0: RST).
    refused: connect to a port nobody listens on (the server's port + 0 is not used: pass it).
    """
    sock = socket.socket()
    sock.settimeout(10)
    try:
        sock.bind((source, 0))
        client_port = sock.getsockname()[1]
        try:
            sock.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return client_port
        if kind == "half-close":
            # Cork so that the FIN leaves with the request: the server cannot answer first.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        sock.sendall(REQUEST)
        if kind == "half-close":
            sock.shutdown(socket.SHUT_WR)
            _read_all(sock)
        elif kind == "reset":
            sock.recv(1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            _read_all(sock)
        return client_port
    finally:
        sock.close()
