"""Canned conversations: packets and both programs' events on a fixed clock, no kernel
involved, each with the facts it must produce. One table, shared by the facts, lab-verdict,
classifier and renderer tests (golden files are drawn from `close` and `shutdown`).

Times are milliseconds from T0. A call's event is logged when the call returns; the calls that
can send (close, shutdown, abort) also carry `started_ns`, as the real programs write them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tcpclose.capture.session import CaptureResult
from tcpclose.lab.processes import ProcessOutcome
from tcpclose.lab.runner import LabRun
from tcpclose.lab.scenarios import BY_NAME
from tcpclose.lab.verdicts import judge
from tcpclose.model.event import AppEvent
from tcpclose.model.packet import Flag, Packet
from tcpclose.model.timeline import Timeline

T0 = 1_700_000_000.0
CLIENT = ("127.0.0.1", 50000)
SERVER = ("127.0.0.1", 43211)
A, S, F, R, P = Flag.ACK, Flag.SYN, Flag.FIN, Flag.RST, Flag.PSH


def pkt(
    ms: float, sender: str, flags: int, data: bytes = b"", seq: int = 0, ack: int = 0
) -> Packet:
    src, dst = (CLIENT, SERVER) if sender == "client" else (SERVER, CLIENT)
    return Packet(T0 + ms / 1000, *src, *dst, int(flags), seq, ack, 65535, len(data), data)


def ns(ms: float) -> int:
    return int((T0 + ms / 1000) * 1e9)


def ev(ms: float, role: str, name: str, **fields: Any) -> AppEvent:
    """An event at `ms`; a `started` keyword (ms) becomes the record's `started_ns`."""
    if "started" in fields:
        fields["started_ns"] = ns(fields.pop("started"))
    return AppEvent(ns(ms), role, name, dict(fields))


HANDSHAKE = (pkt(0.0, "client", S), pkt(0.1, "server", S | A), pkt(0.2, "client", A))


@dataclass(frozen=True)
class Mark:
    """What a FIN or RST must be found to be: its sender, the id of the call that caused it
    (None: no call logged before it) and the payload of the segment it answered."""

    by: str
    cause: str | None
    in_reply_to: str | None = None


@dataclass(frozen=True)
class Expected:
    termination: str
    first_fin: Mark | None
    first_rst: Mark | None
    fins: tuple[str, ...]
    rsts: tuple[str, ...]
    delivered: tuple[str, ...] = ()
    lost: tuple[str, ...] = ()
    errors: dict[str, tuple[str, ...]] = field(default_factory=dict)  #: role -> errnos


@dataclass(frozen=True)
class Conversation:
    name: str
    why: str
    packets: tuple[Packet, ...]
    events: tuple[AppEvent, ...]
    expected: Expected

    def timeline(self) -> Timeline:
        return Timeline.build(self.packets, self.events, server=SERVER, start=T0)


CLOSE = Conversation(
    "close",
    "the lesson's close experiment: RST in reply to Hi, data1, the server killed by SIGPIPE",
    (
        *HANDSHAKE,
        pkt(100.0, "client", P | A, b"data1"),
        pkt(100.1, "server", A),
        pkt(200.0, "client", P | A, b"data2"),
        pkt(200.1, "server", A),
        pkt(300.0, "client", F | A),
        pkt(300.1, "server", A),
        pkt(600.0, "server", P | A, b"Hi, data1"),
        pkt(600.1, "client", R),
    ),
    (
        ev(0.3, "client", "connected"),
        ev(0.3, "server", "accepted"),
        ev(100.2, "server", "received", bytes=5, data="data1"),
        ev(300.05, "client", "close", started=299.95),
        ev(600.2, "server", "sent", bytes=9, data="Hi, data1"),
        ev(600.3, "server", "received", bytes=5, data="data2"),
        ev(1100.0, "server", "killed", signal="SIGPIPE"),
    ),
    Expected(
        "rst-after-close",
        first_fin=Mark("client", "close"),
        first_rst=Mark("client", "close", "Hi, data1"),
        fins=("client",),
        rsts=("client",),
    ),
)

SHUTDOWN = Conversation(
    "shutdown",
    "the lesson's shutdown experiment: both answers delivered, FIN both ways",
    (
        *HANDSHAKE,
        pkt(100.0, "client", P | A, b"data1"),
        pkt(200.0, "client", P | A, b"data2"),
        pkt(300.0, "client", F | A),
        pkt(600.0, "server", P | A, b"Hi, data1"),
        pkt(600.1, "client", A),
        pkt(1100.0, "server", P | A, b"Hi, data2"),
        pkt(1100.1, "client", A),
        pkt(1100.5, "server", F | A),
        pkt(1100.6, "client", A),
    ),
    (
        ev(300.05, "client", "shutdown", how="SHUT_WR", reason="command", started=299.95),
        ev(600.2, "client", "received", bytes=9, data="Hi, data1"),
        ev(1100.2, "client", "received", bytes=9, data="Hi, data2"),
        ev(1100.4, "server", "eof"),
        ev(1100.7, "client", "eof"),
        ev(1100.8, "client", "exit", status=1),
    ),
    Expected(
        "half-close",
        first_fin=Mark("client", "shutdown.shut_wr"),
        first_rst=None,
        fins=("client", "server"),
        rsts=(),
    ),
)

#: the close experiment with the client's writes logged and markup in the answer and the
#: transcript (the HTML and SVG tests check the escaping on it)
CLOSE_MARKUP = Conversation(
    "close-markup",
    "the close experiment with its writes logged; the answer's text needs escaping",
    (
        *HANDSHAKE,
        pkt(5.0, "client", P | A, b"data1"),
        pkt(5.1, "server", A),
        pkt(10.0, "client", P | A, b"data2"),
        pkt(15.0, "client", F | A),
        pkt(505.0, "server", P | A, b"Hi, <data1> & 'more'"),
        pkt(505.1, "client", R),
    ),
    (
        ev(0.3, "client", "connected"),
        ev(0.4, "server", "accepted"),
        ev(5.05, "client", "sent", bytes=5, data="data1"),
        ev(5.2, "server", "received", bytes=5, data="data1"),
        ev(10.05, "client", "sent", bytes=5, data="data2"),
        ev(15.05, "client", "close", started=14.95),
        ev(505.05, "server", "sent", bytes=9, data="Hi, data1"),
        ev(505.2, "server", "received", bytes=5, data="data2"),
        ev(1006.0, "server", "killed", signal="SIGPIPE"),
    ),
    Expected(
        "rst-after-close",
        first_fin=Mark("client", "close"),
        first_rst=Mark("client", "close", "Hi, <data1> & 'more'"),
        fins=("client",),
        rsts=("client",),
        lost=("Hi, data1", "Hi, data2"),
    ),
)

#: close typed 2 ms after Hi, data1 arrived: the FIN comes from close() (its stamps say so),
#: not "in reply to Hi, data1" as a time window would guess
CLOSE_LATE = Conversation(
    "close-late",
    "close() just after Hi, data1 arrived: FIN caused by close(), RST answers Hi, data2",
    (
        *HANDSHAKE,
        pkt(5.0, "client", P | A, b"data1", seq=1, ack=1),
        pkt(10.0, "client", P | A, b"data2", seq=6, ack=1),
        pkt(10.1, "server", A, seq=1, ack=11),
        pkt(505.0, "server", P | A, b"Hi, data1", seq=1, ack=11),
        pkt(505.1, "client", A, seq=11, ack=10),
        pkt(507.0, "client", F | A, seq=11, ack=10),
        pkt(507.1, "server", A, seq=10, ack=12),
        pkt(1005.0, "server", P | A, b"Hi, data2", seq=10, ack=12),
        pkt(1005.1, "client", R, seq=12),
    ),
    (
        ev(5.05, "client", "sent", bytes=5, data="data1"),
        ev(10.05, "client", "sent", bytes=5, data="data2"),
        ev(505.2, "client", "received", bytes=9, data="Hi, data1"),
        ev(507.1, "client", "close", started=506.9),
        ev(1005.2, "server", "sent", bytes=9, data="Hi, data2"),
        ev(1005.3, "server", "eof"),
        ev(1005.4, "server", "exit", status=1),
    ),
    Expected(
        "rst-after-close",
        first_fin=Mark("client", "close"),
        first_rst=Mark("client", "close", "Hi, data2"),
        fins=("client",),
        rsts=("client",),
        delivered=("Hi, data1",),
        lost=("Hi, data2",),
    ),
)

#: an abort right after the peer's data arrived: the RST is the abort's, not an answer
ABORT_AFTER_DATA = Conversation(
    "abort-after-data",
    "SO_LINGER 0 + close() 0.05 ms after Hi, data1 arrived: the RST answers nothing",
    (
        *HANDSHAKE,
        pkt(5.0, "client", P | A, b"data1", seq=1, ack=1),
        pkt(5.1, "server", A, seq=1, ack=6),
        pkt(100.0, "server", P | A, b"Hi, data1", seq=1, ack=6),
        pkt(100.1, "client", R | A, seq=6, ack=1),
    ),
    (
        ev(5.05, "client", "sent", bytes=5, data="data1"),
        ev(100.2, "client", "abort", started=100.05),
        ev(300.0, "server", "error", call="write", errno="ECONNRESET", message="reset"),
        ev(300.1, "server", "exit", status=1),
    ),
    Expected(
        "abort",  # an RST after reading: SO_LINGER {1, 0} or unread data, the wire cannot tell
        first_fin=None,
        first_rst=Mark("client", "abort"),
        fins=(),
        rsts=("client",),
        lost=("Hi, data1",),
        errors={"server": ("ECONNRESET",)},
    ),
)

#: a process that exits with its peer's data unread: RST, caused by the exit, answering nothing
#: (the data arrived before the exit, at a socket still open)
EXIT_UNREAD = Conversation(
    "exit-unread",
    "the server exits with data1 unread: RST from the exit",
    (
        *HANDSHAKE,
        pkt(5.0, "client", P | A, b"data1", seq=1, ack=1),
        pkt(5.1, "server", A, seq=1, ack=6),
        pkt(100.5, "server", R | A, seq=1, ack=6),
    ),
    (
        ev(
            5.05,
            "client",
            "call",
            id="write",
            syscall="write",
            call="write(data1)",
            result=5,
            started=4.9,
        ),
        ev(100.0, "server", "exit", status=0, text="exit(0) with 5 bytes unread"),
        ev(
            150.0,
            "client",
            "call",
            id="read",
            syscall="read",
            call="read()",
            errno="ECONNRESET",
            started=149.9,
        ),
    ),
    Expected(
        "abort",
        first_fin=None,
        first_rst=Mark("server", "exit"),
        fins=(),
        rsts=("server",),
        errors={"client": ("ECONNRESET",)},
    ),
)

#: a FIN whose close() was not logged: its cause is "nothing", never the write before it
UNLOGGED_CLOSE = Conversation(
    "unlogged-close",
    "a write, then a FIN from an unlogged close(): the write is not the FIN's cause",
    (
        *HANDSHAKE,
        pkt(100.0, "server", P | A, b"Hi"),
        pkt(100.1, "client", A),
        pkt(150.0, "server", F | A),
        pkt(150.1, "client", F | A),
        pkt(150.2, "server", A),
    ),
    (
        ev(
            100.05,
            "server",
            "call",
            id="write",
            syscall="write",
            call="write(Hi)",
            result=2,
            started=99.9,
        ),
        ev(
            150.15,
            "client",
            "call",
            id="close",
            syscall="close",
            call="close()",
            result=0,
            started=150.05,
        ),
    ),
    Expected(
        "graceful",
        first_fin=Mark("server", None),
        first_rst=None,
        fins=("server", "client"),
        rsts=(),
    ),
)

CONVERSATIONS: dict[str, Conversation] = {
    c.name: c
    for c in (
        CLOSE,
        SHUTDOWN,
        CLOSE_MARKUP,
        CLOSE_LATE,
        ABORT_AFTER_DATA,
        EXIT_UNREAD,
        UNLOGGED_CLOSE,
    )
}


def canned_run(conv: Conversation = CLOSE_MARKUP, scenario: str = "close") -> LabRun:
    """A LabRun around a conversation (no kernel involved), judged by the lab's own verdicts;
    its transcripts carry markup, for the escaping tests."""
    timeline = conv.timeline()
    client = ProcessOutcome("client", (), 0, None, "now sending data1\n<b>x</b>\n", "", 0)
    server = ProcessOutcome("server", (), None, "SIGPIPE", "received 5 bytes: data1\n", "", 0)
    capture = CaptureResult("af_packet", None, (), conv.packets)
    verdict = judge(BY_NAME[scenario], timeline, client, server)
    return LabRun(BY_NAME[scenario], 0.1, timeline, client, server, capture, conv.events, verdict)
