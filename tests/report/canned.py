"""A hand-made close experiment: packets and events on a fixed clock, no kernel involved."""

from __future__ import annotations

from tcpclose.capture.session import CaptureResult
from tcpclose.lab.processes import ProcessOutcome
from tcpclose.lab.runner import LabRun
from tcpclose.lab.scenarios import BY_NAME
from tcpclose.lab.verdicts import judge
from tcpclose.model.event import AppEvent
from tcpclose.model.packet import Flag, Packet
from tcpclose.model.timeline import Timeline

T0 = 1_700_000_000.0
C, S = ("127.0.0.1", 40000), ("127.0.0.1", 43211)
A, P, F, R, SYN = Flag.ACK, Flag.PSH, Flag.FIN, Flag.RST, Flag.SYN


def pkt(ms: float, client_sends: bool, flags: int, payload: bytes = b"") -> Packet:
    src, dst = (C, S) if client_sends else (S, C)
    return Packet(T0 + ms / 1000, *src, *dst, flags, 1000, 2000, 65535, len(payload), payload)


def ev(ms: float, role: str, event: str, **fields: object) -> AppEvent:
    return AppEvent(int((T0 + ms / 1000) * 1e9), role, event, dict(fields))


PACKETS = (
    pkt(0.0, True, SYN),
    pkt(0.1, False, SYN | A),
    pkt(0.2, True, A),
    pkt(5.0, True, P | A, b"data1"),
    pkt(5.1, False, A),
    pkt(10.0, True, P | A, b"data2"),
    pkt(15.0, True, F | A),
    pkt(505.0, False, P | A, b"Hi, <data1> & 'more'"),
    pkt(505.1, True, R),
)
EVENTS = (
    ev(0.3, "client", "connected"),
    ev(0.4, "server", "accepted"),
    ev(5.05, "client", "sent", bytes=5, data="data1"),
    ev(5.2, "server", "received", bytes=5, data="data1"),
    ev(10.05, "client", "sent", bytes=5, data="data2"),
    ev(15.05, "client", "close"),
    ev(505.05, "server", "sent", bytes=9, data="Hi, data1"),
    ev(505.2, "server", "received", bytes=5, data="data2"),
    ev(1006.0, "server", "killed", signal="SIGPIPE"),
)


def canned_timeline() -> Timeline:
    return Timeline.build(PACKETS, EVENTS, server=S)


def canned_run() -> LabRun:
    """A LabRun around the canned timeline, judged by the lab's own verdicts."""
    timeline = canned_timeline()
    client = ProcessOutcome("client", (), 0, None, "now sending data1\n<b>x</b>\n", "", 0)
    server = ProcessOutcome("server", (), None, "SIGPIPE", "received 5 bytes: data1\n", "", 0)
    capture = CaptureResult("af_packet", None, (), PACKETS)
    scenario = BY_NAME["close"]
    verdict = judge(scenario, timeline, client, server)
    return LabRun(scenario, 0.1, timeline, client, server, capture, EVENTS, verdict)
