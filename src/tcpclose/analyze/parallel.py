"""`tcpclose analyze --csv` on more than one core, with the single process's output.

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

Only `--csv` without `--filter` takes this path (`eligible`); `TCPCLOSE_WORKERS` sets the
number of processes (1: never; unset: 2 when there are 2 cores or more and the files hold
at least `MIN_BYTES`).
"""

from __future__ import annotations

import gc
import os
import pickle
import traceback
from array import array
from bisect import bisect_left
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

import numpy as np

from tcpclose.analyze.capfile import open_capture
from tcpclose.analyze.output import csv_header, csv_row
from tcpclose.analyze.reading import Analysis
from tcpclose.analyze.table import (
    SWEEP,
    ConnectionTable,
    Row,
    decode,
    ipv4_fields,
    ipv4_headers,
    reverse_key,
)

#: files smaller than this (in all) are analysed in one process
MIN_BYTES = 50_000_000
#: the tag of the connections finished at the end of the capture
_END = 1 << 62
_MIX = 0x9E3779B1


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
    return (((h * _MIX) & 0xFFFFFFFF) * workers) >> 32


def _owners(h: np.ndarray, workers: int) -> np.ndarray:
    """`owner` of the IPv4 frames whose 40 header bytes are the rows of `h`."""
    u32 = h.view(">u4").astype(np.uint64)
    u16 = h.view(">u2").astype(np.uint64)
    ports = u16[:, 10] ^ u16[:, 11]
    mixed = ((u32[:, 3] ^ u32[:, 4] ^ ports ^ (ports << np.uint64(16))) * np.uint64(_MIX)) & (
        np.uint64(0xFFFFFFFF)
    )
    return (mixed * np.uint64(workers)) >> np.uint64(32)


class ShareTable(ConnectionTable):
    """A `ConnectionTable` that tracks only the connections of share `index` of `workers`, and
    tags every finished row with where in the capture it finished (`tag`)."""

    def __init__(self, done: Callable[[Row], None], index: int, workers: int) -> None:
        super().__init__(done)
        self.index = index
        self.workers = workers
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

    def _scan_batch(
        self, lt: int, buf: bytes, starts: np.ndarray, ends: np.ndarray, times: np.ndarray
    ) -> None:
        base = self.packets
        count = len(starts)
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


def _share_messages(
    paths: Sequence[Path], index: int, workers: int, send: Callable[[object], None]
) -> tuple[ShareTable, list[str]]:
    """Analyse share `index`, calling `send((started, rows))` after every read chunk and at the
    end; rows are (tag, first packet, number in the share, CSV line without the number)."""
    rows: list[tuple[int, int, int, str]] = []
    table: ShareTable

    def done(row: Row) -> None:
        line = csv_row(Row(0, row.verdict))  # "0," then the rest
        rows.append((table.tag, table.started[row.number], row.number, line[2:]))

    table = ShareTable(done, index, workers)
    warnings: list[str] = []
    sent = 0
    files = [open_capture(p) for p in paths]
    try:
        for capture in files:
            for batch in capture.batches():
                table.scan_batch(*batch)
                send((table.started[sent:], rows))
                sent = len(table.started)
                rows = []
            if capture.stopped:
                warnings.append(capture.stopped)
        table.finish()
        send((table.started[sent:], rows))
        rows = []
    finally:
        for capture in files:
            capture.close()
    return table, warnings


def _child(paths: Sequence[Path], index: int, workers: int, fd: int) -> None:
    """A forked worker: its messages pickled to `fd` (length, then bytes); None at the end,
    or ("error", text) if it failed."""
    out = os.fdopen(fd, "wb", buffering=1 << 20)

    def send(message: object) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        out.write(len(data).to_bytes(8, "little"))
        out.write(data)
        out.flush()

    try:
        _share_messages(paths, index, workers, send)
        send(None)
    except BaseException:  # reported to the parent, which fails too
        send(("error", traceback.format_exc()))
    out.flush()


class _Reader:
    """The parent's end of a worker's pipe."""

    def __init__(self, fd: int) -> None:
        self._f = os.fdopen(fd, "rb", buffering=1 << 20)

    def recv(self) -> object:
        head = self._f.read(8)
        if len(head) < 8:
            raise RuntimeError("a tcpclose analyze worker ended without its results")
        size = int.from_bytes(head, "little")
        return pickle.loads(self._f.read(size))

    def close(self) -> None:
        self._f.close()


def write_csv(paths: Sequence[Path], workers: int, out: TextIO, analysis: Analysis) -> None:
    """Write the CSV of `tcpclose analyze --csv` (header included), analysed by `workers`
    processes; the files' warnings go to `analysis.warnings`. The files must have been opened
    and checked already (errors in the header come from the single-process checks)."""
    collecting = gc.isenabled()
    gc.disable()
    children: list[tuple[int, _Reader]] = []
    try:
        for index in range(1, workers):
            read_fd, write_fd = os.pipe()
            pid = os.fork()
            if pid == 0:  # the worker
                status = 0
                try:
                    os.close(read_fd)
                    for _, reader in children:
                        reader.close()
                    _child(paths, index, workers, write_fd)
                except BaseException:  # the worker exits, the parent fails
                    status = 1
                finally:
                    os._exit(status)
            os.close(write_fd)
            children.append((pid, _Reader(read_fd)))
        _merge(paths, workers, [r for _, r in children], out, analysis)
    finally:
        for pid, reader in children:
            reader.close()
            os.waitpid(pid, 0)
        if collecting:
            gc.enable()


def _merge(
    paths: Sequence[Path],
    workers: int,
    readers: list[_Reader],
    out: TextIO,
    analysis: Analysis,
) -> None:
    #: every share's first packets so far (share 0: this process)
    started = [array("q") for _ in range(workers)]
    write = out.write
    write(csv_header())

    def merge(messages: list[tuple[list[int], list[tuple[int, int, int, str]]]]) -> None:
        for share, (first, _) in enumerate(messages):
            started[share].extend(first)
        merged: list[tuple[int, int, int, str]] = []
        for share, (_, rows) in enumerate(messages):
            others = [started[s] for s in range(workers) if s != share]
            for tag, first, number, line in rows:
                for other in others:
                    number += bisect_left(other, first)
                merged.append((tag, first, number, line))
        if workers > 1:
            merged.sort()
        write("".join([f"{number},{line}" for _, _, number, line in merged]))

    def own(message: object) -> None:
        received = [message]
        for reader in readers:
            got = reader.recv()
            if got is None or (isinstance(got, tuple) and got and got[0] == "error"):
                detail = got[1] if got is not None else "ended early"
                raise RuntimeError(f"a tcpclose analyze worker failed:\n{detail}")
            received.append(got)
        merge(received)  # type: ignore[arg-type]

    table, warnings = _share_messages(paths, 0, workers, own)
    for reader in readers:
        if reader.recv() is not None:
            raise RuntimeError("a tcpclose analyze worker read more than this process")
    analysis.warnings.extend(warnings)
    analysis.packets = table.packets
