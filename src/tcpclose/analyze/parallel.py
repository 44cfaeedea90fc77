"""`tcpclose analyze` on more than one core, with the single process's output.

Every process (the command's own and `workers - 1` forked ones) reads and decodes the whole
capture, which is the cheap part, but tracks only its share of the connections: those whose
canonical key hashes to its index (`owner`, symmetric in the two directions, so both
directions of a connection are in one share). Each process still counts every packet and
sweeps at the same packets as the single process (`SWEEP`-th packets that are TCP), with the
same time, so every connection ends at the same point of the capture as in one process.

Each connection ends at a point of the capture: before packet p (a SYN that starts a new
connection on its 4-tuple: tag 2p), in the sweep after packet p (tag 2p + 1), or at the end.
One process prints rows in (tag, start order) order; so does the merge here. A connection's
number is its rank by first packet among all connections: its number in its own share plus
the connections of the other shares that started before it. Processes work in lockstep, one
message per read chunk (that chunk's started connections and finished rows, as CSV lines
without the number), so the parent holds at most a few chunks' rows.

Every output mode takes this path for regular files without `--filter` or `--connection`
(`commands.analyze`); `TCPCLOSE_WORKERS` sets the number of processes (1: never; unset: 2
when there are 2 cores or more and the files hold at least `MIN_BYTES`).
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import os
import pickle
import signal
import sys
import traceback
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator, Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from tcpclose.analyze.capfile import open_capture
from tcpclose.analyze.output import Summary, csv_header, csv_tail
from tcpclose.analyze.reading import Analysis, Progress, eviction_warning
from tcpclose.analyze.table import (
    LINGER,
    MAX_OPEN,
    SWEEP,
    ConnectionTable,
    Row,
    decode,
    ipv4_fields,
    ipv4_headers,
    reverse_key,
)
from tcpclose.analyze.textview import WorstRows
from tcpclose.errors import TcpcloseError
from tcpclose.status import ExitStatus

if TYPE_CHECKING:
    import numpy as np
else:
    from tcpclose.analyze.lazynumpy import np


class WorkerFailed(TcpcloseError):
    """A worker process failed or vanished: one line, exit status 1 (FAILURE)."""

    status = ExitStatus.FAILURE


#: files smaller than this (in all) are analysed in one process: below ~3 MB, starting and
#: feeding a second process costs more than it saves (bench/analyze/README.md)
MIN_BYTES = 4_000_000
#: the tag of the connections finished at the end of the capture
_END = 1 << 62
_MIX = 0x9E3779B1
#: the part of an even share that share 0 (the parent, which also merges) tracks
PARENT_SHARE = 0.88


def workers_for(paths: Sequence[Path]) -> int:
    """How many processes to analyse these files with (1: the single-process path)."""
    setting = os.environ.get("TCPCLOSE_WORKERS", "")
    if setting:
        try:
            return max(1, int(setting))
        except ValueError:
            return 1
    if (os.cpu_count() or 1) < 2 or not hasattr(os, "fork"):
        return 1
    try:
        size = sum(p.stat().st_size for p in paths)
    except OSError:
        return 1
    return 2 if size >= MIN_BYTES else 1


def owner(canonical: bytes, alen: int, workers: int) -> int:
    """The share (0 .. workers - 1) of the connection with this key (either direction's)."""
    a = int.from_bytes(canonical[:alen], "big") ^ int.from_bytes(canonical[alen : 2 * alen], "big")
    while a >> 32:
        a = (a & 0xFFFFFFFF) ^ (a >> 32)
    ports = int.from_bytes(canonical[2 * alen : 2 * alen + 2], "big") ^ int.from_bytes(
        canonical[2 * alen + 2 : 2 * alen + 4], "big"
    )
    h = (a ^ ports ^ (ports << 16)) & 0xFFFFFFFF
    return bisect_right(_cuts(workers), (h * _MIX) & 0xFFFFFFFF)


def _owners(h: np.ndarray, workers: int) -> np.ndarray:
    """`owner` of the IPv4 frames whose 40 header bytes are the rows of `h`."""
    u32 = h.view(">u4")
    u16 = h.view(">u2")
    ports = (u16[:, 10] ^ u16[:, 11]).astype(np.uint64)
    addresses = (u32[:, 3] ^ u32[:, 4]).astype(np.uint64)
    mixed = ((addresses ^ ports ^ (ports << np.uint64(16))) * np.uint64(_MIX)) & (
        np.uint64(0xFFFFFFFF)
    )
    return np.searchsorted(np.array(_cuts(workers), dtype=np.uint64), mixed, side="right")


@cache
def _cuts(workers: int) -> list[int]:
    """Where each share's hash values end (32-bit): share 0, this process's, which also
    merges and writes the rows, gets `PARENT_SHARE` of a share's due; the others the rest."""
    first = PARENT_SHARE / workers
    rest = (1 - first) / (workers - 1) if workers > 1 else 0.0
    return [int((first + rest * i) * (1 << 32)) for i in range(workers - 1)]


class ShareTable(ConnectionTable):
    """A `ConnectionTable` that tracks only the connections of share `index` of `workers`, and
    tags every finished row with where in the capture it finished (`tag`)."""

    def __init__(
        self, done: Callable[[Row], None], index: int, workers: int, linger: float = LINGER
    ) -> None:
        super().__init__(done, linger=linger)
        self.index = index
        self.workers = workers
        self.max_open = MAX_OPEN // workers  # the processes' tables together: one table's
        #: where the row being finished ends: 2p (before packet p), 2p + 1 (sweep after p)
        self.tag = 0
        #: the packet number (1-based) of each of this share's connections' first packet
        self.started: list[int] = []

    def _new(
        self,
        key: bytes,
        canonical: bytes,
        swap: bool,
        alen: int,
        t: float,
        sport: int,
        dport: int,
        flags: int,
    ) -> list | None:
        entry = super()._new(key, canonical, swap, alen, t, sport, dport, flags)
        self.started.append(self.packets)
        return entry

    def _sweep(self, now: float) -> None:
        self.tag = 2 * self.packets + 1
        super()._sweep(now)

    def _evict(self) -> None:
        self.tag = 2 * self.packets + 1  # after the packet that started one too many
        super()._evict()

    def finish(self) -> None:
        self.tag = _END
        super().finish()

    def _frame(self, lt: int, t: float, buf: bytes, off: int, end: int) -> None:
        decoded = decode(lt, buf, off, end)
        if decoded is not None:
            key, alen = decoded[0], decoded[1]
            reverse = reverse_key(key, alen)
            canonical = reverse if reverse < key else key
            if owner(canonical, alen, self.workers) != self.index:
                # Another share's: only the sweep the single process makes after it.
                self.tcp_packets += 1
                if not self.packets & (SWEEP - 1):
                    self._sweep(t)
                return
        self.tag = 2 * self.packets
        super()._frame(lt, t, buf, off, end)

    def _started_list(self) -> list[int] | None:
        return self.started

    def _share(self) -> tuple[int, bytes]:
        # uint32 in the machine's byte order, as the compiled loop reads them
        return self.index, b"".join(c.to_bytes(4, sys.byteorder) for c in _cuts(self.workers))

    def _scan_batch(
        self, lt: int, buf: bytes, starts: np.ndarray, ends: np.ndarray, times: np.ndarray
    ) -> None:
        """The pure fast path (no compiled loop) for a share: plain IPv4 decoded with numpy."""
        base = self.packets
        count = len(starts)
        starts, ends, times = np.asarray(starts), np.asarray(ends), np.asarray(times)
        headers = ipv4_headers(lt, buf, starts, ends)
        if headers is None:
            for i in range(count):
                self.packets = base + i + 1
                self._frame(lt, float(times[i]), buf, int(starts[i]), int(ends[i]))
            return
        h, n, ok = headers
        mine = ok & (_owners(h, self.workers) == self.index)
        numbers = np.arange(base + 1, base + count + 1, dtype=np.int64)
        sweeps = (numbers & (SWEEP - 1)) == 0
        sel = np.flatnonzero(~ok | mine | sweeps)
        ends_sel = ends[sel]
        d = ipv4_fields(h[sel], n[sel], ends_sel, ok[sel])
        self.tcp_packets += int(np.count_nonzero(ok))
        get = self._flows.get
        sweep_mask = SWEEP - 1
        for i, own, ok1, t, key, swap, flags, seq, ack, win, length in zip(
            sel.tolist(),
            mine[sel].tolist(),
            d.ok,
            times[sel].tolist(),
            d.keys,
            d.swap,
            d.flags,
            d.seq,
            d.ack,
            d.win,
            d.length,
            strict=True,
        ):
            packets = base + i + 1
            if not ok1:
                self.packets = packets
                self._frame(lt, t, buf, int(starts[i]), int(ends[i]))
                continue
            if own:
                entry = get(key)
                if entry is None or (
                    flags & 0x12 == 0x02
                    and entry[0].starts_new_connection(entry[1] != swap, flags, seq)
                ):
                    raw = key[4:8] + key[:4] + key[10:] + key[8:10] if swap else key
                    self.packets = packets
                    if entry is not None:
                        self.tag = 2 * packets
                        self._finish(entry)
                    sport = int(h[i, 20]) << 8 | int(h[i, 21])
                    dport = int(h[i, 22]) << 8 | int(h[i, 23])
                    entry = self._new(raw, key, swap, 4, t, sport, dport, flags)
                    assert entry is not None  # no filter
                entry[0].feed_fields(t, entry[1] != swap, flags, seq, ack, win, length)
            if not packets & sweep_mask:
                self.packets = packets
                self._sweep(t)
        self.packets = base + count


#: a finished row: (tag, first packet, share, number in the share, its line without number)
ShareRow = tuple[int, int, int, int, str]
#: what a share sends after each read chunk (and each slice of the rows finished at the end):
#: the first packets of the connections started in it, the rows finished in it, and a bound
#: (tag, first packet) that every row the share sends later is at or above
Message = tuple[list[int], list[ShareRow], tuple[int, int]]
#: the bound of a share that has sent everything
_NO_BOUND = (_END + 1, 0)
#: rows per message when the connections left at the end are finished
_END_SLICE = 2048
#: a row's text without its number (whatever the row's number), or None: no rows, only counts
Format = Callable[[Row], str] | None


def overlap_warning(name: str, first: float, table: ConnectionTable) -> str | None:
    """The warning for a file whose first packet comes before the end of the one before."""
    if table.packets and first < table.last_time:
        return (
            f"{name} starts {table.last_time - first:.6f} s before the end of the file read "
            "before it: the files overlap in time and are read one after the other "
            "(connections in both may be split)"
        )
    return None


class _Share:
    """One share's analysis as messages (started, rows): after every read chunk the first
    packets of the connections started in it and the rows finished in it, then the rows
    finished at the end, `_END_SLICE` at a time (the end finishes many connections at once).
    Meanwhile it sums up its rows (`summary`) and keeps its worst ones (`worst`, numbered in
    the share: their first packets give their numbers among all shares)."""

    def __init__(
        self,
        paths: Sequence[Path],
        index: int,
        workers: int,
        fmt: Format = None,
        stop: Callable[[], bool] = lambda: False,
        linger: float = LINGER,
    ) -> None:
        self.paths = paths
        self.linger = linger
        self.index = index
        self.workers = workers
        self.fmt = fmt
        #: asked after every read chunk: True stops the reading (then the connections still
        #: open are finished, as at the end)
        self.stop = stop
        self.stopped = False
        #: where the reading is (file, bytes read, packets; the connections are the merge's)
        self.progress = Progress()
        self.warnings: list[str] = []
        self.packets = 0
        self.tcp_packets = 0
        self.skipped = 0
        self.summary = Summary()
        self.worst = WorstRows()
        #: connections the share's table finished early (`ConnectionTable.max_open`)
        self.evicted = 0

    def end(self) -> tuple:
        """What the share sends after its last rows."""
        started = self._started
        worst = [(row.verdict, row.number, started[row.number]) for row in self.worst.rows()]
        return (self.summary, worst, self.worst.non_graceful, self.evicted, self.stopped)

    def messages(self) -> Iterator[Message]:
        index = self.index
        rows: list[ShareRow] = []
        table: ShareTable
        fmt = self.fmt
        add = self.summary.add
        keep = self.worst.add

        def done(row: Row) -> None:
            add(row)
            keep(row)
            if fmt is not None:
                number = row.number
                line = fmt(row)
                rows.append((table.tag, table.started[number], index, number, line))

        table = ShareTable(done, index, self.workers, self.linger)
        self._started = table.started
        sent = 0
        files = [open_capture(p) for p in self.paths]
        progress = self.progress
        try:
            for capture in files:
                first = True
                source = capture.source
                progress.name = capture.name
                progress.size = source.size if source is not None else 0
                for batch in capture.batches():
                    if first and len(batch[2]):
                        first = False
                        warning = overlap_warning(capture.name, float(batch[4][0]), table)
                        if warning:
                            self.warnings.append(warning)
                    table.scan_batch(*batch)
                    # later rows end before a later packet, or in the sweep after one
                    yield table.started[sent:], rows, (2 * table.packets + 2, 0)
                    sent = len(table.started)
                    rows = []
                    progress.read = source.consumed if source is not None else 0
                    progress.packets = table.packets
                    if self.stop():
                        self.stopped = True
                        break
                if capture.stopped:
                    self.warnings.append(capture.stopped)
                if self.stopped:
                    break
        finally:
            for capture in files:
                capture.close()
        table.tag = _END
        left = list(table._live.values())  # in start order
        for at in range(0, len(left), _END_SLICE):
            table.finish_entries(left[at : at + _END_SLICE])
            # later rows: connections that started after this slice's last one
            last = left[min(at + _END_SLICE, len(left)) - 1]
            yield [], rows, (_END, table.started[last[2]] + 1)
            rows = []
        table.finish()  # nothing left to finish: clears what the table keeps
        self.evicted = table.evicted
        self.packets = table.packets
        self.tcp_packets = table.tcp_packets
        self.skipped = table.skipped


def _child(
    paths: Sequence[Path],
    index: int,
    workers: int,
    fd: int,
    fmt: Format,
    stop: Callable[[], bool],
    linger: float = LINGER,
) -> None:
    """A forked worker: its messages pickled to `fd` (length, then bytes), then ("end", what
    `_Share.end` gives) and None; or ("error", one line) if it failed. `stop` is the run's
    (the command's SIGINT and SIGTERM handlers, inherited: the parent passes its stop on with
    a SIGTERM)."""
    out = os.fdopen(fd, "wb", buffering=1 << 16)

    def send(message: object) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        out.write(len(data).to_bytes(8, "little"))
        out.write(data)
        out.flush()

    # A signal only stops the reading, however many arrive: a terminal's Ctrl-C reaches the
    # worker and the command, which then passes a SIGTERM on (the command's own handler, which
    # the fork copied, raises at a second signal). Ctrl-C twice ends the command; the worker
    # then ends at its next write to the closed pipe.
    signalled: list[int] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda received, frame: signalled.append(received))
    try:
        share = _Share(paths, index, workers, fmt, lambda: bool(signalled) or stop(), linger)
        for message in share.messages():
            send(message)
        send(("end", share.end()))
        send(None)
    except BaseException as exc:  # reported to the parent, which fails too (one line)
        last = traceback.format_exception_only(exc)[-1].strip()
        send(("error", last))
    out.flush()


class _Reader:
    """The parent's end of a worker's pipe: the worker's messages, then its `end`."""

    def __init__(self, fd: int) -> None:
        self._f = os.fdopen(fd, "rb", buffering=1 << 16)
        self.end: tuple | None = None

    def messages(self) -> Iterator[Message]:
        while True:
            head = self._f.read(8)
            if len(head) < 8:
                raise WorkerFailed("a worker process ended without its results")
            got = pickle.loads(self._f.read(int.from_bytes(head, "little")))
            if got is None:
                return
            if got[0] == "error":
                raise WorkerFailed(f"a worker process failed: {got[1]}")
            if got[0] == "end":
                self.end = got[1]
                continue
            yield got

    def close(self) -> None:
        self._f.close()


def write_rows(
    paths: Sequence[Path],
    workers: int,
    fmt: Format,
    line: Callable[[int, str], str],
    write: Callable[[str], object],
    analysis: Analysis,
    linger: float = LINGER,
) -> tuple[Summary, WorstRows]:
    """Analyse with `workers` processes; write each row as `line(number, fmt(row))` (none when
    `fmt` is None), in the order and numbering one process gives. Returns the summary of all
    rows and the worst ones (`WorstRows`, numbered); the files' warnings and the counts go to
    `analysis`. The files must have been opened and checked already (errors in the header
    come from the single-process checks), and be given in the order to read them.
    `analysis.stop` is asked after every read chunk (True: both processes stop, and the rows
    and summary so far are the result); `analysis.progress` gets where the reading is."""
    collecting = gc.isenabled()
    gc.disable()
    children: list[tuple[int, _Reader]] = []
    try:
        for index in range(1, workers):
            read_fd, write_fd = os.pipe()
            with contextlib.suppress(OSError):  # room for a few chunks' messages
                fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, 1 << 20)
            pid = os.fork()
            if pid == 0:  # the worker
                status = 0
                try:
                    os.close(read_fd)
                    for _, reader in children:
                        reader.close()
                    _child(paths, index, workers, write_fd, fmt, analysis.stop, linger)
                except BaseException:  # the worker exits, the parent fails
                    status = 1
                finally:
                    os._exit(status)
            os.close(write_fd)
            children.append((pid, _Reader(read_fd)))
        stop = analysis.stop
        forwarded = False

        def stop_all() -> bool:
            """The run's stop, passed on to the workers (a SIGTERM sent to this process
            alone; Ctrl-C on a terminal reaches them all)."""
            nonlocal forwarded
            if stop():
                if not forwarded:
                    forwarded = True
                    for pid, _ in children:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGTERM)
                return True
            return False

        own = _Share(paths, 0, workers, fmt, stop_all, linger)
        streams = [own.messages()] + [reader.messages() for _, reader in children]
        report = analysis.progress

        def after_round(started: list[array]) -> None:
            if report is not None:
                own.progress.connections = sum(len(firsts) for firsts in started)
                report(own.progress)

        started = _merge(streams, workers, line, write, after_round)
        ends = [own.end()] + [reader.end for _, reader in children]
        summary = Summary()
        worst = WorstRows()
        total_non_graceful = 0
        evicted = 0
        for share, end in enumerate(ends):
            if end is None:
                raise WorkerFailed("a worker process ended without its results")
            part, candidates, non_graceful, share_evicted, share_stopped = end
            evicted += share_evicted
            if share_stopped and not stop():
                raise WorkerFailed(
                    "a worker process was stopped by a signal sent to it alone: its rows are "
                    "incomplete (signal the command instead: it stops both)"
                )
            summary.merge(part)
            total_non_graceful += non_graceful
            for verdict, number, first in candidates:
                for other in range(workers):
                    if other != share:
                        number += bisect_left(started[other], first)
                worst.add(Row(number, verdict))
        worst.non_graceful = total_non_graceful
        analysis.warnings.extend(own.warnings)
        if evicted:
            # every process's table keeps MAX_OPEN // workers (`ShareTable`)
            analysis.warnings.append(eviction_warning(evicted, MAX_OPEN // workers * workers))
        analysis.stopped = own.stopped
        analysis.packets = own.packets
        analysis.tcp_packets = own.tcp_packets
        analysis.skipped = own.skipped
        analysis.connections = summary.connections
        return summary, worst
    finally:
        for pid, reader in children:
            reader.close()
            os.waitpid(pid, 0)
        if collecting:
            gc.enable()


def write_csv(paths: Sequence[Path], workers: int, out: TextIO, analysis: Analysis) -> None:
    """Write the CSV of `tcpclose analyze --csv` (header included), analysed by `workers`
    processes (see `write_rows`)."""
    out.write(csv_header())
    write_rows(paths, workers, csv_tail, csv_line, out.write, analysis)


def csv_line(number: int, tail: str) -> str:
    return f"{number},{tail}"


def _merge(
    streams: list[Iterator[Message]],
    workers: int,
    line: Callable[[int, str], str],
    write: Callable[[str], object],
    after_round: Callable[[list[array]], None] = lambda started: None,
) -> list[array]:
    """Write the rows of every share in (tag, first packet) order, each with its number;
    return every share's first packets (all its connections', in start order).

    In rounds: one message from every share still sending, then every row below all the
    shares' bounds (no share can send a row before it any more) is sorted and written. Such a
    row's connection started before every share's bound, so every share's connections
    started up to its first packet are in `started`, which numbers it. Sorting whole rounds
    (each share's rows come sorted: runs that the sort merges) costs less than merging row
    by row."""
    started = [array("q") for _ in range(workers)]
    buffers: list[list[ShareRow]] = [[] for _ in range(workers)]
    bounds = [(0, 0)] * workers
    sending = list(range(workers))
    while sending:
        for share in list(sending):
            message = next(streams[share], None)
            if message is None:
                sending.remove(share)
                bounds[share] = _NO_BOUND
                continue
            first, finished, bound = message
            started[share].extend(first)
            buffers[share] += finished
            bounds[share] = bound
        limit = min(bounds)
        ready: list[ShareRow] = []
        for buffer in buffers:
            cut = bisect_left(buffer, limit)  # the rows below the limit
            if cut:
                ready += buffer[:cut]
                del buffer[:cut]
        if ready:
            ready.sort()
            write("".join(_numbered(ready, started, line)))
        after_round(started)
    if any(buffers):  # pragma: no cover - every row is below the bound of the end
        raise WorkerFailed("a worker process sent rows out of order")
    return started


def _numbered(
    rows: list[ShareRow], started: list[array], line: Callable[[int, str], str]
) -> list[str]:
    """Each row's line with its number: its number in its share plus the other shares'
    connections that started before it."""
    if len(started) == 2:
        pair = (started[1], started[0])  # the other share's, by share
        return [
            line(number + bisect_left(pair[share], first), text)
            for _, first, share, number, text in rows
        ]
    out = []
    for _, first, share, number, text in rows:
        for other, firsts in enumerate(started):
            if other != share:
                number += bisect_left(firsts, first)
        out.append(line(number, text))
    return out


#: the worker's body as defined here (tests replace `_child` and call this one)
_real_child = _child
