"""The probe's diagrams: two lifelines (client | server) for a direct probe, three for the bench.

The direct probe's diagram is the lab's (render/text.py's rows) with one row added per `Gap`
of the capture window: a long transfer shows its first and last segments and, between them,
one line saying how many segments and bytes each side sent that are not drawn.

The proxy bench's diagram: THREE lifelines (client | proxy | backend), one clock (pure).

      ms  client                        proxy                         backend
     0.0  |------------ SYN ----------->|                             |
     0.2  |----- GET / HTTP/1.1… + FIN->|                             |
     0.3  |                             |------------ SYN ----------->|
   501.0  |                             |                             * write() = 96
   501.1  |                             |<---- HTTP/1.1 200 OK… ------|

The lab's renderer (render/text.py) draws two lifelines; this one lives in the probe so that
the lab's output stays byte-identical. It reuses the lab's words for segments and events
(render/labels.py). Pure ACKs are left out (counted); a long transfer is elided in the middle
(the first and last rows kept, the rest counted), so a diagram never grows without bound.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rich.text import Text

from tcpclose.model.event import AppEvent
from tcpclose.model.packet import Packet
from tcpclose.model.timeline import Timeline
from tcpclose.probe.window import Gap
from tcpclose.render.labels import abbreviate, event_label, segment_kind, segment_label
from tcpclose.render.text import DEFAULT_WIDTH, STYLES, Row, diagram_rows, hidden_acks

WIDTH = 30
#: rows kept at each end of a long diagram
KEEP_ROWS = 40

Endpoint = tuple[str, int]


@dataclass(frozen=True)
class _Row:
    t: float
    text: str


def _clean(text: str) -> str:
    """One line, whatever the payload: line breaks and tabs escaped."""
    return text.replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")


def describe_gap(gap: Gap, names: dict[Endpoint, str]) -> str:
    """`1580 segments not shown: server 1580 (103546880 bytes), client 790 (no data)`."""
    sides = []
    for endpoint, count in sorted(gap.segments.items(), key=lambda item: -gap.bytes[item[0]]):
        sent = gap.bytes[endpoint]
        who = names.get(endpoint, f"{endpoint[0]}:{endpoint[1]}")
        sides.append(f"{who} {count} ({sent} bytes)" if sent else f"{who} {count} (no data)")
    return f"{gap.total_segments} segments not shown: " + ", ".join(sides)


def _gap_lane(width: int) -> str:
    return "|" + "...".center(width) + "|"


def probe_rows(timeline: Timeline, gaps: Sequence[Gap], *, width: int = DEFAULT_WIDTH) -> list[Row]:
    """The lab's rows for the kept packets, and one row per gap at its first segment's time."""
    rows = diagram_rows(timeline, width=width)
    names: dict[Endpoint, str] = {}
    if timeline.client is not None:
        names[timeline.client] = "client"
    if timeline.server is not None:
        names[timeline.server] = "server"
    for gap in gaps:
        ms = (gap.t_first - timeline.start) * 1000.0
        rows.append(Row(ms, _gap_lane(width), describe_gap(gap, names), "ack"))
    # Stable: a gap's row comes after the rows of its own millisecond that were there before.
    return sorted(rows, key=lambda row: row.ms)


def _header(width: int) -> str:
    return f"{'ms':>8}  " + "client".ljust(width + 1) + "server"


def two_column_diagram(timeline: Timeline, gaps: Sequence[Gap] = ()) -> str:
    """The direct probe's diagram as plain text, ending with a newline."""
    lines = [_header(DEFAULT_WIDTH)]
    for row in probe_rows(timeline, gaps):
        right = f" {row.right}" if row.right else ""
        lines.append(f"{row.ms:8.1f}  {row.lane}{right}".rstrip())
    if n := hidden_acks(timeline):
        lines.append(f"{'':8}  ({n} pure ACKs not shown)")
    return "\n".join(lines) + "\n"


def rich_two_column_diagram(timeline: Timeline, gaps: Sequence[Gap] = ()) -> Text:
    """The same, in colour for a terminal (the lab's styles)."""
    text = Text(_header(DEFAULT_WIDTH) + "\n", style="bold")
    for row in probe_rows(timeline, gaps):
        style = STYLES.get(row.kind, "")
        text.append(f"{row.ms:8.1f}  ", style="dim")
        text.append(row.lane, style=style)
        if row.right:
            text.append(" " + row.right, style=style)
        text.append("\n")
    if n := hidden_acks(timeline):
        text.append(f"{'':8}  ({n} pure ACKs not shown)\n", style="dim")
    return text


def _arrow(label: str, rightwards: bool, width: int) -> str:
    label = f" {abbreviate(_clean(label), width - 6)} "
    dashes = width - len(label) - 1
    left = dashes // 2
    right = dashes - left
    if rightwards:
        return "|" + "-" * left + label + "-" * right + ">|"
    return "|<" + "-" * right + label + "-" * left + "|"


def three_column_diagram(
    client_leg: Iterable[Packet],
    backend_leg: Iterable[Packet],
    client: Endpoint,
    backend: Endpoint,
    client_events: Iterable[AppEvent] = (),
    backend_events: Iterable[AppEvent] = (),
    *,
    start: float | None = None,
    width: int = WIDTH,
    client_gaps: Iterable[Gap] = (),
    backend_gaps: Iterable[Gap] = (),
) -> str:
    """The bench's diagram as plain text, ending with a newline.

    `client_leg` packets run between `client` (our socket) and the proxy; `backend_leg`
    packets between the proxy and `backend` (our listener). The gaps of the capture window on
    each leg are one row each.
    """
    gap = " " * width
    rows: list[_Row] = []
    acks = 0
    for p in client_leg:
        if segment_kind(p) == "ack":
            acks += 1
            continue
        arrow = _arrow(segment_label(p, limit=width - 6), p.src_endpoint == client, width)
        rows.append(_Row(p.t, arrow + gap + "|"))
    for p in backend_leg:
        if segment_kind(p) == "ack":
            acks += 1
            continue
        arrow = _arrow(segment_label(p, limit=width - 6), p.dst_endpoint == backend, width)
        rows.append(_Row(p.t, "|" + gap + arrow))
    for hole in client_gaps:
        text = describe_gap(hole, {e: "client" if e == client else "proxy" for e in hole.segments})
        rows.append(_Row(hole.t_first, _gap_lane(width) + gap + "| " + text))
    for hole in backend_gaps:
        names = {e: "backend" if e == backend else "proxy" for e in hole.segments}
        text = describe_gap(hole, names)
        rows.append(_Row(hole.t_first, "|" + gap + _gap_lane(width) + " " + text))
    for e in client_events:
        text = "* " + abbreviate(_clean(event_label(e)), width - 1)
        rows.append(_Row(e.t, text.ljust(width + 1) + "|" + gap + "|"))
    for e in backend_events:
        rows.append(_Row(e.t, "|" + gap + "|" + gap + "* " + _clean(event_label(e))))
    rows.sort(key=lambda r: r.t)
    t0 = start if start is not None else (rows[0].t if rows else 0.0)
    header = f"{'ms':>8}  " + "client".ljust(width + 1) + "proxy".ljust(width + 1) + "backend"
    lines = [header]
    shown = rows
    elided = 0
    if len(rows) > 2 * KEEP_ROWS:
        elided = len(rows) - 2 * KEEP_ROWS
        shown = rows[:KEEP_ROWS] + rows[-KEEP_ROWS:]
    for i, row in enumerate(shown):
        if elided and i == KEEP_ROWS:
            lines.append(f"{'':8}  ... {elided} rows not shown ...")
        lines.append(f"{(row.t - t0) * 1000:8.1f}  {row.text}".rstrip())
    if acks:
        lines.append(f"{'':8}  ({acks} pure ACKs not shown)")
    return "\n".join(lines) + "\n"
