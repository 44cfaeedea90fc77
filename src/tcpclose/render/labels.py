"""Words for segments and events, shared by every renderer (terminal, Mermaid, SVG)."""

from __future__ import annotations

from tcpclose.facts import WireFact, segment_kind
from tcpclose.model.event import AppEvent, Call, Exit, Signal
from tcpclose.model.packet import Packet

__all__ = [
    "abbreviate",
    "cause_label",
    "data_label",
    "event_kind",
    "event_label",
    "segment_kind",
    "segment_label",
    "wire_label",
]


def abbreviate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 1)] + "…"


def data_label(packet: Packet, limit: int = 16) -> str:
    """`Hi, data1` for printable payloads, `5 bytes` otherwise."""
    text = packet.text(limit=10_000)
    if text is None:
        return f"{packet.length} bytes"
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    return abbreviate(text, limit)


def segment_label(packet: Packet, limit: int = 16) -> str:
    """What an arrow says: `SYN`, `SYN, ACK`, `Hi, data1`, `FIN`, `data1 + FIN`, `RST`, `ACK`.

    Within `limit` characters, a FIN or RST riding on a data segment always shows: the data's
    text is what gets cut.
    """
    head = ["SYN, ACK" if packet.has_ack else "SYN"] if packet.syn else []
    tail = [flag for flag, on in (("FIN", packet.fin), ("RST", packet.rst)) if on]
    if packet.length:
        fixed = len(" + ".join([*head, *tail])) + (3 if head or tail else 0)
        head.append(data_label(packet, max(limit - fixed, 4)))
    parts = head + tail
    return " + ".join(parts) if parts else "ACK"


def event_label(event: AppEvent) -> str:
    """An application event as a short note: `close()`, `read() = 0 (EOF)`, `write: EPIPE`."""
    kind = event.event
    get = event.get
    if get("text"):
        return str(get("text"))
    if kind == "listening":
        return f"listen() on port {get('port')}"
    if kind == "connected":
        return "connect() returned"
    if kind == "accepted":
        return "accept() returned"
    if kind == "received":
        return f"read() = {get('bytes')}: {abbreviate(str(get('data', '')), 14)}"
    if kind == "sent":
        return f"write() = {get('bytes')}"
    if kind == "eof":
        return "read() = 0 (EOF)"
    if kind == "shutdown":
        how = get("how", "SHUT_WR")
        return f"shutdown({how})" + (" on stdin EOF" if get("reason") == "stdin-eof" else "")
    if kind == "close":
        return "close()"
    if kind == "abort":
        return "SO_LINGER 0, close()"
    if kind == "error":
        return f"{get('call')}(): {get('errno')}"
    if kind == "signal":
        return f"{get('signal')} handler ran"
    if kind == "exit":
        return f"exit({get('status')})"
    if kind == "killed":
        return f"killed by {get('signal')}"
    return kind


def event_kind(event: AppEvent) -> str:
    if event.event in ("error", "killed"):
        return "error"
    if event.event == "signal":
        return "signal"
    return "note"


def cause_label(cause: Call | Exit | Signal | None) -> str:
    """The call a segment came from, as the diagram and the verdicts name it: `close()`,
    `exit(0)`, `killed by SIGPIPE`; `nothing` when its sender logged no call before it."""
    if cause is None:
        return "nothing"
    if isinstance(cause, Signal):
        return f"killed by {cause.signal}" if cause.fatal else f"{cause.signal} handler ran"
    return cause.label


def wire_label(wire: WireFact, limit: int = 40) -> str:
    return segment_label(wire.packet, limit=limit)
