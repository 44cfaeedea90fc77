"""Formatting `tcpclose analyze` results: pure functions from rows to text (no writing here)."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

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


def json_row(row: Row) -> str:
    return json.dumps(record(row), ensure_ascii=False)


class Summary:
    """Counts per termination and who reset most, accumulated row by row."""

    def __init__(self) -> None:
        self.connections = 0
        self.by_termination: Counter[str] = Counter()
        self.by_conn_state: Counter[str] = Counter()
        self.resetters: Counter[str] = Counter()

    def add(self, row: Row) -> None:
        v = row.verdict
        self.connections += 1
        self.by_termination[str(v.termination)] += 1
        self.by_conn_state[v.conn_state] += 1
        if v.first_rst is not None:
            # Clients are named by address (their ports are ephemeral), servers by service.
            who = (
                f"{v.originator[0]} (originator)"
                if v.first_rst is Side.ORIGINATOR
                else f"{endpoint(v.responder)} (responder)"
            )
            self.resetters[who] += 1

    def to_json(self, extra: dict[str, Any]) -> dict[str, Any]:
        return {
            "connections": self.connections,
            "terminations": dict(self.by_termination.most_common()),
            "conn_states": dict(self.by_conn_state.most_common()),
            "top_resetters": [
                {"endpoint": who, "resets": n} for who, n in self.resetters.most_common(5)
            ],
            **extra,
        }

    def lines(self) -> list[str]:
        """The summary as plain lines for the terminal."""
        counts = ", ".join(f"{name} {n}" for name, n in self.by_termination.most_common())
        out = [f"{self.connections} connections: {counts or 'none'}"]
        if self.resetters:
            worst = ", ".join(f"{who}: {n}" for who, n in self.resetters.most_common(5))
            out.append(f"who reset most: {worst}")
        return out


def clock(t: float) -> str:
    """Epoch seconds -> "2025-11-25 21:16:03.123456" (UTC)."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
