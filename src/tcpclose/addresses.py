"""Telling IP literals from host names, before anything is sent to a resolver.

The lesson's client and the probe both accept either; text that is neither must be refused
here, in one line, rather than handed to getaddrinfo (which may ask a DNS server).
"""

from __future__ import annotations

import ipaddress
import socket
import threading


def is_ip(text: str, version: int | None = None) -> bool:
    """An IPv4 or IPv6 literal (an IPv6 zone such as `%lo` allowed), of `version` if given."""
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    return version is None or ip.version == version


def looks_like_hostname(text: str) -> bool:
    """A syntactically valid host name: RFC 1123 labels (letters, digits, inner hyphens).

    An all-numeric top label is no host name (RFC 3696 section 2): `1.2.3` and `300.1.1.1` are
    bad IP addresses, not names to look up (nor to parse the inet_aton way).
    """
    if not text or len(text) > 253:
        return False
    labels = text.rstrip(".").split(".")
    if labels[-1].isdigit():
        return False
    return all(
        0 < len(label) <= 63
        and label.isascii()
        and all(ch.isalnum() or ch == "-" for ch in label)
        and not label.startswith("-")
        and not label.endswith("-")
        for label in labels
    )


def host_port(host: str, port: int) -> str:
    """`127.0.0.1:43211`, `[::1]:43211`."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def lookup(host: str, port: int, timeout: float) -> tuple[socket.AddressFamily, tuple]:
    """The first (family, sockaddr) getaddrinfo(3) gives for a TCP connection to host:port,
    waiting at most `timeout` seconds.

    IP literals never reach a resolver (AI_NUMERICHOST). A host name may: getaddrinfo can block
    for many seconds asking DNS, so it runs in a daemon thread we wait for. Raises
    socket.gaierror when the name does not resolve, TimeoutError when no answer came in time.
    """
    flags = socket.AI_NUMERICHOST if is_ip(host) else 0
    outcome: list[object] = []

    def ask() -> None:
        try:
            outcome.append(socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM, 0, flags))
        except (OSError, UnicodeError) as exc:
            outcome.append(exc)

    thread = threading.Thread(target=ask, name="getaddrinfo", daemon=True)
    thread.start()
    thread.join(timeout if timeout > 0 else None)
    if not outcome:
        raise TimeoutError(f"no answer within {timeout:g} s")
    result = outcome[0]
    if isinstance(result, UnicodeError):
        raise socket.gaierror(socket.EAI_NONAME, str(result))
    if isinstance(result, BaseException):
        raise result
    assert isinstance(result, list)
    if not result:
        raise socket.gaierror(socket.EAI_NONAME, "no addresses")
    family, _type, _proto, _name, sockaddr = result[0]
    return socket.AddressFamily(family), tuple(sockaddr)
