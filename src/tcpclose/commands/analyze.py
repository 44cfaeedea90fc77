"""`tcpclose analyze FILE [FILE...]`: how every TCP connection in a capture ended.

Exit statuses: 0 analysed (also when a file was truncated: a warning on stderr says where it
stops), 2 bad command line or filter, 5 a file is missing, unreadable, empty, not a capture,
of an unsupported link type, `--connection N` names no connection, or the output cannot be
written (a full disk: `> /dev/full`), 1 a worker process failed, 130 interrupted
by Ctrl-C (SIGINT) and 143 by SIGTERM: the rows decided so far and the summary are written
first, the connections still open listed as such.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import shutil
import signal
import sys
import textwrap
import time
from argparse import Namespace
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TextIO

from tcpclose.analyze.capfile import open_capture
from tcpclose.analyze.filter import ConnectionFilter
from tcpclose.analyze.output import (
    Summary,
    csv_header,
    csv_row,
    csv_tail,
    json_tail,
    zeek_blank,
    zeek_footer,
    zeek_header,
    zeek_row,
    zeek_uid,
)
from tcpclose.analyze.progress import ProgressBar
from tcpclose.analyze.reading import Analysis, Progress, in_time_order, read_rows
from tcpclose.analyze.table import IDLE, LINGER, Row
from tcpclose.analyze.textview import WorstRows, hint, streamed_layout, worst_view
from tcpclose.argparsing import Parser, checked, non_negative_seconds
from tcpclose.errors import InputError, TcpcloseError, describe_oserror
from tcpclose.model.jsonshape import SCHEMA_VERSION
from tcpclose.status import ExitStatus

#: exit status after SIGTERM (128 + 15, as a shell reports a process it ended)
TERMINATED = 143


def configure(parser: Parser) -> None:
    parser.description = (
        "Read pcap/pcapng files (gzip too; - or a FIFO: a live stream) and tell, for every "
        "TCP connection, how it ended: graceful, half-close, abort, rst-after-close, "
        "rst-unread, fin-then-rst, rejected, no-answer, open or midstream, with a one-line "
        "reason and Zeek's conn_state/history. By default a bounded summary and the worst 20 "
        "connections; --all, --csv, --json and --zeek list every connection as it is decided. "
        "Exit statuses: 0 ok (a truncated file is analysed up to the cut, with a warning), "
        "1 a worker failed, 2 usage, 5 bad input file or unwritable output, 130 Ctrl-C, "
        "143 SIGTERM (summary written first)."
    )
    parser.add_argument(
        "files", metavar="FILE", nargs="+", help="pcap or pcapng capture; - for standard input"
    )
    parser.add_argument(
        "--filter",
        metavar="EXPR",
        help="keep connections matching host ADDR, net CIDR, port N (and/or/not, parentheses)",
    )
    fmt = parser.add_mutually_exclusive_group()
    fmt.add_argument(
        "--all", action="store_true", help="one line per connection, printed as it is decided"
    )
    fmt.add_argument("--json", action="store_true", help="one JSON document: rows and summary")
    fmt.add_argument("--csv", action="store_true", help="CSV rows with a header line")
    fmt.add_argument("--zeek", action="store_true", help="a Zeek conn.log (TSV with its header)")
    fmt.add_argument(
        "--connection",
        metavar="N",
        type=int,
        help="show connection N's packets as a timeline (N as in the # column)",
    )
    parser.add_argument(
        "--linger",
        metavar="SECONDS",
        type=checked(_linger),
        default=LINGER,
        help=f"capture time an ended connection waits for late packets before its row is "
        f"decided (default {LINGER:g}; at most 300, the idle timeout)",
    )
    parser.add_argument(
        "--width",
        metavar="N",
        type=int,
        default=None,
        help="text width for the default view and --all (default: the terminal's; "
        "0: no limit); whole columns are left out to fit, never cut",
    )


def _linger(text: str) -> float:
    value = non_negative_seconds(text)
    if value > IDLE:
        raise ValueError(f"{text!r} is more than {IDLE:g} seconds (the idle timeout)")
    return value


@dataclass(frozen=True)
class Options:
    files: tuple[Path, ...]
    filter: ConnectionFilter | None
    output: str  # "table", "all", "json", "csv", "zeek" or "timeline"
    connection: int | None
    linger: float = LINGER
    width: int | None = None  # None: the terminal's (if any); 0: no limit


def options(args: Namespace) -> Options:
    output = (
        "json"
        if args.json
        else "csv"
        if args.csv
        else "zeek"
        if getattr(args, "zeek", False)
        else "all"
        if getattr(args, "all", False)
        else "table"
    )
    if args.connection is not None:
        output = "timeline"
    flt = ConnectionFilter(args.filter) if args.filter else None
    return Options(
        tuple(Path(f) for f in args.files),
        flt,
        output,
        args.connection,
        getattr(args, "linger", LINGER),
        getattr(args, "width", None),
    )


def execute(args: Namespace) -> int:
    opts = options(args)
    if sys.stdout is None:  # started with standard output closed (`>&-`)
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - what the error path may flush
        raise InputError("cannot write standard output: it is closed")
    err = sys.stderr if sys.stderr is not None else open(os.devnull, "w")  # noqa: SIM115
    return run(opts, sys.stdout, err)


class _Signals:
    """SIGINT and SIGTERM set a flag that the reader checks between batches (a blocking read
    of a live stream wakes up every `capfile.TICK` s), so that the run ends with its summary."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._saved: dict[int, object] = {}

    def __enter__(self) -> _Signals:
        import threading

        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._saved[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.received = signum

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._saved.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]

    def stop(self) -> bool:
        return self.received is not None

    def status(self) -> int:
        if self.received == signal.SIGTERM:
            return TERMINATED
        if self.received == signal.SIGINT:
            return int(ExitStatus.INTERRUPTED)
        return int(ExitStatus.OK)


def run(opts: Options, out: TextIO, err: TextIO) -> int:
    """Analyse, write to `out` in the chosen format, warnings to `err`; return the status.

    The cyclic garbage collector is off meanwhile: the analysis makes no reference cycles,
    and the collector would walk the table's live connections again and again. A failed
    write of the output (a full disk) is one line and status 5."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _run(opts, out, err)
    except BrokenPipeError:
        raise
    except OSError as exc:
        if out is sys.stdout:
            # Python flushes stdout again at exit: let that flush go nowhere.
            with contextlib.suppress(OSError, ValueError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
        raise InputError(f"cannot write standard output: {describe_oserror(exc)}") from exc
    finally:
        if collecting:
            gc.enable()


def _width(opts: Options, out: TextIO) -> int | None:
    if opts.width is not None:
        return opts.width or None
    try:
        if out.isatty():
            return shutil.get_terminal_size().columns
    except (AttributeError, ValueError, OSError):
        pass
    return None


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def _same_terminal(a: TextIO, b: TextIO) -> bool:
    try:
        sa, sb = os.fstat(a.fileno()), os.fstat(b.fileno())
    except (AttributeError, ValueError, OSError):
        return False
    return (sa.st_dev, sa.st_ino, sa.st_rdev) == (sb.st_dev, sb.st_ino, sb.st_rdev)


def _run(opts: Options, out: TextIO, err: TextIO) -> int:
    analysis = Analysis()
    live = any(str(p) == "-" or not _regular(p) for p in opts.files)
    workers = 1
    if opts.filter is None and opts.output != "timeline" and not live:
        from tcpclose.analyze import parallel

        workers = parallel.workers_for(opts.files)
    # A progress bar on a terminal's stderr, unless the rows stream to that same terminal.
    bar = None
    if _is_terminal(err) and not (
        opts.output != "table" and _is_terminal(out) and _same_terminal(out, err)
    ):
        bar = ProgressBar(err)
    flush = out.flush

    def after_batch(progress: Progress) -> None:
        if bar is not None:
            bar.update(progress)
        if live:
            flush()

    with _Signals() as signals:
        analysis.stop = signals.stop
        analysis.progress = after_batch
        try:
            if workers > 1:
                _write_parallel(opts, workers, analysis, out, bar)
            else:
                rows = read_rows(
                    opts.files,
                    opts.filter,
                    analysis=analysis,
                    collect=opts.connection,
                    linger=opts.linger,
                )
                if opts.output == "timeline":
                    _write_timeline(opts, rows, analysis, out)
                else:
                    _write(_mode(opts, out), rows, analysis, out, bar)
        finally:
            if bar is not None:
                bar.clear()
        out.flush()
    _warn(analysis, err)
    if signals.received is not None:
        err.write(
            "tcpclose: interrupted: the rows so far and the summary are above "
            "(connections still open listed as open)\n"
        )
    return signals.status()


def _write_parallel(
    opts: Options, workers: int, analysis: Analysis, out: TextIO, bar: ProgressBar | None
) -> None:
    """Files analysed by `workers` processes (`tcpclose.analyze.parallel`): the same output
    as `_write`'s."""
    from tcpclose.analyze import parallel

    files = [open_capture(p) for p in opts.files]  # bad files fail before any row
    try:
        ordered = [f.path for f in in_time_order(files, analysis.warnings)]
    finally:
        for capture in files:
            capture.close()
    mode = _mode(opts, out)
    out.write(mode.header)
    summary, worst = parallel.write_rows(
        ordered, workers, mode.tail, mode.line, out.write, analysis, opts.linger
    )
    if bar is not None:
        bar.clear()
    out.write(mode.footer(summary, worst, analysis))


@dataclass
class _Mode:
    """One output format: its header, each row (whole, or without its number for the
    processes of `tcpclose.analyze.parallel` and `line` to put it back), its footer."""

    header: str
    #: a row's whole text; None: rows are not written one by one (the default view)
    row: Callable[[Row], str] | None
    #: a row's text without its number (whatever the row's number), for `line(number, tail)`
    tail: Callable[[Row], str] | None
    line: Callable[[int, str], str]
    footer: Callable[[Summary, WorstRows, Analysis], str]


def _mode(opts: Options, out: TextIO) -> _Mode:
    output = opts.output
    if output == "csv":
        return _Mode(
            csv_header(),
            csv_row,
            csv_tail,
            lambda number, tail: f"{number},{tail}",
            lambda summary, worst, analysis: "",
        )
    if output == "zeek":
        blank = "\t" + zeek_uid(0) + "\t"
        return _Mode(
            zeek_header(time.time()),
            zeek_row,
            zeek_blank,
            lambda number, tail: tail.replace(blank, "\t" + zeek_uid(number) + "\t", 1),
            lambda summary, worst, analysis: zeek_footer(time.time()),
        )
    if output == "json":
        separator = ["\n  "]

        def json_line(number: int, tail: str) -> str:
            text = f'{separator[0]}{{"number": {number}, {tail}'
            separator[0] = ",\n  "
            return text

        return _Mode(
            f'{{"schema_version": {SCHEMA_VERSION}, "connections": [',
            lambda row: json_line(row.number, json_tail(row)),
            json_tail,
            json_line,
            _json_footer,
        )
    width = _width(opts, out)
    if output == "all":
        lay = streamed_layout(width)
        digits = lay.widths[0]

        def footer(summary: Summary, worst: WorstRows, analysis: Analysis) -> str:
            lines = [lay.dropped_note(width) or "", *summary.lines(), _counts(analysis)]
            return "\n".join(line for line in lines if line) + "\n"

        return _Mode(
            lay.header() + "\n",
            lambda row: lay.verdict_line(str(row.number), row.verdict) + "\n",
            lambda row: lay.verdict_line("0", row.verdict)[digits:] + "\n",
            lambda number, tail: str(number).rjust(digits) + tail,
            footer,
        )

    def view(summary: Summary, worst: WorstRows, analysis: Analysis) -> str:
        lines = [*summary.lines(), _counts(analysis)]
        if width:
            lines = _wrapped(lines, width)
        lines.append("")
        lines += worst_view(worst, width)
        lines.append("")
        lines += _wrapped([hint(worst, summary.connections)], width or 0)
        return "\n".join(lines) + "\n"

    return _Mode("", None, None, lambda number, tail: "", view)


def _wrapped(lines: list[str], width: int) -> list[str]:
    """Prose lines wrapped at `width` (0: as they are); words are never cut."""
    if not width:
        return lines
    out: list[str] = []
    for line in lines:
        out += textwrap.wrap(
            line, width, subsequent_indent="  ", break_long_words=False, break_on_hyphens=False
        ) or [""]
    return out


def _write(
    mode: _Mode, rows: Iterator[Row], analysis: Analysis, out: TextIO, bar: ProgressBar | None
) -> None:
    """Single process: the header, each row as it is decided, the footer."""
    summary = Summary()
    worst = WorstRows()
    write = out.write
    add, keep = summary.add, worst.add
    write(mode.header)
    fmt = mode.row
    if fmt is None:
        for row in rows:
            add(row)
            keep(row)
    else:
        for row in rows:
            add(row)
            keep(row)
            write(fmt(row))
    if bar is not None:
        bar.clear()
    write(mode.footer(summary, worst, analysis))


def _write_timeline(opts: Options, rows: Iterator[Row], analysis: Analysis, out: TextIO) -> None:
    wanted = [row for row in rows if row.number == opts.connection]
    if not wanted:
        if analysis.stopped:
            return
        raise InputError(
            f"no connection {opts.connection} (the capture has {analysis.connections}: "
            f"0 to {analysis.connections - 1})"
        )
    from tcpclose.analyze.timeline import render_timeline  # --connection only: the diagram code

    out.write(render_timeline(wanted[0].number, wanted[0].verdict, analysis.timeline))


def _regular(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return True  # open_capture says what is wrong with it


def _warn(analysis: Analysis, err: TextIO) -> None:
    for warning in analysis.warnings:
        err.write(f"tcpclose: warning: {warning}\n")


def _counts(analysis: Analysis) -> str:
    return (
        f"{analysis.packets:,} packets read, {analysis.tcp_packets:,} TCP, "
        f"{analysis.skipped:,} skipped (not TCP/IP or cut short)"
    )


def _json_footer(summary: Summary, worst: WorstRows, analysis: Analysis) -> str:
    extra = {
        "packets": analysis.packets,
        "tcp_packets": analysis.tcp_packets,
        "skipped": analysis.skipped,
        "warnings": analysis.warnings,
        "interrupted": analysis.stopped,
    }
    return '\n], "summary": ' + json.dumps(summary.to_json(extra)) + "}\n"


__all__ = ["Options", "TcpcloseError", "configure", "execute", "options", "run"]
