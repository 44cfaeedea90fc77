"""The one place the probe uses the project's shared classifier and diagram renderer.

The diagram is the lab's renderer (`tcpclose.render.text`); the termination class comes from
the classifier the lab and the analyser use (`tcpclose.classify`).
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console

from tcpclose.classify import classify_packets
from tcpclose.model.packet import Packet
from tcpclose.model.timeline import Timeline
from tcpclose.render.text import print_diagram, render_diagram


def termination(packets: Sequence[Packet]) -> str | None:
    """The shared classifier's termination class for one connection's packets, if available."""
    if not packets:
        return None
    return str(classify_packets(packets).termination)


def diagram(timeline: Timeline) -> str:
    """The lab's plain-text sequence diagram of the timeline, without a final newline."""
    return render_diagram(timeline).rstrip("\n")


def print_rich_diagram(timeline: Timeline, console: Console) -> None:
    """The same diagram in colour (RST red, FIN yellow, data green), for a terminal."""
    print_diagram(timeline, console)
