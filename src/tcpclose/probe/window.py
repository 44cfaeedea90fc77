"""A bounded window on a run's captured packets: what the verdict and the diagram need, and
counts for the rest.

A server streaming 1 GB sends ~16,000 segments of 64 KiB; keeping them all cost the probe
1.86 GB and drew a 30,000-line diagram. The window keeps, per connection:

- the first HEAD and the last TAIL packets;
- in between, the packets the facts read: the first SYN, FIN and RST of each side, always;
  other SYN/FIN/RST segments and the first data segment of each turn (data from the other side
  than the last data), up to MIDDLE per connection;
- for everything else, a `Gap`: how many segments and payload bytes each side sent in it, from
  when to when. A gap never spans a kept packet, so "before our FIN" and "after it" stay exact.

Frames arrive from the capture's reader thread (`add`) in arrival order; the results are read
after the capture stopped. Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from tcpclose.capture.frames import Frame, parse_frame
from tcpclose.model.packet import Packet
from tcpclose.probe.facts import PacketFacts, packet_facts

Endpoint = tuple[str, int]

#: packets kept at the start of each connection
HEAD = 24
#: packets kept at the end of each connection
TAIL = 24
#: packets kept between head and tail besides each side's first SYN, FIN and RST
MIDDLE = 32
#: connections followed packet by packet; packets of later ones are only counted
MAX_CONNECTIONS = 32


@dataclass
class Gap:
    """Consecutive packets of one connection left out of the window."""

    t_first: float
    t_last: float
    segments: Counter[Endpoint] = field(default_factory=Counter)  #: by sender
    bytes: Counter[Endpoint] = field(default_factory=Counter)  #: payload bytes, by sender

    def add(self, packet: Packet) -> None:
        self.t_last = packet.t
        self.segments[packet.src_endpoint] += 1
        self.bytes[packet.src_endpoint] += packet.length

    @property
    def total_segments(self) -> int:
        return sum(self.segments.values())

    @property
    def total_bytes(self) -> int:
        return sum(self.bytes.values())

    def to_json(self, names: dict[Endpoint, str]) -> dict[str, Any]:
        """Times in seconds since the epoch (as the other `_t` fields); sides by name."""
        return {
            "t_first": self.t_first,
            "t_last": self.t_last,
            "segments": {names.get(e, f"{e[0]}:{e[1]}"): n for e, n in self.segments.items()},
            "bytes": {names.get(e, f"{e[0]}:{e[1]}"): n for e, n in self.bytes.items()},
        }


@dataclass
class _Kept:
    frame: Frame
    packet: Packet
    essential: bool  #: always kept (a side's first SYN, FIN or RST)
    telling: bool  #: kept while the middle has room (other flags, a turn's first data)


class ConnectionWindow:
    """One connection's window: head, middle (kept packets and gaps, in order), tail."""

    def __init__(self) -> None:
        self.head: list[_Kept] = []
        self.middle: list[_Kept | Gap] = []
        self.tail: deque[_Kept] = deque()
        self.packets = 0  #: every packet seen, kept or not
        self.bytes: Counter[Endpoint] = Counter()  #: every payload byte seen, by sender
        self._seen: set[tuple[Endpoint, str]] = set()  #: (sender, flag) already met
        self._last_data_sender: Endpoint | None = None
        self._middle_kept = 0

    def add(self, frame: Frame, packet: Packet) -> None:
        self.packets += 1
        sender = packet.src_endpoint
        self.bytes[sender] += packet.length
        essential = False
        for flag, present in (("S", packet.syn), ("F", packet.fin), ("R", packet.rst)):
            if present and (sender, flag) not in self._seen:
                self._seen.add((sender, flag))
                essential = True
        turn = packet.length > 0 and sender != self._last_data_sender
        if packet.length > 0:
            self._last_data_sender = sender
        telling = turn or packet.syn or packet.fin or packet.rst
        item = _Kept(frame, packet, essential, telling)
        if len(self.head) < HEAD:
            self.head.append(item)
            return
        self.tail.append(item)
        if len(self.tail) > TAIL:
            self._retire(self.tail.popleft())

    def _retire(self, item: _Kept) -> None:
        """A packet leaves the tail: kept in the middle if it tells something, else counted."""
        if item.essential or (item.telling and self._middle_kept < MIDDLE):
            self._middle_kept += not item.essential
            self.middle.append(item)
            return
        last = self.middle[-1] if self.middle else None
        if not isinstance(last, Gap):
            last = Gap(item.packet.t, item.packet.t)
            self.middle.append(last)
        last.add(item.packet)

    def kept(self) -> list[_Kept]:
        middle = [m for m in self.middle if isinstance(m, _Kept)]
        return [*self.head, *middle, *self.tail]

    @property
    def gaps(self) -> list[Gap]:
        return [m for m in self.middle if isinstance(m, Gap)]


class PacketWindow:
    """The bounded window on all connections of a capture (frames in, via `add`)."""

    def __init__(self) -> None:
        self.connections: dict[frozenset[Endpoint], ConnectionWindow] = {}
        self.undecoded = 0  #: frames that were not TCP over IP
        self.untracked = 0  #: packets of connections past MAX_CONNECTIONS, only counted
        #: local ports of our own connections: followed even past MAX_CONNECTIONS (a busy
        #: server's other clients must not crowd the probe's connection out)
        self.ours: set[int] = set()

    def add(self, frame: Frame) -> None:
        """One captured frame, in arrival order (called from the capture's reader thread)."""
        packet = parse_frame(frame)
        if packet is None:
            self.undecoded += 1
            return
        key = frozenset((packet.src_endpoint, packet.dst_endpoint))
        conn = self.connections.get(key)
        if conn is None:
            if len(self.connections) >= MAX_CONNECTIONS and not (
                packet.sport in self.ours or packet.dport in self.ours
            ):
                self.untracked += 1
                return
            conn = self.connections[key] = ConnectionWindow()
        conn.add(frame, packet)

    def connection(self, a: Endpoint, b: Endpoint) -> ConnectionWindow | None:
        return self.connections.get(frozenset((a, b)))

    def packets(self) -> list[Packet]:
        """Every kept packet of every connection, in time order."""
        kept = [k.packet for conn in self.connections.values() for k in conn.kept()]
        return sorted(kept, key=lambda p: p.t)

    @property
    def seen(self) -> int:
        """Packets seen in all, kept or not."""
        return sum(c.packets for c in self.connections.values()) + self.untracked

    @property
    def elided(self) -> int:
        """Packets seen but not kept."""
        return sum(g.total_segments for c in self.connections.values() for g in c.gaps)


def window_facts(window: PacketWindow, local: Endpoint, peer: Endpoint) -> PacketFacts:
    """`packet_facts` of one connection, exact although its middle was elided.

    Every time `packet_facts` reads (each side's first SYN, FIN, RST, the first data of each
    turn) is a kept packet; the sums it makes (packets, the server's bytes before and after our
    first FIN or RST) are completed with the gaps' counts. A gap lies wholly before or after
    our first FIN/RST: that packet is kept, and a kept packet ends a gap. The result's `run`
    (the shared RunFacts) is that of the kept packets.
    """
    conn = window.connection(local, peer)
    if conn is None:
        return packet_facts([], local, peer)
    facts = packet_facts([k.packet for k in conn.kept()], local, peer)
    gaps = conn.gaps
    if not gaps:
        return facts
    before = after = 0
    for gap in gaps:
        if facts.our_close_t is not None and gap.t_first > facts.our_close_t:
            after += gap.bytes[peer]
        else:
            before += gap.bytes[peer]
    return dataclasses.replace(
        facts,
        packets=conn.packets,
        peer_bytes=conn.bytes[peer],
        peer_bytes_before_our_close=facts.peer_bytes_before_our_close + before,
        peer_bytes_after_our_close=facts.peer_bytes_after_our_close + after,
    )
