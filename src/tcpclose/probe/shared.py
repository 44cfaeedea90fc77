"""The one place the probe uses the project's shared classifier and diagram renderer.

The diagram is the lab's renderer (`tcpclose.render.text`). The classifier
(`tcpclose.classify`) comes to main from another branch; until it lands, `termination` answers
None, and when it lands nothing else in the probe changes.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console

from tcpclose.model.packet import Packet
from tcpclose.model.timeline import Timeline
from tcpclose.render.text import print_diagram, render_diagram


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
    """The lab's plain-text sequence diagram of the timeline, without a final newline."""
    return render_diagram(timeline).rstrip("\n")


def print_rich_diagram(timeline: Timeline, console: Console) -> None:
    """The same diagram in colour (RST red, FIN yellow, data green), for a terminal."""
    print_diagram(timeline, console)
