"""The timeline: packets and application events of one connection, both sides, one clock.

Packets carry the kernel's capture timestamps and events carry `time.time_ns()`; both are
CLOCK_REALTIME, so sorting by time interleaves them as they happened. Each packet is assigned
to the side that sent it by its source endpoint.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from tcpclose.model.event import AppEvent
from tcpclose.model.packet import Packet

Endpoint = tuple[str, int]


class Role(enum.StrEnum):
    """Who did it: the side that connected (`client`) or the side that accepted (`server`)."""

    CLIENT = "client"
    SERVER = "server"

    @property
    def peer(self) -> Role:
        return Role.SERVER if self is Role.CLIENT else Role.CLIENT


@dataclass(frozen=True, slots=True)
class Segment:
    """A packet on the timeline: `t` seconds from the timeline's start, sent by `sender`."""

    t: float
    sender: Role
    packet: Packet


@dataclass(frozen=True, slots=True)
class Note:
    """An application event on the timeline, beside the lifeline of `role`."""

    t: float
    role: Role
    event: AppEvent


Entry = Segment | Note


@dataclass(frozen=True)
class Timeline:
    """One connection's packets and both programs' events, in time order."""

    start: float  #: seconds since the epoch at t = 0
    client: Endpoint | None
    server: Endpoint | None
    entries: tuple[Entry, ...]

    @property
    def segments(self) -> tuple[Segment, ...]:
        return tuple(e for e in self.entries if isinstance(e, Segment))

    @property
    def notes(self) -> tuple[Note, ...]:
        return tuple(e for e in self.entries if isinstance(e, Note))

    def events_of(self, role: Role, name: str | None = None) -> list[AppEvent]:
        return [
            note.event
            for note in self.notes
            if note.role is role and (name is None or note.event.event == name)
        ]

    @classmethod
    def build(
        cls,
        packets: Iterable[Packet],
        events: Iterable[AppEvent] = (),
        *,
        server: Endpoint | None = None,
        client: Endpoint | None = None,
        start: float | None = None,
    ) -> Timeline:
        """Merge packets and events. The server endpoint decides each packet's sender; without
        one, the receiver of the first SYN (without ACK) is the server, else the first packet's
        destination."""
        packets = sorted(packets, key=lambda p: p.t)
        events = sorted(events, key=lambda e: e.t_ns)
        if server is None and packets:
            first_syn = next((p for p in packets if p.syn and not p.has_ack), None)
            server = (first_syn or packets[0]).dst_endpoint
        if client is None and packets and server is not None:
            client = next(
                (p.src_endpoint for p in packets if p.dst_endpoint == server), None
            ) or next((p.dst_endpoint for p in packets if p.src_endpoint == server), None)
        if start is None:
            times = [p.t for p in packets[:1]] + [e.t for e in events[:1]]
            start = min(times) if times else 0.0
        entries: list[tuple[float, int, Entry]] = []
        for p in packets:
            sender = Role.SERVER if p.src_endpoint == server else Role.CLIENT
            entries.append((p.t, 0, Segment(p.t - start, sender, p)))
        for e in events:
            entries.append((e.t, 1, Note(e.t - start, Role(e.role), e)))
        entries.sort(key=lambda item: (item[0], item[1]))
        return cls(start, client, server, tuple(entry for _, _, entry in entries))
