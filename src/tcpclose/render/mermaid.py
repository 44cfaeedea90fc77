"""A Mermaid `sequenceDiagram` of a timeline, pasteable into Markdown (GitHub renders it).

Arrows: `->>` for SYN, data and FIN, `-x` (a cross at the receiving end) for RST; application
events become `Note left of` / `Note right of` the lifeline they belong to. Mermaid has no time
axis, so each label carries its time in ms.
"""

from __future__ import annotations

from tcpclose.model.timeline import Note, Role, Segment, Timeline
from tcpclose.render.labels import event_label, segment_kind, segment_label
from tcpclose.render.text import HIDDEN_EVENTS

_ALIAS = {Role.CLIENT: "C", Role.SERVER: "S"}
_ESCAPES = str.maketrans({"#": "#35;", ";": "#59;", "\n": " "})


def _escape(text: str) -> str:
    """Mermaid reads `#` as an entity and `;` as the end of a statement: write them as codes."""
    return text.translate(_ESCAPES)


def render_mermaid(timeline: Timeline, *, title: str | None = None, show_acks: bool = False) -> str:
    lines = ["sequenceDiagram"]
    if title:
        lines.append(f"    title {_escape(title)}")
    lines += ["    participant C as client", "    participant S as server"]
    for entry in timeline.entries:
        ms = f"{entry.t * 1000:.1f} ms"
        if isinstance(entry, Segment):
            kind = segment_kind(entry.packet)
            if kind == "ack" and not show_acks:
                continue
            src, dst = _ALIAS[entry.sender], _ALIAS[entry.sender.peer]
            arrow = "-x" if kind == "rst" else "->>"
            label = _escape(segment_label(entry.packet, limit=40))
            lines.append(f"    {src}{arrow}{dst}: {label} ({ms})")
        elif isinstance(entry, Note) and entry.event.event not in HIDDEN_EVENTS:
            side = "left of C" if entry.role is Role.CLIENT else "right of S"
            lines.append(f"    Note {side}: {_escape(event_label(entry.event))} ({ms})")
    return "\n".join(lines) + "\n"
