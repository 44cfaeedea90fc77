"""Files in, verdicts out: the streaming pipeline behind `tcpclose analyze`."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from tcpclose.analyze.capfile import open_capture
from tcpclose.analyze.filter import ConnectionFilter
from tcpclose.analyze.table import ConnectionTable, Row
from tcpclose.classify import ConnectionVerdict
from tcpclose.model.packet import Packet

PathArg = str | Path | Sequence[str | Path]
_SLICE = 1 << 16


@dataclass
class Analysis:
    """What a run saw besides the rows: counts, and one line per file that stopped early."""

    packets: int = 0
    tcp_packets: int = 0
    skipped: int = 0
    connections: int = 0
    warnings: list[str] = field(default_factory=list)
    #: packets of the connection asked for with `collect`, in capture order
    timeline: list[Packet] = field(default_factory=list)


def _paths(paths: PathArg) -> list[Path]:
    if isinstance(paths, str | Path):
        return [Path(paths)]
    return [Path(p) for p in paths]


def read_rows(
    paths: PathArg,
    filter: str | ConnectionFilter | None = None,
    *,
    analysis: Analysis | None = None,
    collect: int | None = None,
    reference: bool = False,
) -> Iterator[Row]:
    """Yield one `Row` (number, verdict) per connection, as connections end (streaming).

    The files are read one after the other as one capture (give them in time order). All
    files are opened and their headers checked first, so a bad file fails before any row.
    `reference=True` takes the reference path: frame by frame, every segment through the
    tracker's rules as written (`ConnectionTracker.feed_reference`); the rows are the same,
    only slower (tests compare the two).
    """
    analysis = analysis if analysis is not None else Analysis()
    flt = ConnectionFilter(filter) if isinstance(filter, str) else filter
    files = []
    try:
        for path in _paths(paths):
            files.append(open_capture(path))
        ready: deque[Row] = deque()
        table = ConnectionTable(ready.append, flt, collect, reference)
        for capture in files:
            if reference:
                frames = capture.frames()
                while True:
                    # Run the table in slices so that rows flow out while the file is read.
                    before = table.packets
                    table.scan(islice(frames, _SLICE))
                    while ready:
                        yield ready.popleft()
                    if table.packets - before < _SLICE:
                        break
            else:
                for batch in capture.batches():
                    table.scan_batch(*batch)
                    while ready:
                        yield ready.popleft()
            if capture.stopped:
                analysis.warnings.append(capture.stopped)
        table.finish()
        while ready:
            yield ready.popleft()
        analysis.packets = table.packets
        analysis.tcp_packets = table.tcp_packets
        analysis.skipped = table.skipped
        analysis.connections = table.connections
        analysis.timeline = table.collected
    finally:
        for capture in files:
            capture.close()


def read_connections(
    paths: PathArg,
    filter: str | ConnectionFilter | None = None,
) -> Iterator[ConnectionVerdict]:
    """Yield the verdict on every TCP connection in the capture file(s), streaming.

    Verdicts come out as connections end (the ones still open at the end come last, in start
    order). Raises `InputError` for a file that is empty, not a capture, or of an unsupported
    link type; a truncated file is read up to the cut.
    """
    for row in read_rows(paths, filter):
        yield row.verdict


def analyze_files(
    paths: PathArg,
    filter: str | None = None,
    collect: int | None = None,
) -> tuple[list[Row], Analysis]:
    """Every row, sorted by connection number, and the run's counts (not streaming)."""
    analysis = Analysis()
    rows = sorted(
        read_rows(paths, filter, analysis=analysis, collect=collect), key=lambda r: r.number
    )
    return rows, analysis
