"""The one JSON shape of packets and events, and its schema version.

Every JSON output that carries packets or events writes them with `packet_json` and
`event_json`, and says which shape it uses with `"schema_version": SCHEMA_VERSION`. The fields
are tables (`PACKET_FIELDS`, `EVENT_FIELDS`) so that docs/json.md is generated from them.
Change a field: bump SCHEMA_VERSION and say what changed in `CHANGES`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: `tcpclose analyze` starts without the event model
    from tcpclose.model.event import AppEvent
    from tcpclose.model.timeline import Segment, Timeline

#: the version of the JSON shapes below; every JSON document tcpclose prints carries it
SCHEMA_VERSION = 1

#: what each version changed
CHANGES: tuple[tuple[int, str], ...] = (
    (1, "first versioned shape: packets and events as the lab printed them, plus schema_version"),
)

#: a packet on a timeline: (key, meaning)
PACKET_FIELDS: tuple[tuple[str, str], ...] = (
    ("t", "seconds since the timeline's start (its first packet or event), 6 decimals"),
    ("from", "`client` or `server`: the side that sent it"),
    ("flags", "TCP flags as letters, in the order S F R P A U E C (`SA`, `FA`, `RA`, `PA`)"),
    ("len", "TCP payload length as sent"),
    ("seq", "absolute sequence number"),
    ("ack", "absolute acknowledgement number"),
    ("data", "the payload as text when it is printable UTF-8 (up to 200 characters), else null"),
)

#: an application event: (key, meaning); the event's own keys follow (see docs/lesson.md)
EVENT_FIELDS: tuple[tuple[str, str], ...] = (
    ("t", "seconds since the timeline's start, 6 decimals"),
    ("t_ns", "wall-clock time in nanoseconds (CLOCK_REALTIME, the packets' clock)"),
    ("role", "`client` or `server`"),
    (
        "event",
        "the kind: connected, accepted, sent, received, eof, close, shutdown, abort, "
        "error, call, fork, signal, killed, exit, listening, timeout",
    ),
)


def packet_json(segment: Segment, *, data_limit: int = 200) -> dict[str, Any]:
    p = segment.packet
    return {
        "t": round(segment.t, 6),
        "from": segment.sender.value,
        "flags": p.letters,
        "len": p.length,
        "seq": p.seq,
        "ack": p.ack,
        "data": p.text(limit=data_limit),
    }


def event_json(event: AppEvent, start: float) -> dict[str, Any]:
    """An event with its time on the timeline's clock (`t`) before its own record."""
    return {"t": round(event.t - start, 6), **event.to_json()}


def packets_json(timeline: Timeline) -> list[dict[str, Any]]:
    return [packet_json(s) for s in timeline.segments]


def versioned(document: dict[str, Any]) -> dict[str, Any]:
    """The document with `schema_version` as its first key."""
    return {"schema_version": SCHEMA_VERSION, **document}
