"""The proxy bench's diagram: THREE lifelines (client | proxy | backend), one clock (pure).

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

from collections.abc import Iterable
from dataclasses import dataclass

from tcpclose.model.event import AppEvent
from tcpclose.model.packet import Packet
from tcpclose.render.labels import abbreviate, event_label, segment_kind, segment_label

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
) -> str:
    """The bench's diagram as plain text, ending with a newline.

    `client_leg` packets run between `client` (our socket) and the proxy; `backend_leg`
    packets between the proxy and `backend` (our listener).
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
