"""One free_port and one wait_listening for every test.

`wait_listening` reads the kernel's socket tables (/proc/net/tcp, tcp6) instead of trying to
connect: a probe connection would show up in the packet captures the tests make, and would be
the server's first (unwanted) client.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

#: how long a server may take to listen on a loaded 2-core machine
READY_DEADLINE = 30.0
_LISTEN = "0A"  #: TCP_LISTEN in /proc/net/tcp's `st` column
_ESTABLISHED = "01"  #: TCP_ESTABLISHED


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (prefer binding port 0 yourself where you can)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _local_ports(state: str) -> list[int]:
    """The local port of every TCP socket in `state` (IPv4 and IPv6), repeats included."""
    ports: list[int] = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == state:
                ports.append(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def listening_ports() -> set[int]:
    """Every TCP port in LISTEN state on this host (IPv4 and IPv6)."""
    return set(_local_ports(_LISTEN))


def wait_established(port: int, count: int = 1, deadline: float = READY_DEADLINE) -> None:
    """Return once `count` connections to the local server `port` are established (the
    server's side of each: local port `port`); RuntimeError after the deadline."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if _local_ports(_ESTABLISHED).count(port) >= count:
            return
        time.sleep(0.01)
    raise RuntimeError(f"fewer than {count} connections to port {port} after {deadline:g} s")


def wait_listening(
    port: int,
    proc: subprocess.Popen[bytes] | subprocess.Popen[str] | None = None,
    deadline: float = READY_DEADLINE,
) -> None:
    """Return once something listens on `port`; RuntimeError when `proc` exits first or the
    deadline passes (the error names which)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if port in listening_ports():
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode} before listening")
        time.sleep(0.01)
    raise RuntimeError(f"nothing listening on port {port} after {deadline:g} s")
