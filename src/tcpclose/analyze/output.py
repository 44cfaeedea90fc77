"""Formatting `tcpclose analyze` results: pure functions from rows to text (no writing here)."""

from __future__ import annotations

import csv
import json
import math
import re
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

# the rows' text in C, when built (None: the Python path, same output)
from tcpclose.analyze.compiled import fastscan as _fastscan
from tcpclose.analyze.table import Row
from tcpclose.classify import ConnectionVerdict, Side, Termination

#: CSV and JSON columns, in order.
COLUMNS = (
    "number",
    "originator",
    "responder",
    "start",
    "duration",
    "bytes_originator",
    "bytes_responder",
    "packets",
    "first_fin",
    "first_rst",
    "closed_first",
    "data_after_fin",
    "termination",
    "reason",
    "conn_state",
    "history",
)

#: terminations that lose data or signal trouble, for colour and the summary
TROUBLE = frozenset(
    {
        Termination.ABORT,
        Termination.RST_AFTER_CLOSE,
        Termination.RST_UNREAD,
        Termination.REJECTED,
        Termination.NO_ANSWER,
    }
)


def endpoint(ep: tuple[str, int]) -> str:
    """("::1", 80) -> "[::1]:80"; ("127.0.0.1", 80) -> "127.0.0.1:80"."""
    host, port = ep
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def closed_first(v: ConnectionVerdict) -> str:
    """Who closed first: the side whose FIN or RST came first ("originator FIN")."""
    if v.first_fin is None and v.first_rst is None:
        return ""
    if v.first_rst is None:
        return f"{v.first_fin} FIN"
    if v.first_fin is None:
        return f"{v.first_rst} RST"
    # Both: nothing follows an RST, so the FIN came first.
    return f"{v.first_fin} FIN"


def record(row: Row) -> dict[str, Any]:
    """One row as a flat JSON-able dict with the COLUMNS keys (the values of
    `ConnectionVerdict.to_json`, built directly: `dataclasses.asdict` deep-copies every field
    and cost more than the whole classification of a short connection)."""
    v = row.verdict
    return {
        "number": row.number,
        "originator": endpoint(v.originator),
        "responder": endpoint(v.responder),
        "start": v.start,
        "duration": v.end - v.start,
        "bytes_originator": v.bytes_originator,
        "bytes_responder": v.bytes_responder,
        "packets": v.packets,
        "first_fin": None if v.first_fin is None else str(v.first_fin),
        "first_rst": None if v.first_rst is None else str(v.first_rst),
        "closed_first": closed_first(v),
        "data_after_fin": v.data_after_fin,
        "termination": str(v.termination),
        "reason": v.reason,
        "conn_state": v.conn_state,
        "history": v.history,
    }


def csv_header() -> str:
    return _csv_line(COLUMNS)


def csv_row(row: Row) -> str:
    """The `record` values in COLUMNS order, times with 6 decimals, None as empty."""
    if _fastscan is not None:  # this function in C, once the row's tail is cached
        text = _fastscan.text_row(0, row, _TAILS)
        if text is not None:
            return text
    v = row.verdict
    tail_values = (
        v.bytes_originator,
        v.bytes_responder,
        v.packets,
        v.first_fin,
        v.first_rst,
        v.data_after_fin,
        v.termination,
        v.reason,
        v.conn_state,
        v.history,
    )
    tail = _TAILS.get(tail_values)
    if tail is None:
        if len(_TAILS) >= 4096:
            _TAILS.clear()
        tail = _TAILS[tail_values] = _csv_line(
            (
                v.bytes_originator,
                v.bytes_responder,
                v.packets,
                "" if v.first_fin is None else str(v.first_fin),
                "" if v.first_rst is None else str(v.first_rst),
                closed_first(v),
                v.data_after_fin,
                str(v.termination),
                v.reason,
                v.conn_state,
                v.history,
            )
        )
    originator = endpoint(v.originator)
    responder = endpoint(v.responder)
    if _NEEDS_QUOTES.search(originator + responder):
        head = (row.number, originator, responder, f"{v.start:.6f}", f"{v.end - v.start:.6f}")
        return _csv_line((*head, "")).removesuffix(",\n") + "," + tail
    return f"{row.number},{originator},{responder},{v.start:.6f},{v.end - v.start:.6f},{tail}"


#: what makes csv.writer quote a field (QUOTE_MINIMAL): delimiter, quote, line breaks
_NEEDS_QUOTES = re.compile(r'[,"\r\n]')
#: the CSV text of the columns after the times, by their values (many rows share them)
_TAILS: dict[tuple, str] = {}


class _Line:
    """A file-like sink for `csv.writer` that keeps the last line written."""

    __slots__ = ("text",)

    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text = text


_SINK = _Line()
_WRITER = csv.writer(_SINK, lineterminator="\n")


def _csv_line(values: Iterable[Any]) -> str:
    _WRITER.writerow(values)
    return _SINK.text


def csv_tail(row: Row) -> str:
    """`csv_row` without the number and its comma (the row's number may be any)."""
    if _fastscan is not None:
        text = _fastscan.text_row(0, row, _TAILS, True)
        if text is not None:
            return text
    return csv_row(Row(0, row.verdict))[2:]


def json_tail(row: Row) -> str:
    """`json_row` after its `"number": N, ` (the row's number may be any)."""
    if _fastscan is not None:
        text = _fastscan.text_row(1, row, _JSON_TAILS, True)
        if text is not None:
            return text
    return json_row(row).split(", ", 1)[1]


def zeek_blank(row: Row) -> str:
    """`zeek_row` of the row as if it were number 0 (its uid is put back later)."""
    if _fastscan is not None:
        text = _fastscan.text_row(2, row, _TAILS, True)
        if text is not None:
            return text
    return zeek_row(Row(0, row.verdict))


def json_row(row: Row) -> str:
    """`json.dumps(record(row), ensure_ascii=False)`, built from a cached text of the columns
    that many rows share (tests compare the two)."""
    if _fastscan is not None:  # this function in C, once the row's tail is cached
        text = _fastscan.text_row(1, row, _JSON_TAILS)
        if text is not None:
            return text
    v = row.verdict
    tail_values = (
        v.bytes_originator,
        v.bytes_responder,
        v.packets,
        v.first_fin,
        v.first_rst,
        v.data_after_fin,
        v.termination,
        v.reason,
        v.conn_state,
        v.history,
    )
    tail = _JSON_TAILS.get(tail_values)
    if tail is None:
        if len(_JSON_TAILS) >= 4096:
            _JSON_TAILS.clear()
        rec = record(row)
        for name in ("number", "originator", "responder", "start", "duration"):
            del rec[name]
        tail = _JSON_TAILS[tail_values] = json.dumps(rec, ensure_ascii=False)[1:]
    # Addresses and ports need no JSON escaping; json.dumps writes floats with repr().
    return (
        f'{{"number": {row.number}, "originator": "{endpoint(v.originator)}", '
        f'"responder": "{endpoint(v.responder)}", "start": {v.start!r}, '
        f'"duration": {v.end - v.start!r}, {tail}'
    )


#: the JSON text of the columns after the duration, by their values (many rows share them)
_JSON_TAILS: dict[tuple, str] = {}


#: str() of every termination (an Enum's str() is a Python call)
_TERMINATION_NAMES = {t: str(t) for t in Termination}


class Summary:
    """Counts per termination and conn_state, who reset most and bytes, row by row."""

    def __init__(self) -> None:
        self.connections = 0
        self.by_termination: Counter[str] = Counter()
        self.by_conn_state: Counter[str] = Counter()
        self.resetters: Counter[str] = Counter()
        self.bytes_originator = 0
        self.bytes_responder = 0

    def add(self, row: Row) -> None:
        v = row.verdict
        self.connections += 1
        self.bytes_originator += v.bytes_originator
        self.bytes_responder += v.bytes_responder
        self.by_termination[_TERMINATION_NAMES[v.termination]] += 1
        self.by_conn_state[v.conn_state] += 1
        if v.first_rst is not None:
            # Clients are named by address (their ports are ephemeral), servers by service.
            who = (
                f"{v.originator[0]} (originator)"
                if v.first_rst is Side.ORIGINATOR
                else f"{endpoint(v.responder)} (responder)"
            )
            self.resetters[who] += 1

    def merge(self, other: Summary) -> None:
        """Add another summary's counts (of other rows) to this one."""
        self.connections += other.connections
        self.by_termination.update(other.by_termination)
        self.by_conn_state.update(other.by_conn_state)
        self.resetters.update(other.resetters)
        self.bytes_originator += other.bytes_originator
        self.bytes_responder += other.bytes_responder

    def to_json(self, extra: dict[str, Any]) -> dict[str, Any]:
        return {
            "connections": self.connections,
            "terminations": dict(_most(self.by_termination)),
            "conn_states": dict(_most(self.by_conn_state)),
            "top_resetters": [
                {"endpoint": who, "resets": n} for who, n in _most(self.resetters, 5)
            ],
            "bytes": {"originators": self.bytes_originator, "responders": self.bytes_responder},
            **extra,
        }

    def lines(self) -> list[str]:
        """The summary as plain lines for the terminal."""
        counts = ", ".join(f"{name} {n:,}" for name, n in _most(self.by_termination))
        out = [f"{self.connections:,} connections: {counts or 'none'}"]
        if self.by_conn_state:
            states = ", ".join(f"{name} {n:,}" for name, n in _most(self.by_conn_state))
            out.append(f"conn_state: {states}")
        if self.resetters:
            worst = ", ".join(f"{who}: {n:,}" for who, n in _most(self.resetters, 5))
            out.append(f"who reset most: {worst}")
        out.append(
            f"payload bytes: {self.bytes_originator:,} from originators, "
            f"{self.bytes_responder:,} from responders"
        )
        return out


def _most(counts: Counter[str], n: int | None = None) -> list[tuple[str, int]]:
    """The largest counts first, equal counts by name (the same whatever the order of the
    rows that made them)."""
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return ordered if n is None else ordered[:n]


#: Zeek conn.log fields written by `--zeek` (the ones computed here), in Zeek's order
ZEEK_FIELDS = (
    ("ts", "time"),
    ("uid", "string"),
    ("id.orig_h", "addr"),
    ("id.orig_p", "port"),
    ("id.resp_h", "addr"),
    ("id.resp_p", "port"),
    ("proto", "enum"),
    ("duration", "interval"),
    ("orig_bytes", "count"),
    ("resp_bytes", "count"),
    ("conn_state", "string"),
    ("history", "string"),
    ("orig_pkts", "count"),
    ("resp_pkts", "count"),
)


def _zeek_time(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d-%H-%M-%S")


def zeek_header(opened: float) -> str:
    """The header lines of a Zeek TSV conn.log (as Zeek's ASCII writer prints them)."""
    names = "\t".join(name for name, _ in ZEEK_FIELDS)
    types = "\t".join(kind for _, kind in ZEEK_FIELDS)
    return (
        "#separator \\x09\n"
        "#set_separator\t,\n"
        "#empty_field\t(empty)\n"
        "#unset_field\t-\n"
        "#path\tconn\n"
        f"#open\t{_zeek_time(opened)}\n"
        f"#fields\t{names}\n"
        f"#types\t{types}\n"
    )


def zeek_footer(closed: float) -> str:
    return f"#close\t{_zeek_time(closed)}\n"


_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def zeek_uid(number: int) -> str:
    """A Zeek-style uid: "C" and 17 base-62 digits, here the connection's number (unique in
    one run, and the same for the same capture)."""
    digits = []
    while number:
        number, digit = divmod(number, 62)
        digits.append(_BASE62[digit])
    return "C" + "".join(reversed(digits)).rjust(17, "0")


def zeek_row(row: Row) -> str:
    """One conn.log line (tab-separated, in ZEEK_FIELDS order)."""
    if _fastscan is not None:  # this function in C
        text = _fastscan.text_row(2, row, _TAILS)
        if text is not None:
            return text
    v = row.verdict
    return (
        f"{v.start:.6f}\t{zeek_uid(row.number)}\t{v.originator[0]}\t"
        f"{v.originator[1]}\t{v.responder[0]}\t{v.responder[1]}\ttcp\t"
        f"{v.end - v.start:.6f}\t{v.bytes_originator}\t{v.bytes_responder}\t"
        f"{v.conn_state}\t{v.history or '(empty)'}\t{v.packets_originator}\t"
        f"{v.packets_responder}\n"
    )


def clock(t: float) -> str:
    """Epoch seconds -> "2025-11-25 21:16:03.123456" (UTC)."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def time_of_day(t: float) -> str:
    """`clock(t)[11:]` ("21:16:03.123456"), without a datetime: the microseconds rounded
    as `datetime.fromtimestamp` rounds them (the fraction times 10**6, half to even; a
    million carries into the seconds). Tests compare the two."""
    if _fastscan is not None:  # this function in C
        text = _fastscan.time_of_day(t)
        if text is not None:
            return text
    if not 0.0 <= t < 2.5e11:  # (beyond: the year 9999 is near, datetime decides)
        return clock(t)[11:]
    fraction, whole = math.modf(t)
    micro = round(fraction * 1e6)
    second = int(whole)
    if micro >= 1_000_000:
        micro -= 1_000_000
        second += 1
    minutes, s = divmod(second % 86400, 60)
    h, m = divmod(minutes, 60)
    return f"{h:02d}:{m:02d}:{s:02d}.{micro:06d}"
