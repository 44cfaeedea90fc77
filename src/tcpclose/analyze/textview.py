"""The text views of `tcpclose analyze`: pure functions from rows to lines (no writing here).

Two views share one column layout:

* the default view, bounded whatever the capture's size: the summary, then the worst
  non-graceful connections (`TOP` of them, each with its reason on lines of its own), then a
  hint for `--all`;
* `--all`: a header, then one line per connection as it is decided (streamed).

At a given width (a terminal's), whole columns are left out by priority, and a line says
which; a value is never cut: a value wider than its column pushes the rest of its line.
"""

from __future__ import annotations

import heapq
import textwrap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from operator import itemgetter

from tcpclose.analyze.output import closed_first, endpoint, time_of_day
from tcpclose.analyze.table import Row
from tcpclose.classify import ConnectionVerdict, Termination

#: how many non-graceful connections the default view lists
TOP = 20
#: space between two columns
GAP = 2


@dataclass(frozen=True)
class Column:
    name: str
    right: bool  # right-justified (numbers)
    #: width for a streamed view (`--all`), where rows are not known in advance
    width: int
    #: 0: never left out; higher: left out earlier when the width is short
    drop: int


COLUMNS: tuple[Column, ...] = (
    Column("#", True, 6, 0),
    Column("originator", False, 21, 0),
    Column("responder", False, 21, 0),
    Column("start", False, 15, 7),
    Column("duration", True, 9, 5),
    Column("bytes ->", True, 9, 2),
    Column("bytes <-", True, 9, 3),
    Column("closed first", False, 14, 4),
    Column("termination", False, 15, 0),
    Column("conn_state", False, 10, 6),
    Column("history", False, 10, 8),
    Column("reason", False, 0, 9),
)
_BY_NAME = {c.name: c for c in COLUMNS}

#: non-graceful terminations, worst first (the default view's order)
WORST_FIRST: tuple[Termination, ...] = (
    Termination.RST_AFTER_CLOSE,
    Termination.RST_UNREAD,
    Termination.ABORT,
    Termination.REJECTED,
    Termination.NO_ANSWER,
    Termination.FIN_THEN_RST,
    Termination.OPEN,
    Termination.MIDSTREAM,
)
_RANK = {t: i for i, t in enumerate(WORST_FIRST)}


#: the columns whose text is the connection's own, with how to make it from the row's
#: number (as text) and verdict: the others' come after them (`Layout.verdict_line`)
_OWN: dict[str, Callable[[str, ConnectionVerdict], str]] = {
    "#": lambda number, v: number,
    "originator": lambda number, v: endpoint(v.originator),
    "responder": lambda number, v: endpoint(v.responder),
    "start": lambda number, v: time_of_day(v.start),
    "duration": lambda number, v: f"{v.end - v.start:.3f}s",
}


def _shared_values(lay: Layout, v: ConnectionVerdict) -> list[str]:
    """The text of the layout's kept columns that are not the connection's own."""
    values = cells(Row(0, v))
    return [values[c.name] for c in lay.columns if c.name not in _OWN]


def cells(row: Row) -> dict[str, str]:
    """The text of every column of one row."""
    v = row.verdict
    return {
        "#": str(row.number),
        "originator": endpoint(v.originator),
        "responder": endpoint(v.responder),
        "start": time_of_day(v.start),
        "duration": f"{v.end - v.start:.3f}s",
        "bytes ->": str(v.bytes_originator),
        "bytes <-": str(v.bytes_responder),
        "closed first": closed_first(v),
        "termination": str(v.termination),
        "conn_state": v.conn_state,
        "history": v.history,
        "reason": v.reason,
    }


@dataclass(frozen=True)
class Layout:
    """The columns kept (in order) with their widths, and the names left out."""

    columns: tuple[Column, ...]
    widths: tuple[int, ...]
    dropped: tuple[str, ...]

    def line(self, values: dict[str, str]) -> str:
        """The kept columns' values, right-justified (numbers) or left-justified to their
        widths (the last one left as it is), GAP spaces apart, without trailing spaces."""
        return self._template.format(*self._values(values)).rstrip()

    @cached_property
    def _values(self) -> Callable[[dict[str, str]], Sequence[str]]:
        """values -> the kept columns' values, in order."""
        names = [c.name for c in self.columns]
        if len(names) < 2:
            return lambda values: [values[name] for name in names]
        return itemgetter(*names)

    @cached_property
    def _template(self) -> str:
        return (" " * GAP).join(self._fields)

    @cached_property
    def _fields(self) -> list[str]:
        last = len(self.columns) - 1
        return [
            f"{{:>{width}}}" if column.right else "{}" if i == last else f"{{:<{width}}}"
            for i, (column, width) in enumerate(zip(self.columns, self.widths, strict=True))
        ]

    def verdict_line(self, number: str, v: ConnectionVerdict) -> str:
        """`line(cells(Row(number, v)))` (number as text), faster: the text of the columns
        after the duration, which many connections share, is formatted once per values."""
        own, own_template, shared_template, tails = self._split
        key = (
            v.bytes_originator,
            v.bytes_responder,
            v.first_fin,
            v.first_rst,
            v.termination,
            v.conn_state,
            v.history,
            v.reason,
        )
        tail = tails.get(key)
        if tail is None:
            if len(tails) >= 4096:
                tails.clear()
            tail = tails[key] = shared_template.format(*_shared_values(self, v))
        head = own_template.format(*[text(number, v) for text in own])
        return (head + tail).rstrip()

    @cached_property
    def _split(self) -> tuple[list[Callable[[str, ConnectionVerdict], str]], str, str, dict]:
        """The kept columns of the connection's own (`_OWN`, first in COLUMNS) and the
        shared ones: their text functions, the two halves of the template (the separator
        at the start of the second), and the cache of the second half's text."""
        fields = self._fields
        k = sum(1 for c in self.columns if c.name in _OWN)
        own = [_OWN[c.name] for c in self.columns[:k]]
        shared = (" " * GAP).join(fields[k:])
        if k and k < len(fields):
            shared = " " * GAP + shared
        return own, (" " * GAP).join(fields[:k]), shared, {}

    def header(self) -> str:
        return self.line({c.name: c.name for c in self.columns})

    def dropped_note(self, width: int | None) -> str | None:
        if not self.dropped:
            return None
        return (
            f"columns left out to fit {width} columns: {', '.join(self.dropped)} "
            "(a wider terminal, --width 0, --csv, --json or --zeek show every column)"
        )


def layout(names: Sequence[str], widths: dict[str, int], available: int | None) -> Layout:
    """Keep the columns `names` that fit in `available` characters (None: no limit),
    leaving out whole columns, highest `drop` first. The reason column, last, takes the
    room left and is kept only if at least 30 characters remain."""
    kept = [_BY_NAME[n] for n in names]
    dropped: list[str] = []

    def total(columns: list[Column]) -> int:
        fixed = [widths[c.name] for c in columns if c.name != "reason"]
        reason = 30 if any(c.name == "reason" for c in columns) else 0
        return sum(fixed) + reason + GAP * (len(columns) - 1)

    if available:
        while total(kept) > available:
            candidates = [c for c in kept if c.drop]
            if not candidates:
                break
            worst = max(candidates, key=lambda c: c.drop)
            kept.remove(worst)
            dropped.append(worst.name)
    order = [c for c in COLUMNS if c in kept]
    return Layout(
        tuple(order),
        tuple(widths[c.name] for c in order),
        tuple(c.name for c in COLUMNS if c.name in dropped),
    )


def streamed_layout(available: int | None) -> Layout:
    """The `--all` layout: fixed widths (a longer value pushes its line, never cut)."""
    widths = {c.name: max(c.width, len(c.name)) for c in COLUMNS}
    if available is None:
        return layout([c.name for c in COLUMNS], widths, None)
    # At a terminal's width the reasons (often 100 characters and more) would wrap every
    # line: they are left out, and said so.
    lay = layout([c.name for c in COLUMNS if c.name != "reason"], widths, available)
    return Layout(lay.columns, lay.widths, (*lay.dropped, "reason"))


class WorstRows:
    """The `TOP` worst non-graceful rows seen so far (bounded memory), and counts."""

    def __init__(self, top: int = TOP) -> None:
        self.top = top
        self.non_graceful = 0
        self._heap: list[tuple[int, int, Row]] = []  # (-rank, -number, row): a max-heap

    def add(self, row: Row) -> None:
        rank = _RANK.get(row.verdict.termination)
        if rank is None:
            return
        self.non_graceful += 1
        item = (-rank, -row.number, row)
        if len(self._heap) < self.top:
            heapq.heappush(self._heap, item)
        elif item > self._heap[0]:
            heapq.heapreplace(self._heap, item)

    def rows(self) -> list[Row]:
        """Worst first, then in connection order."""
        return [row for _, _, row in sorted(self._heap, key=lambda i: (-i[0], -i[1]))]


def worst_view(worst: WorstRows, available: int | None) -> list[str]:
    """The default view's list: the worst rows, each with its reason below it, wrapped."""
    rows = worst.rows()
    if not rows:
        return ["no non-graceful connection"]
    shown = f"all {len(rows)}" if len(rows) == worst.non_graceful else f"{len(rows)} of "
    if len(rows) != worst.non_graceful:
        shown += f"{worst.non_graceful:,}"
    lines = [
        f"non-graceful connections, worst first ({shown}; order: "
        f"{', '.join(str(t) for t in WORST_FIRST)}):"
    ]
    values = [cells(r) for r in rows]
    names = [c.name for c in COLUMNS if c.name != "reason"]
    widths = {n: max(len(n), *(len(v[n]) for v in values)) for n in names}
    lay = layout(names, widths, available)
    lines.append(lay.header())
    indent = " " * (widths["#"] + GAP)
    wrap_at = max((available or 10_000) - len(indent), 30)
    for v in values:
        lines.append(lay.line(v))
        lines += textwrap.wrap(
            v["reason"],
            width=wrap_at,
            initial_indent=indent,
            subsequent_indent=indent,
            break_long_words=False,
            break_on_hyphens=False,
        )
    note = lay.dropped_note(available)
    if note:
        lines.append(note)
    return lines


def hint(worst: WorstRows, summary_connections: int) -> str:
    rest = summary_connections - len(worst.rows())
    if rest <= 0:
        return "every connection is listed above; --all prints them one per line"
    return (
        f"{rest:,} more connections not listed: --all prints every one as it is decided "
        "(--csv, --json and --zeek too)"
    )


def lines_of(rows: Iterable[Row], lay: Layout) -> Iterable[str]:
    for row in rows:
        yield lay.line(cells(row))
