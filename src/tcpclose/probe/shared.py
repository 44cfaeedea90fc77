"""The one place the probe uses the project's shared classifier and diagram renderer.

Both come to main from other branches (`tcpclose.classify`, `tcpclose.render.text`). Until
they land, `termination` answers None and `diagram` draws a minimal placeholder listing; when
they land, nothing else in the probe changes.
"""

from __future__ import annotations

from collections.abc import Sequence

from tcpclose.model.packet import Packet
from tcpclose.model.timeline import Role, Timeline


def termination(packets: Sequence[Packet]) -> str | None:
    """The shared classifier's termination class for one connection's packets, if available."""
    if not packets:
        return None
    try:
        from tcpclose.classify import classify_packets
    except ImportError:
        return None
    value = classify_packets(packets).termination
    return str(getattr(value, "value", value))


def diagram(timeline: Timeline) -> str:
    """The lab's plain-text sequence diagram of the timeline (placeholder until it lands)."""
    try:
        from tcpclose.render.text import render_diagram
    except ImportError:
        return _placeholder(timeline)
    return render_diagram(timeline)


def _placeholder(timeline: Timeline) -> str:
    """One line per segment: time, direction, flags, payload length. Not the lab's diagram."""
    lines = ["      ms  client              server"]
    for seg in timeline.segments:
        p = seg.packet
        label = p.letters + (f" {p.length}B" if p.length else "")
        arrow = f"|--- {label} ".ljust(18, "-") + ">|"
        if seg.sender is Role.SERVER:
            arrow = "|<" + f" {label} ---".rjust(18, "-") + "|"
        lines.append(f"{seg.t * 1000:8.1f}  {arrow}")
    return "\n".join(lines)
