"""Files in, verdicts out: the streaming pipeline behind `tcpclose analyze`."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from tcpclose.analyze.capfile import CaptureFile, open_capture
from tcpclose.analyze.filter import ConnectionFilter
from tcpclose.analyze.table import LINGER, ConnectionTable, Row
from tcpclose.classify import ConnectionVerdict
from tcpclose.model.packet import Packet

PathArg = str | Path | Sequence[str | Path]
_SLICE = 1 << 16
#: wall-clock seconds between the sweeps a live stream's reader makes on its own
LIVE_SWEEP = 0.2


@dataclass
class Progress:
    """Where a run is, for a progress bar: file bytes read of their size, packets, rows."""

    name: str = ""
    read: int = 0
    size: int = 0
    packets: int = 0
    connections: int = 0


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
    #: asked between batches: True stops the reading (the rows so far, then the open ones)
    stop: Callable[[], bool] = lambda: False
    #: True once `stop` stopped a run before the end of its input
    stopped: bool = False
    #: called after every batch with where the run is (a progress bar), or None
    progress: Callable[[Progress], None] | None = None


def _paths(paths: PathArg) -> list[Path]:
    if isinstance(paths, str | Path):
        return [Path(paths)]
    return [Path(p) for p in paths]


def eviction_warning(count: int, max_open: int) -> str:
    """The warning for connections finished early to keep the table's memory bounded."""
    return (
        f"{count:,} connections were finished early, while more than {max_open:,} were open "
        "at once (a flood of unanswered SYNs?): their rows end at their last packet so far, "
        "and a later packet of one starts a new row"
    )


def _first_time(capture: CaptureFile) -> float | None:
    """The timestamp of a file's first packet (the file is opened again to read it)."""
    again = open_capture(capture.path)
    try:
        for _, t, _, _, _ in again.frames():
            return t
        return None
    finally:
        again.close()


def in_time_order(files: list[CaptureFile], warnings: list[str]) -> list[CaptureFile]:
    """Regular files sorted by their first packet's time (a warning says so when that changes
    the order given); streams stay where they were given."""
    if len(files) < 2 or any(f.live for f in files):
        return files
    firsts = [_first_time(f) for f in files]
    keyed = sorted(range(len(files)), key=lambda i: (firsts[i] is None, firsts[i] or 0.0, i))
    if keyed != list(range(len(files))):
        order = ", ".join(files[i].name for i in keyed)
        warnings.append(
            f"files given out of time order: read by their first packet's time: {order}"
        )
    return [files[i] for i in keyed]


def read_rows(
    paths: PathArg,
    filter: str | ConnectionFilter | None = None,
    *,
    analysis: Analysis | None = None,
    collect: int | None = None,
    reference: bool = False,
    linger: float = LINGER,
) -> Iterator[Row]:
    """Yield one `Row` (number, verdict) per connection, as connections end (streaming).

    The files are read one after the other as one capture, in the time order of their first
    packets (a warning says when that is not the order given, another when a file starts
    before the one read before it ended). All files are opened and their headers checked
    first, so a bad file fails before any row. A stream (`-`, a pipe or a FIFO) is read live:
    as time passes without packets, connections that ended `linger` seconds ago (or idled
    out) are finished, so their rows come out while the stream is still open.
    `reference=True` takes the reference path: frame by frame, every segment through the
    tracker's rules as written (`ConnectionTracker.feed_reference`); the rows are the same,
    only slower (tests compare the two).
    """
    analysis = analysis if analysis is not None else Analysis()
    flt = ConnectionFilter(filter) if isinstance(filter, str) else filter
    files: list[CaptureFile] = []
    try:
        for path in _paths(paths):
            files.append(open_capture(path))
        files = in_time_order(files, analysis.warnings)
        ready: deque[Row] = deque()
        table = ConnectionTable(ready.append, flt, collect, reference, linger)
        progress = Progress()
        for capture in files:
            if reference:
                frames = capture.frames()
                while not analysis.stop():
                    # Run the table in slices so that rows flow out while the file is read.
                    before = table.packets
                    table.scan(islice(frames, _SLICE))
                    while ready:
                        yield ready.popleft()
                    if table.packets - before < _SLICE:
                        break
                else:
                    analysis.stopped = True
            else:
                yield from _scan_batches(capture, table, ready, analysis, progress)
            if capture.stopped:
                analysis.warnings.append(capture.stopped)
            if analysis.stopped:
                break
        table.finish()
        while ready:
            yield ready.popleft()
        if table.evicted:
            analysis.warnings.append(eviction_warning(table.evicted, table.max_open))
        analysis.packets = table.packets
        analysis.tcp_packets = table.tcp_packets
        analysis.skipped = table.skipped
        analysis.connections = table.connections
        analysis.timeline = table.collected
    finally:
        for capture in files:
            capture.close()


def _scan_batches(
    capture: CaptureFile,
    table: ConnectionTable,
    ready: deque[Row],
    analysis: Analysis,
    progress: Progress,
) -> Iterator[Row]:
    """The fast path over one file; a live stream also sweeps by the clock."""
    live = capture.live
    next_sweep = time.monotonic() + LIVE_SWEEP
    source = capture.source
    progress.name = capture.name
    progress.size = source.size if source is not None else 0
    report = analysis.progress
    last_time = None
    for lt, buf, starts, ends, times in capture.batches():
        if len(starts):
            if last_time is None and table.packets and times[0] < table.last_time:
                analysis.warnings.append(
                    f"{capture.name} starts {table.last_time - float(times[0]):.6f} s before "
                    "the end of the file read before it: the files overlap in time and are "
                    "read one after the other (connections in both may be split)"
                )
            last_time = float(times[-1])
            table.scan_batch(lt, buf, starts, ends, times)
        if live:
            now = time.monotonic()
            if now >= next_sweep:
                next_sweep = now + LIVE_SWEEP
                # Capture time goes on while the stream is silent.
                table.sweep(table.last_time + max(0.0, now - capture.last_data))
        while ready:
            yield ready.popleft()
        if report is not None:
            progress.read = source.consumed if source is not None else 0
            progress.packets = table.packets
            progress.connections = table.connections
            report(progress)
        if analysis.stop():
            analysis.stopped = True
            return


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
