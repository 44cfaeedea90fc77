"""An answer, digested as it arrives, and the comparison of two answers (pure: no I/O).

The probe compares the answer to its half-closed request with the answer to the same request
sent without half-closing (the control). What is compared depends on the protocol:

  http   the status line and the body length (h11 frames the response: Content-Length,
         chunked, or up to EOF), never the whole bytes (dates and ids change between answers)
  line   the first reply line (Redis, memcached)
  raw    every byte, as a length and a SHA-256 (so a large answer costs no memory); a control
         that never saw EOF (the server stays open) is compared as a prefix

`AnswerDigest.complete` tells the control when to stop reading: the HTTP response ended, the
first line arrived, or (raw) EOF; a raw control also stops after `RAW_IDLE_SECONDS` of silence.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from typing import Any

import h11

#: how many bytes of an answer are kept as its head (first line, status line)
HEAD_BYTES = 512
#: a raw control answer is complete after this long without a new byte (the server stays open)
RAW_IDLE_SECONDS = 0.2
#: answers up to this size are also kept whole, so a difference can be shown as text
KEEP_BYTES = 4096


class AnswerKind(enum.StrEnum):
    """How answers to this request are compared."""

    HTTP = "http"
    LINE = "line"
    RAW = "raw"


_HTTP_METHODS = (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"TRACE")


def kind_for(request_name: str, request: bytes) -> AnswerKind:
    """The comparison kind for a request: by preset, or HTTP when the bytes are an HTTP request."""
    if request_name == "http":
        return AnswerKind.HTTP
    if request_name in ("redis", "memcached"):
        return AnswerKind.LINE
    first = request.split(b"\r\n", 1)[0].split(b" ")
    if len(first) == 3 and first[0] in _HTTP_METHODS and first[2].startswith(b"HTTP/1."):
        return AnswerKind.HTTP
    return AnswerKind.RAW


def printable(data: bytes, limit: int = 120) -> str:
    """Bytes as one printable line: \\r, \\n, \\t and other controls escaped, cut at `limit`."""
    text = data.decode("utf-8", "replace")
    out = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
    return out if len(out) <= limit else out[: limit - 1] + "…"


@dataclass(frozen=True)
class AnswerSummary:
    """What is compared of one answer, and how it is shown."""

    kind: AnswerKind
    length: int  #: bytes received
    sha256: str  #: of every byte received
    first_line: str | None  #: printable, without its line ending
    body_length: int | None = None  #: http: the body's length (decoded from chunks)
    framing_error: str | None = None  #: http: the response did not parse
    eof: bool = False  #: the answer ended with the server's FIN
    head: bytes = b""

    def describe(self) -> str:
        """`HTTP/1.1 200 OK (612 B body)`, `+PONG`, `26 B sha256 1f2e3d4c`."""
        if self.length == 0:
            return "no answer"
        if self.kind is AnswerKind.HTTP and self.framing_error is None:
            return f"{self.first_line} ({self.body_length} B body)"
        if self.kind is AnswerKind.LINE or (self.kind is AnswerKind.HTTP and self.first_line):
            return f"{self.first_line} ({self.length} B)"
        return f"{self.length} B, sha256 {self.sha256[:12]}"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "bytes": self.length,
            "sha256": self.sha256,
            "first_line": self.first_line,
            "body_bytes": self.body_length,
            "framing_error": self.framing_error,
            "eof": self.eof,
            "shown": self.describe(),
        }


class AnswerDigest:
    """Takes an answer chunk by chunk: length, SHA-256, head, and (http) h11's framing."""

    def __init__(self, kind: AnswerKind, request: bytes = b"GET / HTTP/1.1\r\n") -> None:
        self.kind = kind
        self.length = 0
        self.head = b""
        self.kept = b""
        self.eof = False
        self._hash = hashlib.sha256()
        self._http: h11.Connection | None = None
        self._body = 0
        self._ended = False
        self._framing_error: str | None = None
        if kind is AnswerKind.HTTP:
            self._http = h11.Connection(h11.CLIENT)
            method = request.split(b" ", 1)[0] or b"GET"
            try:
                self._http.send(h11.Request(method=method, target="/", headers=[("Host", "probe")]))
            except h11.LocalProtocolError:
                self._http.send(h11.Request(method="GET", target="/", headers=[("Host", "p")]))

    def feed(self, chunk: bytes) -> None:
        """Bytes of the answer, in order; b"" is EOF (the server's FIN)."""
        if not chunk:
            self.eof = True
        else:
            self.length += len(chunk)
            self._hash.update(chunk)
            if len(self.head) < HEAD_BYTES:
                self.head += chunk[: HEAD_BYTES - len(self.head)]
            if len(self.kept) <= KEEP_BYTES:
                self.kept += chunk[: KEEP_BYTES + 1 - len(self.kept)]
        if self._http is not None and self._framing_error is None and not self._ended:
            self._feed_http(chunk)

    def _feed_http(self, chunk: bytes) -> None:
        assert self._http is not None
        try:
            self._http.receive_data(chunk)
            while True:
                event = self._http.next_event()
                if event is h11.NEED_DATA or event is h11.PAUSED:
                    return
                if isinstance(event, h11.Data):
                    self._body += len(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    self._ended = True
                    return
                elif isinstance(event, h11.ConnectionClosed):
                    return
        except h11.RemoteProtocolError as exc:
            self._framing_error = str(exc) or type(exc).__name__

    @property
    def complete(self) -> bool:
        """Enough of the answer to compare it: HTTP message ended, first line, or EOF."""
        if self.eof:
            return True
        if self.kind is AnswerKind.HTTP:
            return self._ended or self._framing_error is not None
        if self.kind is AnswerKind.LINE:
            return b"\n" in self.head
        return False

    def summary(self) -> AnswerSummary:
        first = None
        if self.head:
            first = printable(self.head.split(b"\n", 1)[0].rstrip(b"\r"))
        framing = self._framing_error
        if self.kind is AnswerKind.HTTP and framing is None and not self._ended and self.length:
            framing = "the response ended before its end (incomplete)"
        return AnswerSummary(
            kind=self.kind,
            length=self.length,
            sha256=self._hash.hexdigest(),
            first_line=first,
            body_length=self._body if self.kind is AnswerKind.HTTP else None,
            framing_error=framing if self.kind is AnswerKind.HTTP else None,
            eof=self.eof,
            head=self.kept,
        )


def answer_change(control: AnswerSummary, after: AnswerSummary) -> str | None:
    """Why the answer after a half-close differs from the control's; None when it does not.

    Both must be answers (length > 0); the caller judges a missing answer on its own.
    """
    if control.kind is AnswerKind.HTTP and control.framing_error is None:
        if after.first_line != control.first_line:
            return "the status line differs"
        if after.framing_error is not None:
            return f"the response is cut short ({after.framing_error})"
        if after.body_length != control.body_length:
            return "the body length differs"
        return None
    if control.kind in (AnswerKind.LINE, AnswerKind.HTTP):
        return None if after.first_line == control.first_line else "the first line differs"
    if control.eof:
        if (after.length, after.sha256) != (control.length, control.sha256):
            return "the bytes differ"
        return None
    # The control saw no EOF (the server stays open): its bytes must begin the answer.
    if after.length < control.length or not _same_prefix(control, after):
        return "the bytes differ"
    return None


def _same_prefix(control: AnswerSummary, after: AnswerSummary) -> bool:
    if control.length <= KEEP_BYTES and len(after.head) >= control.length:
        return after.head[: control.length] == control.head[: control.length]
    # Too large to keep: only equal lengths can be compared (by hash).
    return control.length == after.length and control.sha256 == after.sha256
