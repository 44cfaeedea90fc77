"""Real servers on loopback for the probe tests: free ports, throwaway configs, killed after.

Each fixture waits for the port to accept connections (polling connect with a deadline) and
yields the port. Servers that are not installed skip their tests.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.net import free_port, wait_listening
from support.nginx import run_nginx

from .helpers import env

READY_DEADLINE = 20.0


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The shared nginx (tests/support/nginx.py), once per module."""
    with run_nginx(tmp_path_factory.mktemp("nginx"), access_log=False) as port:
        yield port


@pytest.fixture(scope="module")
def redis() -> Iterator[int]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_listening(port, proc)
        yield port
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    root = tmp_path_factory.mktemp("www")
    (root / "index.html").write_text("hello from http.server\n")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_listening(port, proc)
        yield port
    finally:
        stop(proc)


class GraceServer:
    """The project's graceserver (it accepts ONE connection): started per test."""

    def __init__(self, tmp: Path) -> None:
        self.events = tmp / "server-events.jsonl"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tcpclose.lesson.server",
                "--port",
                "0",
                "--delay",
                "0.2",
                "--events",
                str(self.events),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env(),
        )
        self.port = self._wait_port()

    def _wait_port(self) -> int:
        """graceserver writes {"event": "listening", "port": N} once listening."""
        import json

        end = time.monotonic() + READY_DEADLINE
        while time.monotonic() < end:
            if self.events.exists():
                for line in self.events.read_text().splitlines():
                    record = json.loads(line)
                    if record.get("event") == "listening":
                        return int(record["port"])
            if self.proc.poll() is not None:
                raise RuntimeError("graceserver exited before listening")
            time.sleep(0.02)
        raise RuntimeError("graceserver did not listen in time")

    def finish(self, timeout: float = 10.0) -> tuple[int | None, str, str]:
        """Wait for the server to exit (it does after its one connection); (status, out, err)."""
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        return self.proc.returncode, out, err


@pytest.fixture
def graceserver(tmp_path: Path) -> Iterator[GraceServer]:
    server = GraceServer(tmp_path)
    try:
        yield server
    finally:
        stop(server.proc)
        server.proc.communicate()
