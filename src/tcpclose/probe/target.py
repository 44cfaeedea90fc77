"""Targets: `HOST:PORT`, `[v6]:PORT`, IPv4/IPv6 literals and host names; resolution.

Parsing is pure. Resolution calls getaddrinfo(3), which may ask the DNS resolver and block for
many seconds; it runs in a daemon thread that we wait for at most `timeout` seconds.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from dataclasses import dataclass

from tcpclose.addresses import is_ip, looks_like_hostname
from tcpclose.errors import NetworkError, UsageError


@dataclass(frozen=True)
class Target:
    """What the user asked to probe: a host (IP literal or name, without brackets), a port."""

    host: str
    port: int

    @property
    def is_literal(self) -> bool:
        try:
            ipaddress.ip_address(self.host.split("%", 1)[0])
        except ValueError:
            return False
        return True

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Address:
    """A resolved target: the address family and the sockaddr tuple for connect()."""

    family: socket.AddressFamily
    sockaddr: tuple

    @property
    def ip(self) -> str:
        return str(self.sockaddr[0])

    @property
    def port(self) -> int:
        return int(self.sockaddr[1])


def parse_target(text: str) -> Target:
    """`127.0.0.1:80`, `[::1]:80`, `localhost:6379` -> Target; UsageError for anything else."""
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise UsageError(f"target {text!r} is not [IPV6]:PORT")
        port_text = rest[1:]
        if not is_ip(host, version=6):
            raise UsageError(f"target {text!r}: {host!r} is not an IPv6 address")
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise UsageError(f"target {text!r} is not HOST:PORT")
        if ":" in host:
            raise UsageError(f"target {text!r}: write IPv6 addresses in brackets, [{host}]:PORT")
        if not is_ip(host) and not looks_like_hostname(host):
            raise UsageError(f"target {text!r}: {host!r} is not an IP address or a host name")
    if not port_text.isascii() or not port_text.isdigit():
        raise UsageError(f"target {text!r}: port {port_text!r} is not a number")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise UsageError(f"target {text!r}: port {port} is out of range 1-65535")
    return Target(host, port)


def resolve(target: Target, timeout: float) -> Address:
    """The first address getaddrinfo() gives for the target, waiting at most `timeout` seconds.

    IP literals never reach the resolver (AI_NUMERICHOST). Raises NetworkError when the name
    does not resolve or the resolver does not answer in time.
    """
    flags = socket.AI_NUMERICHOST if target.is_literal else 0
    outcome: list[object] = []

    def lookup() -> None:
        try:
            outcome.append(
                socket.getaddrinfo(target.host, target.port, 0, socket.SOCK_STREAM, 0, flags)
            )
        except (OSError, UnicodeError) as exc:
            outcome.append(exc)

    thread = threading.Thread(target=lookup, name="resolve", daemon=True)
    thread.start()
    thread.join(timeout)
    if not outcome:
        raise NetworkError(f"cannot resolve {target.host!r}: no answer within {timeout:g} s")
    result = outcome[0]
    if isinstance(result, socket.gaierror):
        text = (result.strerror or str(result)).lower()
        raise NetworkError(f"cannot resolve {target.host!r}: {text}") from result
    if isinstance(result, BaseException):
        raise NetworkError(f"cannot resolve {target.host!r}: {result}") from result
    infos = result
    assert isinstance(infos, list)
    if not infos:
        raise NetworkError(f"cannot resolve {target.host!r}: no addresses")
    family, _type, _proto, _name, sockaddr = infos[0]
    return Address(socket.AddressFamily(family), tuple(sockaddr))
