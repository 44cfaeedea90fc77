"""Targets: `HOST:PORT`, `[v6]:PORT`, IPv4/IPv6 literals and host names; resolution.

Parsing is pure. Resolution is `tcpclose.addresses.lookup`: getaddrinfo(3), bounded in time.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from tcpclose.addresses import host_port, is_ip, looks_like_hostname, lookup
from tcpclose.errors import NetworkError, UsageError


@dataclass(frozen=True)
class Target:
    """What the user asked to probe: a host (IP literal or name, without brackets), a port."""

    host: str
    port: int

    @property
    def is_literal(self) -> bool:
        return is_ip(self.host)

    def __str__(self) -> str:
        return host_port(self.host, self.port)


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

    IP literals never reach the resolver. Raises NetworkError when the name does not resolve
    or the resolver does not answer in time.
    """
    try:
        family, sockaddr = lookup(target.host, target.port, timeout)
    except TimeoutError as exc:
        raise NetworkError(f"cannot resolve {target.host!r}: {exc}") from exc
    except OSError as exc:
        text = (exc.strerror or str(exc)).lower()
        raise NetworkError(f"cannot resolve {target.host!r}: {text}") from exc
    return Address(family, sockaddr)
