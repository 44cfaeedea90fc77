"""`--filter`: a BPF-like expression that selects connections by host, network and port.

Grammar (BPF's words, applied to a connection as a whole, both directions)::

    expr    := term ("or" term)*
    term    := factor ("and" factor)*
    factor  := "not" factor | "(" expr ")" | primitive
    primitive := "host" ADDRESS | "net" CIDR | "port" NUMBER | "portrange" N-M | "tcp"

`and`/`&&`, `or`/`||`, `not`/`!` are accepted. Addresses are IPv4 or IPv6 literals: host names
are never resolved. `src`/`dst` qualifiers are refused: the filter picks whole connections.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

from tcpclose.errors import UsageError

Endpoints = tuple[str, int, str, int]
Test = Callable[[Endpoints], bool]

_TOKEN = re.compile(r"\s*(\(|\)|&&|\|\||!|[^\s()!]+)")


class ConnectionFilter:
    """A compiled filter expression; `matches(src, sport, dst, dport)` for one connection."""

    def __init__(self, expression: str) -> None:
        self.expression = expression
        self._tokens = _tokenize(expression)
        self._pos = 0
        if not self._tokens:
            raise UsageError("empty --filter expression")
        self._test = self._expr()
        if self._pos != len(self._tokens):
            raise UsageError(f"--filter: unexpected {self._tokens[self._pos]!r}")

    def matches(self, src: str, sport: int, dst: str, dport: int) -> bool:
        return self._test((src, sport, dst, dport))

    def _peek(self) -> str | None:
        return self._tokens[self._pos] if self._pos < len(self._tokens) else None

    def _take(self) -> str:
        token = self._peek()
        if token is None:
            raise UsageError(f"--filter: {self.expression!r} ends too early")
        self._pos += 1
        return token

    def _expr(self) -> Test:
        tests = [self._term()]
        while self._peek() in ("or", "||"):
            self._take()
            tests.append(self._term())
        return tests[0] if len(tests) == 1 else (lambda c: any(t(c) for t in tests))

    def _term(self) -> Test:
        tests = [self._factor()]
        while self._peek() in ("and", "&&"):
            self._take()
            tests.append(self._factor())
        return tests[0] if len(tests) == 1 else (lambda c: all(t(c) for t in tests))

    def _factor(self) -> Test:
        token = self._take()
        if token in ("not", "!"):
            inner = self._factor()
            return lambda c: not inner(c)
        if token == "(":
            inner = self._expr()
            if self._take() != ")":
                raise UsageError("--filter: missing ')'")
            return inner
        return self._primitive(token)

    def _primitive(self, word: str) -> Test:
        if word == "tcp":
            return lambda c: True
        if word in ("src", "dst"):
            raise UsageError(
                f"--filter: {word!r} is not supported: the filter selects whole connections "
                "(use host, net, port)"
            )
        if word == "host":
            return _host(self._take())
        if word == "net":
            return _net(self._take())
        if word == "port":
            port = _port(self._take())
            return lambda c: c[1] == port or c[3] == port
        if word == "portrange":
            low, _, high = self._take().partition("-")
            lo, hi = _port(low), _port(high)
            return lambda c: lo <= c[1] <= hi or lo <= c[3] <= hi
        raise UsageError(
            f"--filter: unknown word {word!r} (supported: host, net, port, portrange, tcp, "
            "and, or, not, parentheses)"
        )


def _tokenize(text: str) -> list[str]:
    tokens = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:  # pragma: no cover - the pattern matches any non-space
            raise UsageError(f"--filter: cannot read {text[pos:]!r}")
        tokens.append(m.group(1))
        pos = m.end()
    return tokens


def _host(text: str) -> Test:
    try:
        address = str(ipaddress.ip_address(text))
    except ValueError:
        raise UsageError(
            f"--filter: {text!r} is not an IP address (host names are not resolved)"
        ) from None
    return lambda c: c[0] == address or c[2] == address


def _net(text: str) -> Test:
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise UsageError(f"--filter: {text!r} is not a network (for example 10.0.0.0/8)") from None
    return lambda c: ipaddress.ip_address(c[0]) in network or ipaddress.ip_address(c[2]) in network


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise UsageError(f"--filter: {text!r} is not a port number")
    return int(text)
