"""What the probe sends: presets for common protocols, `--send` text with escapes (pure).

Every request has two forms: `full`, a complete request the server can answer, and `partial`,
a prefix the server cannot answer yet (for `--mode partial`).
"""

from __future__ import annotations

from dataclasses import dataclass

from tcpclose.errors import UsageError


@dataclass(frozen=True)
class Request:
    """The bytes to send; `partial` is a strict prefix of `full` that is not yet a request."""

    name: str  #: "http", "redis", ..., or "custom"
    full: bytes
    partial: bytes

    def payload(self, partial: bool) -> bytes:
        return self.partial if partial else self.full


PRESETS: dict[str, str] = {
    "http": "HTTP/1.1 GET / with a Host header (no Connection: close)",
    "redis": "the Redis command PING, in RESP",
    "memcached": "the memcached text command version",
    "echo": "one line of text, for echo-like servers",
}


def preset(name: str, host: str, port: int) -> Request:
    """The preset request `name` for a server at host:port (HTTP needs the Host header)."""
    if name == "http":
        host_header = f"[{host}]" if ":" in host else host
        if port != 80:
            host_header += f":{port}"
        head = (
            f"GET / HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: tcpclose-probe\r\n"
            "Accept: */*\r\n"
        ).encode("ascii", "replace")
        # Partial: the header block without its final empty line, so it is never complete.
        return Request(name, head + b"\r\n", head)
    if name == "redis":
        return Request(name, b"*1\r\n$4\r\nPING\r\n", b"*1\r\n$4\r\nPI")
    if name == "memcached":
        return Request(name, b"version\r\n", b"vers")
    if name == "echo":
        return Request(name, b"hello from tcpclose probe\n", b"hello from tcp")
    raise UsageError(f"unknown preset {name!r} (try: {', '.join(PRESETS)})")


def custom(data: bytes) -> Request:
    """`--send`/`--send-file` bytes; the partial form is the first half (at least one byte)."""
    if not data:
        raise UsageError("nothing to send: the request is empty")
    return Request("custom", data, data[: max(1, len(data) // 2)] if len(data) > 1 else data)


_SIMPLE = {"n": "\n", "r": "\r", "t": "\t", "0": "\0", "\\": "\\", "e": "\x1b", "a": "\a"}


def unescape(text: str) -> bytes:
    """`--send` text to bytes: \\r \\n \\t \\0 \\e \\a \\\\ and \\xHH; the rest is UTF-8.

    Bytes of the command line that are not UTF-8 (Python holds them as surrogate escapes)
    are sent as they were given.

    Raises UsageError for an unknown escape or a bad \\x, naming it.
    """
    out = bytearray()
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "\\":
            out += ch.encode("utf-8", "surrogateescape")
            i += 1
            continue
        if i + 1 >= len(text):
            raise UsageError("--send: a lone backslash ends the text (write \\\\)")
        code = text[i + 1]
        if code in _SIMPLE:
            out += _SIMPLE[code].encode("ascii")
            i += 2
        elif code == "x":
            digits = text[i + 2 : i + 4]
            if len(digits) != 2 or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise UsageError(f"--send: bad escape \\x{digits} (want \\xHH)")
            out.append(int(digits, 16))
            i += 4
        else:
            raise UsageError(f"--send: unknown escape \\{code}")
    return bytes(out)
