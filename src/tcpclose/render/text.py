"""The terminal sequence diagram: two lifelines, one row per segment or event, time in ms.

    ms  client                              server
   0.0  |--------------- SYN --------------->|
   0.1  |<------------ SYN, ACK -------------|
   5.2  |------------- data1 --------------->|
   5.3  |                                    * read() = 5: data1
 200.4  * close()                            |
 200.4  |--------------- FIN --------------->|

Rows are built as data (`diagram_rows`) and then drawn as plain text (`render_diagram`, used by
golden tests and files) or as rich Text with colour (`rich_diagram`, used on a terminal).
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text

from tcpclose.model.timeline import Note, Role, Segment, Timeline
from tcpclose.render.labels import abbreviate, event_kind, event_label, segment_kind, segment_label

DEFAULT_WIDTH = 36

STYLES = {
    "syn": "dim",
    "ack": "dim",
    "data": "green",
    "fin": "bold yellow",
    "rst": "bold red",
    "note": "cyan",
    "signal": "bold magenta",
    "error": "bold red",
}


#: events that say nothing about how the connection ends
HIDDEN_EVENTS = frozenset({"listening"})


@dataclass(frozen=True)
class Row:
    """One line of the diagram: time, the lane between the lifelines, text right of them."""

    ms: float
    lane: str
    right: str
    kind: str


def _arrow(label: str, sender: Role, width: int) -> str:
    """`|----- label ----->|` for client to server, `|<---- label -----|` the other way."""
    inner = width
    label = f" {abbreviate(label, inner - 6)} "
    dashes = inner - len(label) - 1  # one cell for the arrow head
    left = dashes // 2
    right = dashes - left
    if sender is Role.CLIENT:
        return "|" + "-" * left + label + "-" * right + ">|"
    return "|<" + "-" * right + label + "-" * left + "|"


def diagram_rows(
    timeline: Timeline, *, width: int = DEFAULT_WIDTH, show_acks: bool = False
) -> list[Row]:
    """The diagram as rows. Pure ACKs are left out unless `show_acks` (they carry no news)."""
    rows: list[Row] = []
    for entry in timeline.entries:
        ms = entry.t * 1000.0
        if isinstance(entry, Segment):
            seg_kind = segment_kind(entry.packet)
            if seg_kind == "ack" and not show_acks:
                continue
            label = segment_label(entry.packet, limit=width - 6)
            rows.append(Row(ms, _arrow(label, entry.sender, width), "", seg_kind))
        elif isinstance(entry, Note) and entry.event.event not in HIDDEN_EVENTS:
            text = event_label(entry.event)
            kind = event_kind(entry.event)
            if entry.role is Role.CLIENT:
                lane = "* " + abbreviate(text, width - 1)
                rows.append(Row(ms, lane.ljust(width + 1) + "|", "", kind))
            else:
                rows.append(Row(ms, "|" + " " * width + "*", text, kind))
    return rows


def hidden_acks(timeline: Timeline) -> int:
    return sum(1 for s in timeline.segments if segment_kind(s.packet) == "ack")


def _header(width: int) -> str:
    return f"{'ms':>8}  " + "client".ljust(width + 1) + "server"


def _time(ms: float) -> str:
    return f"{ms:8.1f}"


def render_diagram(
    timeline: Timeline, *, width: int = DEFAULT_WIDTH, show_acks: bool = False
) -> str:
    """The diagram as plain text, one line per row, ending with a newline."""
    lines = [_header(width)]
    for row in diagram_rows(timeline, width=width, show_acks=show_acks):
        right = f" {row.right}" if row.right else ""
        lines.append(f"{_time(row.ms)}  {row.lane}{right}".rstrip())
    if not show_acks and (n := hidden_acks(timeline)):
        lines.append(f"{'':8}  ({n} pure ACKs not shown)")
    return "\n".join(lines) + "\n"


def rich_diagram(
    timeline: Timeline, *, width: int = DEFAULT_WIDTH, show_acks: bool = False
) -> Text:
    """The same diagram as rich Text: RST red, FIN yellow, data green, notes cyan."""
    text = Text(_header(width) + "\n", style="bold")
    for row in diagram_rows(timeline, width=width, show_acks=show_acks):
        style = STYLES.get(row.kind, "")
        text.append(_time(row.ms) + "  ", style="dim")
        text.append(row.lane, style=style)
        if row.right:
            text.append(" " + row.right, style=style)
        text.append("\n")
    if not show_acks and (n := hidden_acks(timeline)):
        text.append(f"{'':8}  ({n} pure ACKs not shown)\n", style="dim")
    return text
