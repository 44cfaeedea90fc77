"""Socket inodes to TCP endpoints, from /proc/PID/net/tcp and tcp6, read beside the trace.

strace's `-yy` would print each socket's endpoints itself, but it looks them up (netlink
sock_diag) while the traced call waits at its entry stop: on a machine with thousands of
sockets that holds every socket call for milliseconds, after the timestamp strace printed, so
a call would land on the diagram before the packets it caused. tcpclose runs strace with `-y`
(`socket:[INODE]`, no lookup, exact stamps) and resolves the inodes here, in its own thread,
while the program runs: a connected socket is still there when its connect() line arrives.
"""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass

Endpoint = tuple[str, int]


def normal_host(host: str) -> str:
    """`::ffff:127.0.0.1` (an IPv4 peer of an IPv6 socket) is 127.0.0.1 on the wire."""
    return host[7:] if host.lower().startswith("::ffff:") and "." in host else host


@dataclass(frozen=True, slots=True)
class SocketName:
    """What -yy says a TCP fd is: an inode, or its local (and remote) endpoint."""

    inode: int | None
    local: Endpoint | None
    remote: Endpoint | None


_INODE = re.compile(r"socket:\[(\d+)\]")
_PID = re.compile(r"^(\d+)\s")
_TCP_STATE_LISTEN = "0A"


def _address(text: str) -> Endpoint:
    """`0100007F:B1E0` (IPv4) or 32 hex digits (IPv6, four host-order words) : port."""
    hex_addr, hex_port = text.split(":")
    raw = bytes.fromhex(hex_addr)
    if len(raw) == 4:
        host = socket.inet_ntop(socket.AF_INET, raw[::-1])
    else:
        words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
        host = socket.inet_ntop(socket.AF_INET6, words)
    return normal_host(host), int(hex_port, 16)


def parse_proc_net_tcp(text: str) -> dict[int, SocketName]:
    """Every socket of a /proc/net/tcp or tcp6 table: inode -> its endpoints (a listener or an
    unconnected socket has no remote)."""
    names: dict[int, SocketName] = {}
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or not fields[9].isdigit():
            continue
        inode = int(fields[9])
        if inode == 0:
            continue  # TIME_WAIT: no socket behind it any more
        try:
            local, remote = _address(fields[1]), _address(fields[2])
        except (ValueError, OSError):
            continue
        connected = remote[1] != 0 and fields[3] != _TCP_STATE_LISTEN
        names[inode] = SocketName(inode, local, remote if connected else None)
    return names


def read_tables(pid: int | None) -> dict[int, SocketName]:
    """The TCP tables of `pid`'s network namespace (ours when it has gone)."""
    names: dict[int, SocketName] = {}
    for table in ("tcp", "tcp6"):
        for path in ([f"/proc/{pid}/net/{table}"] if pid else []) + [f"/proc/net/{table}"]:
            try:
                with open(path, encoding="ascii", errors="replace") as f:
                    names.update(parse_proc_net_tcp(f.read()))
                break
            except OSError:
                continue
    return names


class InodeResolver:
    """Watches trace lines as they arrive and resolves each socket inode they name, once it is
    connected (or at first sight, for sockets that were connected before an attach)."""

    def __init__(self) -> None:
        self.names: dict[int, SocketName] = {}
        self._missed: set[int] = set()  #: not TCP (a UNIX socket), or gone: not asked again
        self._lock = threading.Lock()

    def _wanted(self, line: str) -> list[int]:
        inodes = [int(i) for i in _INODE.findall(line)]
        if not inodes:
            return []
        body = line.split(None, 2)[-1]
        if body.startswith(("socket(", "bind(", "listen(", "close(")):
            return []
        fresh = "connect(" in body or "accept" in body
        with self._lock:
            return [
                i
                for i in inodes
                if (i not in self.names and (fresh or i not in self._missed))
                or (fresh and i in self.names and self.names[i].remote is None)
            ]

    def see(self, line: str) -> None:
        wanted = self._wanted(line)
        if not wanted:
            return
        found = _PID.match(line)
        tables = read_tables(int(found.group(1)) if found else None)
        with self._lock:
            for inode in wanted:
                if inode in tables:
                    self.names[inode] = tables[inode]
                else:
                    self._missed.add(inode)

    def see_all(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.see(line)

    def snapshot(self) -> dict[int, SocketName]:
        with self._lock:
            return dict(self.names)
