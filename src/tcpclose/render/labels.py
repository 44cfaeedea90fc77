"""Words for segments and events, shared by every renderer (terminal, Mermaid, SVG)."""

from __future__ import annotations

from tcpclose.model.event import AppEvent
from tcpclose.model.packet import Packet


def segment_kind(packet: Packet) -> str:
    """The most telling thing a segment carries: rst > fin > syn > data > ack."""
    if packet.rst:
        return "rst"
    if packet.fin:
        return "fin"
    if packet.syn:
        return "syn"
    if packet.length:
        return "data"
    return "ack"


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
    """What an arrow says: `SYN`, `SYN, ACK`, `Hi, data1`, `FIN`, `data1 + FIN`, `RST`, `ACK`."""
    parts: list[str] = []
    if packet.syn:
        parts.append("SYN, ACK" if packet.has_ack else "SYN")
    if packet.length:
        parts.append(data_label(packet, limit))
    if packet.fin:
        parts.append("FIN")
    if packet.rst:
        parts.append("RST")
    if not parts:
        parts.append("ACK")
    return " + ".join(parts)


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
