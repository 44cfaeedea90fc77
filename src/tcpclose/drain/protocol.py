"""What drain sends and how it knows an answer is complete (pure, no I/O).

HTTP/1.1 answers end by Content-Length, by the chunked terminator, or (no length) by the
server's FIN. Every other preset (the probe's redis, memcached, echo, and `--send`) is a
line protocol: the answer is complete at its first newline.
"""

from __future__ import annotations

from dataclasses import dataclass

from tcpclose.errors import UsageError
from tcpclose.probe.presets import PRESETS, custom, preset, unescape

#: Cap on an answer's header block; more is treated as a complete (bad) answer.
MAX_HEAD = 64 * 1024


@dataclass(frozen=True)
class Workload:
    """The request bytes, per kind of client, and how answers are framed."""

    name: str
    keepalive_request: bytes
    close_request: bytes  #: for clients that use a new connection per request
    http: bool


def http_workload(host: str, port: int, path: str, host_header: str | None) -> Workload:
    if not path.startswith("/"):
        raise UsageError(f"--path must start with '/': {path!r}")
    if host_header is None:
        host_header = f"[{host}]" if ":" in host else host
        if port != 80:
            host_header += f":{port}"
    head = f"GET {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: tcpclose-drain\r\n"
    data = head.encode("ascii", "replace")
    return Workload("http", data + b"\r\n", data + b"Connection: close\r\n\r\n", True)


def workload(
    name: str, host: str, port: int, path: str, host_header: str | None, send: str | None
) -> Workload:
    """The workload for `--preset NAME` or `--send TEXT` (escapes as the probe's)."""
    if send is not None:
        data = custom(unescape(send)).full
        return Workload("custom", data, data, False)
    if name == "http":
        return http_workload(host, port, path, host_header)
    if name not in PRESETS:
        raise UsageError(f"unknown preset {name!r} (try: {', '.join(PRESETS)})")
    data = preset(name, host, port).full
    return Workload(name, data, data, False)


class AnswerReader:
    """Fed the bytes of one answer; says when it is complete, its status, and whether the
    server will close the connection after it."""

    __slots__ = ("buffer", "close_after", "complete", "error", "http", "need", "status")

    def __init__(self, http: bool) -> None:
        self.http = http
        self.buffer = bytearray()
        self.complete = False
        self.status: int | None = None
        self.close_after = False
        self.error = False
        self.need = -1  # total bytes of head + body when known; -2: until FIN; -3: chunked

    def feed(self, data: bytes) -> bool:
        """Add bytes; True once the answer is complete."""
        self.buffer += data
        if not self.http:
            if b"\n" in self.buffer:
                self.complete = True
                self.error = self.buffer.startswith((b"-", b"ERROR", b"SERVER_ERROR"))
            return self.complete
        if self.need == -1:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD:
                    self.complete = self.error = True
                return self.complete
            self._head(bytes(self.buffer[:end]).lower(), end + 4)
        if self.need >= 0:
            self.complete = len(self.buffer) >= self.need
        elif self.need == -3:
            self.complete = self.buffer.endswith(b"\r\n0\r\n\r\n") or self.buffer.endswith(
                b"\n0\r\n\r\n"
            )
        return self.complete

    def _head(self, head: bytes, head_len: int) -> None:
        """Status, length and connection from a lowercased header block (found with find():
        this runs once per answer, tens of thousands of times a second)."""
        space = head.find(b" ")
        try:
            self.status = int(head[space + 1 : space + 4])
        except ValueError:
            self.status = 0
        self.error = not 100 <= self.status < 400
        http10 = head.startswith(b"http/1.0")
        length = _header(head, b"\r\ncontent-length:")
        chunked = b"chunked" in (_header(head, b"\r\ntransfer-encoding:") or b"")
        connection = _header(head, b"\r\nconnection:")
        if connection is None:
            keep_alive = not http10
        elif http10:
            keep_alive = b"keep-alive" in connection
        else:
            keep_alive = b"close" not in connection
        self.close_after = not keep_alive
        if self.status in (204, 304) or 100 <= self.status < 200:
            self.need = head_len
        elif chunked:
            self.need = -3
        elif length is not None and length.isdigit():
            self.need = head_len + int(length)
        else:
            self.need = -2
            self.close_after = True

    def eof(self) -> bool:
        """The server's FIN arrived: True if that completes the answer (no length given)."""
        if self.http and self.need == -2:
            self.complete = True
        return self.complete


def _header(head: bytes, name: bytes) -> bytes | None:
    """The value of header `name` (given as b"\\r\\nname:") in a lowercased head, stripped."""
    at = head.find(name)
    if at < 0:
        return None
    start = at + len(name)
    end = head.find(b"\r\n", start)
    return head[start : end if end >= 0 else len(head)].strip()
