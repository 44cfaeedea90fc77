"""A time-scaled SVG sequence diagram of one timeline (pure: Timeline -> SVG text).

Two lifelines, client left and server right; time flows down. Every captured segment is an
arrow from its sender's lifeline to its receiver's; application events are small boxes beside
their own lifeline. RST arrows are red and thick, FIN arrows amber and bold, data arrows carry
their text, pure ACKs are left out unless asked for; signals and deaths are red notes.

Time axis. Each entry gets a row of its own (`ROW` px), so that events a few microseconds apart
stay legible, plus `PX_PER_MS` px per millisecond of real time since the previous entry. A gap
longer than `BREAK_MS` (the lesson server's "processing" delay) is cut: it is drawn `BREAK_H`
px tall with a zigzag break mark and the skipped time written on it. The left margin gives
every row's time in ms, so the picture never has to be measured.

Slant. On loopback one capture sees each segment once, at one instant: send and arrival times
are the same. The arrow starts at the sender's lifeline at its capture time and ends `SLANT` px
lower at the receiver's: the slant is a drawing convention for "in flight", not a measurement.

Every drawn thing has a class (`segment rst`, `segment data`, `note signal`, `break`) and a
`<title>`, so tests and readers can find arrows by kind and label.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from tcpclose.model.timeline import Note, Role, Segment, Timeline
from tcpclose.render.labels import abbreviate, event_kind, event_label, segment_kind, segment_label
from tcpclose.render.text import HIDDEN_EVENTS

WIDTH = 760
AXIS_X = 48  #: right edge of the time labels
LIFELINE_X = {Role.CLIENT: 240, Role.SERVER: 520}
TOP = 56  #: y of the first row
ROW = 20
PX_PER_MS = 0.4
BREAK_MS = 150.0
BREAK_H = 40
SLANT = 10
NOTE_CHARS = 30  #: longer note texts are cut (the full text is in the <title>)
LABEL_CHARS = 32

#: stroke colour and width per segment kind
STROKES = {
    "rst": ("#d0021b", 3.5),
    "fin": ("#d97706", 2.5),
    "data": ("#1f6f43", 1.6),
    "syn": ("#8a8a8a", 1.2),
    "ack": ("#b5b5b5", 1.0),
}
NOTE_STYLES = {"note": "note", "signal": "note signal", "error": "note error"}

STYLE = """
.tc text{font-family:ui-sans-serif,system-ui,sans-serif;font-size:12px;fill:#222}
.tc .axis text{font-size:11px;fill:#666;text-anchor:end;font-variant-numeric:tabular-nums}
.tc .lifeline line{stroke:#444;stroke-width:1.5}
.tc .lifeline rect{fill:#f3f4f6;stroke:#444}
.tc .lifeline text{font-weight:600;text-anchor:middle}
.tc .segment text{text-anchor:middle;font-size:12px}
.tc .segment.rst text,.tc .segment.fin text{font-weight:700}
.tc .segment.rst text{fill:#d0021b}.tc .segment.fin text{fill:#b45309}
.tc .segment.syn text,.tc .segment.ack text{fill:#777;font-size:11px}
.tc .note rect{fill:#eef6ff;stroke:#8bb4e0}
.tc .note text{font-size:11px}
.tc .note.signal rect,.tc .note.error rect{fill:#fde8e8;stroke:#d0021b}
.tc .note.signal text,.tc .note.error text{fill:#a00014;font-weight:700}
.tc .break path{fill:none;stroke:#999;stroke-width:1.2}
.tc .break text{font-size:11px;fill:#666;font-style:italic}
"""


@dataclass(frozen=True)
class _Placed:
    y: float
    entry: Segment | Note


@dataclass(frozen=True)
class _Break:
    y0: float
    y1: float
    skipped_ms: float


def _visible(timeline: Timeline, show_acks: bool) -> list[Segment | Note]:
    shown: list[Segment | Note] = []
    for entry in timeline.entries:
        if isinstance(entry, Segment):
            if show_acks or segment_kind(entry.packet) != "ack":
                shown.append(entry)
        elif entry.event.event not in HIDDEN_EVENTS:
            shown.append(entry)
    return shown


def layout(
    entries: list[Segment | Note],
) -> tuple[list[_Placed], list[_Break], float]:
    """y for every entry, the cut gaps, and the y below the last row."""
    placed: list[_Placed] = []
    breaks: list[_Break] = []
    y = float(TOP)
    previous: float | None = None
    for entry in entries:
        if previous is not None:
            gap_ms = (entry.t - previous) * 1000.0
            if gap_ms > BREAK_MS:
                breaks.append(_Break(y + ROW / 2, y + ROW / 2 + BREAK_H, gap_ms))
                y += ROW + BREAK_H
            else:
                y += ROW + gap_ms * PX_PER_MS
        placed.append(_Placed(y, entry))
        previous = entry.t
    return placed, breaks, y + ROW + SLANT


def _f(value: float) -> str:
    return f"{value:.1f}"


def _title(text: str) -> str:
    return f"<title>{escape(text)}</title>"


def _segment(y: float, seg: Segment) -> str:
    kind = segment_kind(seg.packet)
    label = segment_label(seg.packet, limit=LABEL_CHARS)
    colour, width = STROKES[kind]
    x1, x2 = LIFELINE_X[seg.sender], LIFELINE_X[seg.sender.peer]
    head = 9 if x2 > x1 else -9
    y2 = y + SLANT
    # the arrow head, drawn as a polygon (markers cannot take the stroke colour everywhere)
    hx = x2 - head
    tip = f"{_f(x2)},{_f(y2)} {_f(hx)},{_f(y2 - 4.5)} {_f(hx)},{_f(y2 + 4.5)}"
    direction = "client to server" if seg.sender is Role.CLIENT else "server to client"
    title = f"{label} ({seg.packet.letters}, {direction}) at {seg.t * 1000:.1f} ms"
    cross = ""
    if kind == "rst":
        cx = x2 - 2 * head
        cross = (
            f'<path d="M{_f(cx - 5)},{_f(y2 - 9)} l10,10 m0,-10 l-10,10" '
            f'stroke="{colour}" stroke-width="2.5"/>'
        )
    return (
        f'<g class="segment {kind}" data-label={quoteattr(label)} '
        f'data-from="{seg.sender.value}" data-ms="{seg.t * 1000:.1f}">{_title(title)}'
        f'<line x1="{_f(x1)}" y1="{_f(y)}" x2="{_f(hx)}" y2="{_f(y2)}" '
        f'stroke="{colour}" stroke-width="{width}"/>'
        f'<polygon points="{tip}" fill="{colour}"/>{cross}'
        f'<text x="{_f((x1 + x2) / 2)}" y="{_f(y + SLANT / 2 - 5)}">{escape(label)}</text></g>'
    )


def _note(y: float, note: Note) -> str:
    text = event_label(note.event)
    shown = abbreviate(text, NOTE_CHARS)
    width = 12 + 6.3 * len(shown)
    x_line = LIFELINE_X[note.role]
    x = x_line - 8 - width if note.role is Role.CLIENT else x_line + 8
    kind = NOTE_STYLES[event_kind(note.event)]
    return (
        f'<g class="{kind}" data-role="{note.role.value}" data-label={quoteattr(text)}>'
        f"{_title(f'{note.role.value}: {text} at {note.t * 1000:.1f} ms')}"
        f'<rect x="{_f(x)}" y="{_f(y - 8)}" width="{_f(width)}" height="16" rx="3"/>'
        f'<circle cx="{_f(x_line)}" cy="{_f(y)}" r="3" fill="#444"/>'
        f'<text x="{_f(x + 6)}" y="{_f(y + 4)}">{escape(shown)}</text></g>'
    )


def _break(b: _Break) -> str:
    zig = []
    for x in (AXIS_X - 30, *LIFELINE_X.values()):
        for y in (b.y0, b.y1):
            zig.append(f"M{_f(x - 10)},{_f(y + 3)} l5,-6 l10,6 l5,-6")
    mid = (b.y0 + b.y1) / 2
    text_x = (LIFELINE_X[Role.CLIENT] + LIFELINE_X[Role.SERVER]) / 2
    return (
        f'<g class="break">{_title(f"{b.skipped_ms:.0f} ms with nothing on the wire, cut")}'
        f'<rect x="0" y="{_f(b.y0 + 3)}" width="{WIDTH}" height="{_f(b.y1 - b.y0 - 6)}" '
        f'fill="#fafafa"/><path d="{" ".join(zig)}"/>'
        f'<text x="{_f(text_x)}" y="{_f(mid + 4)}" text-anchor="middle">'
        f"≈ {b.skipped_ms:.0f} ms later</text></g>"
    )


def render_svg(
    timeline: Timeline, *, show_acks: bool = False, title: str | None = None, ident: str = ""
) -> str:
    """The diagram as one `<svg>` element (no XML declaration: it is meant to be inlined).
    `ident` prefixes the element id, so several diagrams can share a page."""
    placed, breaks, bottom = layout(_visible(timeline, show_acks))
    height = bottom + 12
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="tc sequence" '
        f'id="{escape(ident or "diagram")}" viewBox="0 0 {WIDTH} {_f(height)}" '
        f'width="{WIDTH}" height="{_f(height)}" role="img" '
        f"aria-label={quoteattr(title or 'TCP sequence diagram')}>",
        f"<title>{escape(title or 'TCP sequence diagram')}</title>",
        f"<style>{STYLE}</style>",
    ]
    parts += [_break(b) for b in breaks]
    parts.append('<g class="lifeline">')
    for role, x in LIFELINE_X.items():
        parts.append(
            f'<line x1="{x}" y1="{TOP - 18}" x2="{x}" y2="{_f(bottom)}"/>'
            f'<rect x="{x - 45}" y="10" width="90" height="24" rx="4"/>'
            f'<text x="{x}" y="27">{role.value}</text>'
        )
    parts.append("</g>")
    axis = [f'<text x="{AXIS_X}" y="27">ms</text>']
    axis += [f'<text x="{AXIS_X}" y="{_f(p.y + 4)}">{p.entry.t * 1000:.1f}</text>' for p in placed]
    parts.append('<g class="axis">' + "".join(axis) + "</g>")
    for p in placed:
        entry = p.entry
        parts.append(_segment(p.y, entry) if isinstance(entry, Segment) else _note(p.y, entry))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
