"""From the run's capture to a cause per lost request, and one diagram per cause.

The analyser's reader (`tcpclose.analyze.read_connections`) gives the verdict on every
connection of the pcap; the packets of the connections that lost a request are then read
from the same file (the project's pcap reader, frames of other ports skipped unparsed), and
`tcpclose.drain.causes` decides from them.
"""

from __future__ import annotations

import bisect
import struct
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tcpclose.analyze import read_connections
from tcpclose.capture.frames import Frame, parse_frame
from tcpclose.capture.pcapfile import read_pcap_frames
from tcpclose.classify import ConnectionVerdict, Termination
from tcpclose.drain.causes import RACE_WINDOW, Cause, RequestFacts, cause_of
from tcpclose.drain.records import Outcome, RequestRecord
from tcpclose.model.event import AppEvent
from tcpclose.model.packet import Packet
from tcpclose.model.timeline import Timeline
from tcpclose.render.text import render_diagram

_M32 = 0xFFFFFFFF
#: A request's packets may be stamped a little before the client's own clock read.
SLACK = 0.0005
#: Rows of a diagram: the segments around the lost request, not the whole connection.
DIAGRAM_SEGMENTS = 14


@dataclass
class Explained:
    """What the capture told: terminations of all connections, and per cause an example."""

    connections: int = 0
    terminations: Counter[str] = field(default_factory=Counter)
    #: cause -> (record index, diagram text)
    diagrams: dict[str, tuple[int, str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _ports_of(data: bytes) -> tuple[int, int] | None:
    """TCP ports of an Ethernet frame, without decoding it (IPv4, or IPv6 without
    extension headers)."""
    if len(data) < 54:
        return None
    ethertype = data[12] << 8 | data[13]
    if ethertype == 0x0800 and data[23] == 6:
        offset = 14 + (data[14] & 0x0F) * 4
    elif ethertype == 0x86DD and data[20] == 6:
        offset = 54
    else:
        return None
    if len(data) < offset + 4:
        return None
    sport, dport = struct.unpack_from("!HH", data, offset)
    return sport, dport


def _packets_by_client_port(frames: Iterable[Frame], ports: set[int]) -> dict[int, list[Packet]]:
    found: dict[int, list[Packet]] = defaultdict(list)
    for frame in frames:
        pair = _ports_of(frame.data)
        if pair is None:
            continue
        sport, dport = pair
        port = sport if sport in ports else dport if dport in ports else None
        if port is None:
            continue
        packet = parse_frame(frame)
        if packet is not None:
            found[port].append(packet)
    return found


def _before(a: int, b: int) -> bool:
    """Sequence number a is before b (mod 2^32)."""
    return a != b and ((b - a) & _M32) < 0x80000000


class ConnectionPackets:
    """One connection's packets, indexed once, so that each of its lost requests is looked up
    in O(log n) (a keep-alive connection may carry thousands of requests)."""

    def __init__(self, verdict: ConnectionVerdict, packets: list[Packet]) -> None:
        self.verdict = verdict
        server = verdict.responder
        self.packets = [p for p in packets if verdict.start - SLACK <= p.t <= verdict.end + SLACK]
        self.times = [p.t for p in self.packets]
        self.from_server = [p.src_endpoint == server for p in self.packets]
        sent = [p for p, s in zip(self.packets, self.from_server, strict=True) if s]
        self.fin = next((p for p in sent if p.fin), None)
        self.rst = next((p for p in sent if p.rst), None)
        #: server payload bytes in packets[:i]
        self.server_bytes = [0]
        for p, s in zip(self.packets, self.from_server, strict=True):
            self.server_bytes.append(self.server_bytes[-1] + (p.length if s and not p.rst else 0))

    def request_index(self, start: float) -> tuple[int, int | None]:
        """(index of the first packet at or after `start`, index of our first data segment
        from there, if any)."""
        first = bisect.bisect_left(self.times, start)
        for i in range(first, len(self.packets)):
            if not self.from_server[i] and self.packets[i].length:
                return first, i
        return first, None


def wire_facts(record: RequestRecord, conn: ConnectionPackets | None) -> RequestFacts:
    """The facts of `causes.RequestFacts` for one lost request, from its connection's packets."""
    if conn is None:
        return RequestFacts(
            captured=False,
            rejected=False,
            outcome=record.outcome,
            reused=record.reused,
            request_sent=False,
            answer_bytes=0,
            server_bytes_before=0,
            server_fin_before_request=False,
            server_rst_before_request=False,
            server_rst_at_request=False,
            server_fin_after_request=False,
            server_rst=False,
            server_fin=False,
        )
    # The record's start is read (CLOCK_REALTIME) before the request is written; the kernel
    # stamps the segment (same clock) after: no slack, or the previous request would match.
    start = record.start
    first, at = conn.request_index(start)
    request = conn.packets[at] if at is not None else None
    fin, rst = conn.fin, conn.rst
    answer = conn.server_bytes[-1] - conn.server_bytes[at if at is not None else first]
    before = conn.server_bytes[first]
    if request is not None:
        end = (request.seq + request.length) & _M32
        fin_before = fin is not None and (fin.t <= request.t or _before(fin.ack, end))
        rst_before = rst is not None and fin is None and rst.t <= request.t
        rst_at = rst is not None and request.t <= rst.t <= request.t + RACE_WINDOW
    else:
        rst_at = False
        fin_before = fin is not None
        rst_before = rst is not None and fin is None
    return RequestFacts(
        captured=True,
        rejected=conn.verdict.termination is Termination.REJECTED,
        outcome=record.outcome,
        reused=record.reused,
        request_sent=request is not None,
        answer_bytes=answer,
        server_bytes_before=before,
        server_fin_before_request=fin_before,
        server_rst_before_request=rst_before,
        server_rst_at_request=rst_at,
        server_fin_after_request=fin is not None and not fin_before,
        server_rst=rst is not None and rst.t >= start,
        server_fin=fin is not None,
    )


class _Index:
    """Verdicts by client port, each list in start order: which connection was a record's."""

    def __init__(self, verdicts: list[ConnectionVerdict], target_port: int) -> None:
        self.by_port: dict[int, list[ConnectionVerdict]] = defaultdict(list)
        self.rejected: list[ConnectionVerdict] = []
        for v in verdicts:
            if v.responder[1] != target_port:
                continue
            self.by_port[v.originator[1]].append(v)
            if v.termination is Termination.REJECTED:
                self.rejected.append(v)
        for group in self.by_port.values():
            group.sort(key=lambda v: v.start)
        self.rejected.sort(key=lambda v: v.start)
        self._rejected_starts = [v.start for v in self.rejected]
        self._claimed: set[int] = set()

    def find(self, record: RequestRecord) -> ConnectionVerdict | None:
        if not record.local_port:
            return self._refused(record) if record.outcome is Outcome.REFUSED else None
        # A reused connection began before the request; a new one during it (its SYN).
        latest = (record.start if record.reused else max(record.end, record.start)) + SLACK
        found = None
        for v in self.by_port.get(record.local_port, []):
            if v.start <= latest:
                found = v
        return found

    def _refused(self, record: RequestRecord) -> ConnectionVerdict | None:
        """A refused connect has no port we know: the first unclaimed rejected connection
        whose SYN left within the connect() call."""
        i = bisect.bisect_left(self._rejected_starts, record.start - SLACK)
        while i < len(self.rejected) and self.rejected[i].start <= record.end + SLACK:
            if i not in self._claimed:
                self._claimed.add(i)
                return self.rejected[i]
            i += 1
        return None


def _diagram(
    record: RequestRecord,
    own: list[Packet],
    server: tuple[str, int],
    signal_at: float | None,
    signal_label: str,
) -> str:
    first = next(
        (i for i, p in enumerate(own) if p.t >= record.start - SLACK), max(len(own) - 1, 0)
    )
    lo = max(0, first - 4)
    shown = own[lo : lo + DIAGRAM_SEGMENTS]
    events = [
        AppEvent(int(record.start * 1e9), "client", "note", {"text": f"request #{record.index}"}),
        AppEvent(int(record.end * 1e9), "client", "note", {"text": str(record.outcome)}),
    ]
    if signal_at is not None and shown and shown[0].t - 0.5 <= signal_at <= shown[-1].t + 0.5:
        events.append(AppEvent(int(signal_at * 1e9), "server", "note", {"text": signal_label}))
    start = min([p.t for p in shown] + [e.t for e in events])
    timeline = Timeline.build(shown, events, server=server, start=start)
    text = render_diagram(timeline)
    if lo or lo + DIAGRAM_SEGMENTS < len(own):
        text += f"{'':8}  ({len(own) - len(shown)} other segments of this connection not shown)\n"
    return text


def explain(
    records: list[RequestRecord],
    pcap: Path,
    target_port: int,
    signal_at: float | None,
    signal_label: str,
) -> Explained:
    """Set `cause` on every lost record; count terminations; draw one diagram per cause."""
    result = Explained()
    verdicts = list(read_connections(pcap))
    result.connections = sum(1 for v in verdicts if v.responder[1] == target_port)
    result.terminations.update(
        str(v.termination) for v in verdicts if v.responder[1] == target_port
    )
    index = _Index(verdicts, target_port)
    lost = [r for r in records if r.lost]
    for record in lost:
        if record.outcome is Outcome.ERROR_STATUS:
            record.cause = str(Cause.ERROR_ANSWER)  # an answer came: its status says it all
    matched = [(r, index.find(r)) for r in lost if r.cause is None]
    ports = {v.originator[1] for _, v in matched if v is not None}
    packets = _packets_by_client_port(read_pcap_frames(pcap), ports) if ports else {}
    indexed: dict[tuple[int, float], ConnectionPackets] = {}
    for record, verdict in matched:
        conn = None
        if verdict is not None:
            key = (verdict.originator[1], verdict.start)
            conn = indexed.get(key)
            if conn is None:
                conn = indexed[key] = ConnectionPackets(
                    verdict, packets.get(verdict.originator[1], [])
                )
        cause = cause_of(wire_facts(record, conn))
        record.cause = str(cause)
        if str(cause) not in result.diagrams and conn is not None and conn.packets:
            result.diagrams[str(cause)] = (
                record.index,
                _diagram(record, conn.packets, conn.verdict.responder, signal_at, signal_label),
            )
    return result


def unexplained(records: list[RequestRecord]) -> None:
    """Without a capture, every lost request's cause says so."""
    for record in records:
        if record.lost:
            record.cause = str(Cause.NOT_CAPTURED)
