"""What one probe run observed, as plain data: the socket's view and, with capture, the packets'.

Nothing here does I/O; `packet_facts` is a pure function of captured packets. The packets are
read through the shared facts layer (`tcpclose.facts.RunFacts`, the probe as the client):
`PacketFacts` is the probe's extension of those facts, not a second reading of the packets.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tcpclose.facts import RunFacts
from tcpclose.model.packet import Packet
from tcpclose.model.timeline import Role, Timeline
from tcpclose.probe.answer import AnswerSummary

Endpoint = tuple[str, int]


class Mode(enum.StrEnum):
    """How the probe ends its side of the connection after sending the request."""

    #: shutdown(SHUT_WR): the kernel sends FIN; we keep reading (half-close)
    SHUTDOWN = "shutdown"
    #: close(): both directions; data that arrives afterwards is answered with RST
    CLOSE = "close"
    #: SO_LINGER {on, 0} then close(): the kernel sends RST at once
    ABORT = "abort"
    #: an incomplete request, then shutdown(SHUT_WR)
    PARTIAL = "partial"
    #: nothing: keep the connection open and read, to see who closes first
    NONE = "none"

    @property
    def reads(self) -> bool:
        """Does the probe read the answer in this mode (it cannot after close or abort)?"""
        return self in (Mode.SHUTDOWN, Mode.PARTIAL, Mode.NONE)


class ReadEnd(enum.StrEnum):
    """How our reading of the answer ended."""

    #: recv() returned 0: the server's FIN arrived
    EOF = "eof"
    #: recv() failed with ECONNRESET: the server's RST arrived
    RESET = "reset"
    #: nothing ended the connection within --timeout
    TIMEOUT = "timeout"
    #: recv() failed with another errno (read_errno says which)
    ERROR = "error"
    #: the mode does not read (close, abort)
    NOT_READ = "not-read"


class AfterClose(enum.StrEnum):
    """close mode without capture: what became of our orphaned socket (from /proc/net/tcp)."""

    #: TIME_WAIT or CLOSING: the server's FIN arrived, and no data (data would have drawn RST)
    PEER_FIN = "peer-fin"
    #: the socket vanished: reset, either by the server or by us on its late answer
    GONE = "gone"
    #: still FIN_WAIT at the timeout: the server has not closed
    OPEN = "open"
    #: /proc/net/tcp could not be read
    UNKNOWN = "unknown"


#: how many bytes of the answer are kept, for its first line
HEAD_BYTES = 512


@dataclass(frozen=True)
class SocketFacts:
    """What the socket told us. Times are seconds since the epoch (time.time())."""

    mode: Mode
    local: Endpoint
    peer: Endpoint
    sent: int  #: request bytes written
    received: int  #: answer bytes read
    head: bytes  #: the first HEAD_BYTES bytes of the answer
    read_end: ReadEnd
    read_errno: str | None = None  #: "ECONNRESET", ... when the read failed
    unread_at_close: int = 0  #: bytes waiting unread when we closed/aborted (ioctl FIONREAD)
    after_close: AfterClose | None = None  #: close mode only
    t_connected: float | None = None
    t_sent: float | None = None
    t_closed: float | None = None  #: our shutdown()/close() call (the FIN or RST leaves then)
    t_first_byte: float | None = None
    t_end: float | None = None  #: the read ended (EOF, error, timeout) or the close was seen
    answer: AnswerSummary | None = None  #: the answer, digested (length, hash, framing)
    request_bytes: int = 0  #: the request's length (sent may be less: reset, timeout)

    @property
    def first_line(self) -> str | None:
        """The answer's first line, decoded leniently, without its line ending."""
        if not self.head:
            return None
        line = self.head.split(b"\n", 1)[0].rstrip(b"\r")
        text = line.decode("utf-8", "replace")
        return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)[:120]

    @property
    def close_to_end(self) -> float | None:
        """Seconds from our FIN/RST to the end we saw at socket level (EOF, RST, TIME_WAIT)."""
        if self.t_closed is None or self.t_end is None:
            return None
        if self.read_end in (ReadEnd.EOF, ReadEnd.RESET) or self.after_close in (
            AfterClose.PEER_FIN,
            AfterClose.GONE,
        ):
            return max(0.0, self.t_end - self.t_closed)
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": str(self.mode),
            "local": list(self.local),
            "peer": list(self.peer),
            "bytes_sent": self.sent,
            "bytes_received": self.received,
            "first_line": self.first_line,
            "read_end": str(self.read_end),
            "read_errno": self.read_errno,
            "unread_at_close": self.unread_at_close,
            "after_close": str(self.after_close) if self.after_close else None,
            "t_connected": self.t_connected,
            "t_sent": self.t_sent,
            "t_closed": self.t_closed,
            "t_first_byte": self.t_first_byte,
            "t_end": self.t_end,
            "close_to_end_s": self.close_to_end,
            "request_bytes": self.request_bytes,
            "answer": self.answer.to_json() if self.answer else None,
        }


@dataclass(frozen=True)
class ControlResult:
    """The same request without a half-close: read the answer, then close()."""

    answer: AnswerSummary
    read_end: ReadEnd  #: NOT_READ when the answer was complete before any end
    read_errno: str | None
    local: tuple[str, int]
    t_sent: float | None
    t_first_byte: float | None

    @property
    def usable(self) -> bool:
        """A complete answer to compare with: something arrived, and it was not cut by a reset."""
        return self.answer.length > 0 and self.read_end in (ReadEnd.NOT_READ, ReadEnd.EOF)

    def to_json(self) -> dict[str, Any]:
        return {
            "answer": self.answer.to_json(),
            "read_end": "complete" if self.read_end is ReadEnd.NOT_READ else str(self.read_end),
            "read_errno": self.read_errno,
            "local": list(self.local),
            "usable": self.usable,
            "t_sent": self.t_sent,
            "t_first_byte": self.t_first_byte,
        }


@dataclass(frozen=True)
class PacketFacts:
    """What the packets of our one connection show. Times are seconds since the epoch."""

    packets: int
    peer_bytes: int  #: payload bytes the server sent
    peer_bytes_after_our_close: int  #: of which after our FIN or RST
    our_close: str | None  #: "FIN" or "RST": how our side ended first
    our_close_t: float | None
    peer_fin_t: float | None
    peer_rst_t: float | None
    our_rst_t: float | None
    #: our FIN carried request bytes: the request and the FIN left in one segment
    fin_with_request: bool = False
    #: the server's first answer (data, FIN or RST) after the handshake
    peer_first_reply_t: float | None = None
    #: that first answer acknowledged our FIN: the server's kernel had our FIN when it left
    peer_reply_acked_our_fin: bool | None = None
    peer_first_data_t: float | None = None
    #: answer bytes that arrived before our first FIN or RST (close mode: before close())
    peer_bytes_before_our_close: int = 0
    #: the shared facts these were read from (None when built by hand); not in the JSON
    run: RunFacts | None = field(default=None, compare=False, repr=False)

    @property
    def half_close_exercised(self) -> bool:
        """Did our FIN reach the server before the first byte (or FIN, RST) of its answer left?

        Judged by sequence numbers, not clocks: the server's first answering segment
        acknowledges our FIN only if its kernel had received the FIN when it sent it. No
        answering segment at all (a timeout) also counts: the FIN was there, unanswered.
        """
        if self.our_close != "FIN":
            return False
        if self.peer_first_reply_t is None:
            return True
        return bool(self.peer_reply_acked_our_fin)

    @property
    def peer_end_t(self) -> float | None:
        """The server's first FIN or RST."""
        times = [t for t in (self.peer_fin_t, self.peer_rst_t) if t is not None]
        return min(times) if times else None

    @property
    def first_closer(self) -> str | None:
        """ "client" or "server": whose FIN or RST came first (None if neither closed)."""
        peer = self.peer_end_t
        if peer is None and self.our_close_t is None:
            return None
        if peer is None or (self.our_close_t is not None and self.our_close_t <= peer):
            return "client"
        return "server"

    @property
    def close_to_peer_end(self) -> float | None:
        """Seconds from our first FIN/RST to the server's first FIN/RST, when ours came first."""
        if self.first_closer != "client" or self.our_close_t is None or self.peer_end_t is None:
            return None
        return self.peer_end_t - self.our_close_t

    def to_json(self) -> dict[str, Any]:
        return {
            "packets": self.packets,
            "peer_bytes": self.peer_bytes,
            "peer_bytes_after_our_close": self.peer_bytes_after_our_close,
            "our_close": self.our_close,
            "our_close_t": self.our_close_t,
            "peer_fin_t": self.peer_fin_t,
            "peer_rst_t": self.peer_rst_t,
            "our_rst_t": self.our_rst_t,
            "first_closer": self.first_closer,
            "close_to_peer_end_s": self.close_to_peer_end,
            "fin_with_request": self.fin_with_request,
            "peer_first_reply_t": self.peer_first_reply_t,
            "peer_reply_acked_our_fin": self.peer_reply_acked_our_fin,
            "peer_first_data_t": self.peer_first_data_t,
            "peer_bytes_before_our_close": self.peer_bytes_before_our_close,
            "half_close_exercised": self.half_close_exercised,
        }


def connection_packets(packets: Iterable[Packet], local: Endpoint, peer: Endpoint) -> list[Packet]:
    """The packets of the one connection local <-> peer, in time order."""
    pair = {(local, peer), (peer, local)}
    return sorted(
        (p for p in packets if (p.src_endpoint, p.dst_endpoint) in pair), key=lambda p: p.t
    )


def _covers(ack: int, seq_end: int) -> bool:
    """ack >= seq_end in sequence-number arithmetic (RFC 1982, modulo 2**32)."""
    return (ack - seq_end) & 0xFFFFFFFF < 0x80000000


def packet_facts(packets: Iterable[Packet], local: Endpoint, peer: Endpoint) -> PacketFacts:
    """Summarise one connection's packets from our side (`local`) and the server's (`peer`):
    the shared run facts of its timeline (we are its client), read by `facts_of_run`."""
    mine = connection_packets(packets, local, peer)
    run = RunFacts.of(Timeline.build(mine, server=peer, client=local))
    return facts_of_run(run)


def facts_of_run(run: RunFacts) -> PacketFacts:
    """The probe's packet facts, read from the shared RunFacts of one connection whose client
    is us: our first FIN or RST, the server's first FIN and RST, our first RST and the answer
    bytes before and after our close come straight from it. Only what is the probe's own is
    computed here, from the segments' sequence numbers: whether our FIN rode on the request,
    and whether the server's first reply acknowledged our FIN (the half-close was exercised).
    """
    us, server = Role.CLIENT, Role.SERVER
    ours = run.first_end(us)
    our_rst = run.first_with("rst", by=us)
    peer_fin = run.first_with("fin", by=server)
    peer_rst = run.first_with("rst", by=server)
    syn = next((w for w in run.wire(by=us) if w.packet.syn), None)
    #: the sequence number of our request's first byte (the end of our SYN)
    request_start = syn.packet.seq_end if syn is not None else None
    our_fin = ours if ours is not None and ours.packet.fin else None
    peer_bytes = before = after = 0
    peer_first_reply_t = peer_first_data_t = None
    reply_acked: bool | None = None
    for w in run.wire(by=server):
        p = w.packet
        peer_bytes += p.length
        if ours is not None and w.index > ours.index:
            after += p.length
        else:
            before += p.length
        if p.length and peer_first_data_t is None:
            peer_first_data_t = p.t
        if peer_first_reply_t is not None or p.syn:
            continue
        # A greeting sent before our request arrived (SMTP, FTP banners) answers nothing: a
        # data segment is an answer once it acknowledges at least one byte of the request.
        request_seen = request_start is not None and syn is not None and syn.index < w.index
        answers_request = request_seen and _covers(p.ack, (request_start or 0) + 1)
        if p.fin or p.rst or (p.length and answers_request):
            peer_first_reply_t = p.t
            fin_end = our_fin.packet.seq_end if our_fin and our_fin.index < w.index else None
            if fin_end is not None and p.has_ack:
                reply_acked = _covers(p.ack, fin_end)
            elif fin_end is not None and p.rst:
                reply_acked = True  # an RST without ACK after our FIN was sent: its reply
            else:
                reply_acked = False
    return PacketFacts(
        packets=len(run.segments),
        peer_bytes=peer_bytes,
        peer_bytes_after_our_close=after,
        our_close=None if ours is None else ("RST" if ours.packet.rst else "FIN"),
        our_close_t=None if ours is None else ours.packet.t,
        peer_fin_t=None if peer_fin is None else peer_fin.packet.t,
        peer_rst_t=None if peer_rst is None else peer_rst.packet.t,
        our_rst_t=None if our_rst is None else our_rst.packet.t,
        fin_with_request=our_fin is not None and our_fin.packet.length > 0,
        peer_first_reply_t=peer_first_reply_t,
        peer_reply_acked_our_fin=reply_acked,
        peer_first_data_t=peer_first_data_t,
        peer_bytes_before_our_close=before,
        run=run,
    )
