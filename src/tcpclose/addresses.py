"""Telling IP literals from host names, before anything is sent to a resolver.

The lesson's client and the probe both accept either; text that is neither must be refused
here, in one line, rather than handed to getaddrinfo (which may ask a DNS server).
"""

from __future__ import annotations

import ipaddress


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
