"""`tcpclose analyze FILE [FILE...]`: how every TCP connection in a capture ended.

Exit statuses: 0 analysed (also when a file was truncated: a warning on stderr says where it
stops), 2 bad command line or filter, 5 a file is missing, empty, not a capture, of an
unsupported link type, or `--connection N` names no connection.
"""

from __future__ import annotations

import gc
import json
import sys
from argparse import Namespace
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from tcpclose.analyze.capfile import open_capture
from tcpclose.analyze.filter import ConnectionFilter
from tcpclose.analyze.output import (
    TROUBLE,
    Summary,
    clock,
    closed_first,
    csv_header,
    csv_row,
    endpoint,
    json_row,
)
from tcpclose.analyze.reading import Analysis, read_rows
from tcpclose.analyze.table import Row
from tcpclose.analyze.timeline import render_timeline
from tcpclose.argparsing import Parser
from tcpclose.errors import InputError
from tcpclose.status import ExitStatus


def configure(parser: Parser) -> None:
    parser.description = (
        "Read pcap/pcapng files (gzip too) and tell, for every TCP connection, how it ended: "
        "graceful, half-close, abort, rst-after-close, rst-unread, fin-then-rst, rejected, "
        "no-answer, open or midstream, with a one-line reason and Zeek's conn_state/history. "
        "Exit statuses: 0 ok (a truncated file is analysed up to the cut, with a warning), "
        "2 usage, 5 bad input file."
    )
    parser.add_argument("files", metavar="FILE", nargs="+", help="pcap or pcapng capture")
    parser.add_argument(
        "--filter",
        metavar="EXPR",
        help="keep connections matching host ADDR, net CIDR, port N (and/or/not, parentheses)",
    )
    fmt = parser.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="one JSON document: rows and summary")
    fmt.add_argument("--csv", action="store_true", help="CSV rows with a header line")
    fmt.add_argument(
        "--connection",
        metavar="N",
        type=int,
        help="show connection N's packets as a timeline (N as in the # column)",
    )


@dataclass(frozen=True)
class Options:
    files: tuple[Path, ...]
    filter: ConnectionFilter | None
    output: str  # "table", "json", "csv" or "timeline"
    connection: int | None


def options(args: Namespace) -> Options:
    output = "json" if args.json else "csv" if args.csv else "table"
    if args.connection is not None:
        output = "timeline"
    flt = ConnectionFilter(args.filter) if args.filter else None
    return Options(tuple(Path(f) for f in args.files), flt, output, args.connection)


def execute(args: Namespace) -> int:
    opts = options(args)
    return run(opts, sys.stdout, sys.stderr)


def run(opts: Options, out: TextIO, err: TextIO) -> int:
    """Analyse, write to `out` in the chosen format, warnings to `err`; return the status.

    The cyclic garbage collector is off meanwhile: the analysis makes no reference cycles,
    and the collector would walk the table's live connections again and again."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _run(opts, out, err)
    finally:
        if collecting:
            gc.enable()


def _run(opts: Options, out: TextIO, err: TextIO) -> int:
    analysis = Analysis()
    if opts.output == "csv" and opts.filter is None:
        from tcpclose.analyze import parallel

        workers = parallel.workers_for(opts.files)
        if workers > 1:
            for path in opts.files:  # a bad file fails before any row, as in one process
                open_capture(path).close()
            parallel.write_csv(opts.files, workers, out, analysis)
            for warning in analysis.warnings:
                err.write(f"tcpclose: warning: {warning}\n")
            return int(ExitStatus.OK)
    rows = read_rows(opts.files, opts.filter, analysis=analysis, collect=opts.connection)
    summary = Summary()
    if opts.output == "csv":
        out.write(csv_header())
        for row in rows:
            summary.add(row)
            out.write(csv_row(row))
    elif opts.output == "json":
        _write_json(rows, summary, analysis, out)
    elif opts.output == "timeline":
        wanted = [row for row in rows if row.number == opts.connection]
        if not wanted:
            raise InputError(
                f"no connection {opts.connection} (the capture has {analysis.connections}: "
                f"0 to {analysis.connections - 1})"
            )
        out.write(render_timeline(wanted[0].number, wanted[0].verdict, analysis.timeline))
    else:
        collected = sorted(rows, key=lambda r: r.number)
        for row in collected:
            summary.add(row)
        _write_table(collected, summary, analysis, out)
    for warning in analysis.warnings:
        err.write(f"tcpclose: warning: {warning}\n")
    return int(ExitStatus.OK)


def _write_json(rows: Iterable[Row], summary: Summary, analysis: Analysis, out: TextIO) -> None:
    """One JSON document, written as rows arrive: {"connections": [...], "summary": {...}}."""
    out.write('{"connections": [')
    first = True
    for row in rows:
        summary.add(row)
        out.write("\n  " if first else ",\n  ")
        out.write(json_row(row))
        first = False
    extra = {
        "packets": analysis.packets,
        "tcp_packets": analysis.tcp_packets,
        "skipped": analysis.skipped,
        "warnings": analysis.warnings,
    }
    out.write('\n], "summary": ' + json.dumps(summary.to_json(extra)) + "}\n")


def _write_table(rows: list[Row], summary: Summary, analysis: Analysis, out: TextIO) -> None:
    """A rich table (colour only on a terminal), then the summary lines."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=out, highlight=False, soft_wrap=False, markup=False)
    if not console.is_terminal:
        console.width = 240  # a file or a pipe: keep one line per connection where possible
    table = Table(box=None, pad_edge=False, header_style="bold")
    for name, justify in (
        ("#", "right"),
        ("originator", "left"),
        ("responder", "left"),
        ("start", "left"),
        ("duration", "right"),
        ("bytes ->", "right"),
        ("bytes <-", "right"),
        ("closed first", "left"),
        ("termination", "left"),
        ("reason", "left"),
        ("conn_state", "left"),
        ("history", "left"),
    ):
        table.add_column(
            name,
            justify=justify,  # type: ignore[arg-type]
            no_wrap=name != "reason",
            min_width=40 if name == "reason" else None,
            overflow="fold",
        )
    for row in rows:
        v = row.verdict
        style = "red" if v.termination in TROUBLE else None
        table.add_row(
            str(row.number),
            endpoint(v.originator),
            endpoint(v.responder),
            clock(v.start)[11:],
            f"{v.duration:.3f}s",
            str(v.bytes_originator),
            str(v.bytes_responder),
            closed_first(v),
            str(v.termination),
            v.reason,
            v.conn_state,
            v.history,
            style=style,
        )
    if rows:
        console.print(table)
    for line in summary.lines():
        console.print(line)
    console.print(
        f"{analysis.packets} packets read, {analysis.tcp_packets} TCP, "
        f"{analysis.skipped} skipped (not TCP/IP or cut short)"
    )
