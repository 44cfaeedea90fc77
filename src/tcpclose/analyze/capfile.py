"""Reading pcap and pcapng files, plain or gzip-compressed, as a stream of raw frames.

`open_capture(path)` checks the file's first bytes and returns a `CaptureFile`, whose
`frames()` yields `(linktype, t, buf, start, end)` for every record: the frame is
`buf[start:end]`, `t` its timestamp in seconds. Records are read in large chunks and never
copied one by one. Nothing is kept once a chunk is consumed, so memory stays flat whatever the
file's size.

`-` is standard input. A pipe, a FIFO or a terminal (anything but a regular file) is read as
a live stream: each read takes what has arrived, and while nothing arrives `batches()` yields
an empty batch every `TICK` seconds, so that the analyser can finish connections that went
idle (`CaptureFile.live`, `CaptureFile.last_data`).

Errors: a file that is empty, is not a capture or has an unsupported link type raises
`InputError` before any frame. A file that stops in the middle of a record (truncated, or
corrupt from some point on) ends the stream early; `stopped` then says where, in one line,
and `frames_read` how many frames came before.
"""

from __future__ import annotations

import os
import select
import stat
import struct
import sys
import time
import zlib
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tcpclose.errors import InputError, describe_oserror

if TYPE_CHECKING:
    import numpy as np
else:
    from tcpclose.analyze.lazynumpy import np

# the compiled record walk, when built (None: the Python path, same output)
from tcpclose.analyze.compiled import fastscan as _fastscan

#: Link types the analyser decodes (LINKTYPE_* numbers as written in files).
LINKTYPES: dict[int, str] = {
    0: "BSD loopback (NULL)",
    1: "Ethernet",
    12: "raw IP",
    14: "raw IP",
    101: "raw IP",
    108: "OpenBSD loopback (LOOP)",
    113: "Linux cooked v1 (SLL)",
    228: "raw IPv4",
    229: "raw IPv6",
    276: "Linux cooked v2 (SLL2)",
}

CHUNK = 1 << 20
#: seconds a live stream may stay silent before `batches()` yields an empty batch
TICK = 0.25
#: A record larger than this is taken as corruption, not as a packet.
MAX_RECORD = 1 << 24

_PCAP_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
_PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"

Frame = tuple[int, float, bytes, int, int]
#: (linktype, buf, starts, ends, times): many frames of one buffer, see `CaptureFile.batches`
#: a batch's column of numbers (int64 offsets, float64 times): a numpy array, or from the
#: compiled walk a memoryview cast to "q" or "d" (no numpy needed: both index alike)
Numbers = Any
Batch = tuple[int, bytes, Numbers, Numbers, Numbers]


def check_linktype(linktype: int, where: str) -> None:
    if linktype not in LINKTYPES:
        raise InputError(
            f"{where}: unsupported link type {linktype} "
            f"(supported: Ethernet, Linux cooked v1/v2, raw IP, loopback)"
        )


class CaptureFile:
    """One opened capture; iterate `frames()` once."""

    def __init__(
        self,
        path: Path,
        stream: _Source | GunzipStream,
        head: bytes,
        compressed: bool,
        live: bool = False,
    ) -> None:
        self.path = path
        self.name = "standard input" if str(path) == "-" else str(path)
        self._f = stream
        #: a pipe, FIFO or terminal: read as it arrives, with ticks while it is silent
        self.live = live
        #: time.monotonic() of the last read that brought data
        self.last_data = time.monotonic()
        #: the raw file (its size and the bytes read so far, for a progress bar)
        self.source: _Source | None = None
        self._head = head
        self.compressed = compressed
        self.frames_read = 0
        #: None, or one line saying where and why the file stopped early
        self.stopped: str | None = None
        if head[:4] in _PCAP_MAGIC:
            self.format = "pcap"
            if len(head) < 24:
                raise InputError(f"{self.name}: truncated pcap header ({len(head)} bytes)")
            endian, self._unit = _PCAP_MAGIC[head[:4]]
            self._endian = endian
            (self.linktype,) = struct.unpack_from(endian + "I", head, 20)
            self.linktype &= 0x0FFFFFFF  # the upper bits may carry FCS information
            check_linktype(self.linktype, self.name)
        elif head[:4] == _PCAPNG_SHB:
            self.format = "pcapng"
            self.linktype = -1
        else:
            kind = "an empty file" if not head else "not a pcap or pcapng capture"
            raise InputError(f"{self.name}: {kind}")

    def close(self) -> None:
        self._f.close()

    def frames(self) -> Iterator[Frame]:
        """Every record, in file order, as (linktype, t, buf, start, end)."""
        try:
            if self.format == "pcap":
                yield from self._pcap()
            else:
                for frame in self._pcapng():
                    if frame is not None:
                        yield frame
            self._gzip_broken()
        except OSError as exc:
            raise _read_error(exc, self.name) from exc

    def _read(self, size: int) -> bytes | None:
        """The next bytes (b"" at the end); None when a live stream had nothing for TICK s."""
        data = self._f.read(size)
        if data:
            self.last_data = time.monotonic()
        return data

    def batches(self) -> Iterator[Batch]:
        """The same records as `frames()`, many at a time: (linktype, buf, starts, ends, times),
        int64, int64 and float64 `Numbers`, frame i being buf[starts[i]:ends[i]]. One batch per
        read chunk (and link type): the analyser's fast path decodes them with numpy."""
        try:
            if self.format == "pcap":
                yield from self._pcap_batches()
            elif _fastscan is not None:
                yield from _fast_batches(self._pcapng(fast=True))
            else:
                yield from self._grouped(self._pcapng())
            self._gzip_broken()
        except OSError as exc:
            raise _read_error(exc, self.name) from exc

    def _pcap_batches(self) -> Iterator[Batch]:
        """`_pcap`, one chunk at a time: the record walk of each chunk (`_walk`), then its
        frames as one batch."""
        read = self._read
        incl_at = struct.Struct(self._endian + "I").unpack_from
        lt = self.linktype
        buf = self._head[24:]
        base = 24  # file offset of buf[0]
        pos = 0
        eof = False
        n = 0
        while True:
            size = len(buf)
            starts, ends, times, pos, stop = self._walk(buf, pos)
            if len(starts):
                n += len(starts)
                yield lt, buf, starts, ends, times
            self.frames_read = n
            if stop is not None:
                incl = incl_at(buf, stop + 8)[0]
                self._stop(base + stop, f"corrupt record (claims {incl} bytes)")
                return
            if eof:
                if pos < size:
                    self._stop(base + pos, "truncated record")
                return
            chunk = read(CHUNK)
            while chunk is None:  # a live stream, silent: let the analyser look at the clock
                yield lt, b"", _NO_FRAMES, _NO_FRAMES, _NO_TIMES
                chunk = read(CHUNK)
            if not chunk:
                eof = True
            base += pos
            buf = buf[pos:] + chunk
            pos = 0

    def _walk(self, buf: bytes, pos: int) -> tuple[Numbers, Numbers, Numbers, int, int | None]:
        """The records wholly in buf from `pos` on: where each one's data starts and ends,
        its time (seconds + fraction * unit, in float64), the offset of the first record not
        whole, and the offset of a record that claims more than MAX_RECORD bytes (or None).
        Compiled (`_fastscan.walk`) when built; here the walk is per record, in Python, and
        the times are computed with numpy, with the same float operations."""
        if _fastscan is not None:
            heads, ends, times, pos, stop = _fastscan.walk(
                buf, pos, self._endian == ">", self._unit, MAX_RECORD
            )
            return (
                memoryview(heads).cast("q"),
                memoryview(ends).cast("q"),
                memoryview(times).cast("d"),
                pos,
                None if stop < 0 else stop,
            )
        incl_at = struct.Struct(self._endian + "I").unpack_from
        size = len(buf)
        starts: list[int] = []
        add = starts.append
        stop = None
        while pos + 16 <= size:
            end = pos + 16 + incl_at(buf, pos + 8)[0]
            if end > size:
                if end - pos - 16 > MAX_RECORD:
                    stop = pos
                break
            add(pos)
            pos = end
        if not starts:
            return _NO_FRAMES, _NO_FRAMES, _NO_TIMES, pos, stop
        heads = np.array(starts, dtype=np.int64)
        # the 16-byte record headers as rows of 4 integers in the file's byte order
        view = np.frombuffer(buf, dtype=np.uint8)
        rows = np.lib.stride_tricks.sliding_window_view(view, 16)[heads].view(
            np.dtype(self._endian + "u4")
        )
        times = rows[:, 0].astype(np.float64) + rows[:, 1].astype(np.float64) * self._unit
        data = heads + 16
        return data, data + rows[:, 2].astype(np.int64), times, pos, stop

    def _grouped(self, frames: Iterator[Frame | None]) -> Iterator[Batch]:
        """Frames gathered into batches of one buffer and one link type (None: a tick, which
        ends the batch so far and becomes an empty batch)."""
        starts: list[int] = []
        ends: list[int] = []
        times: list[float] = []
        current: tuple[int, bytes] | None = None
        for frame in frames:
            if frame is None:
                if current is not None and starts:
                    yield _batch(current, starts, ends, times)
                    starts, ends, times = [], [], []
                yield -1, b"", _NO_FRAMES, _NO_FRAMES, _NO_TIMES
                continue
            lt, t, buf, start, end = frame
            if current is None or current[0] != lt or current[1] is not buf:
                if current is not None and starts:
                    yield _batch(current, starts, ends, times)
                    starts, ends, times = [], [], []
                current = (lt, buf)
            starts.append(start)
            ends.append(end)
            times.append(t)
        if current is not None and starts:
            yield _batch(current, starts, ends, times)

    def _gzip_broken(self) -> None:
        """After the last frame: say so if the gzip stream ended early or broke."""
        broken = getattr(self._f, "broken", None)
        if broken:
            self.stopped = (
                f"{self.name}: compressed data ends or breaks after {self.frames_read} packets "
                f"({broken}); analysed up to there"
            )

    def _stop(self, offset: int, why: str) -> None:
        self.stopped = (
            f"{self.name}: {why} at byte {offset} after {self.frames_read} packets; "
            "analysed up to there"
        )

    def _pcap(self) -> Iterator[Frame]:
        read = self._read
        hdr = struct.Struct(self._endian + "IIII").unpack_from
        lt = self.linktype
        unit = self._unit
        buf = self._head[24:]
        base = 24  # file offset of buf[0]
        pos = 0
        eof = False
        n = 0
        while True:
            size = len(buf)
            while pos + 16 <= size:
                sec, frac, incl, _orig = hdr(buf, pos)
                end = pos + 16 + incl
                if end > size:
                    if incl > MAX_RECORD:
                        self.frames_read = n
                        self._stop(base + pos, f"corrupt record (claims {incl} bytes)")
                        return
                    break
                n += 1
                yield lt, sec + frac * unit, buf, pos + 16, end
                pos = end
            self.frames_read = n
            if eof:
                if pos < size:
                    self._stop(base + pos, "truncated record")
                return
            chunk = read(CHUNK)
            while chunk is None:  # a live stream, silent
                chunk = read(CHUNK)
            if not chunk:
                eof = True
            base += pos
            buf = buf[pos:] + chunk
            pos = 0

    def _pcapng(self, fast: bool = False) -> Iterator[Any]:
        """Blocks: SHB (byte order), IDB (link type, time resolution), EPB/SPB/PB (packets).

        Yields a `Frame` per packet; with `fast` (the compiled walk built), a `Batch` per run
        of enhanced packet blocks of one link type instead (`_fastscan.walk_ng`), and a
        `Frame` for each simple or obsolete packet block, read here (`_fast_batches` groups
        them); None when a live stream is silent."""
        read = self._read
        buf = self._head
        base = 0
        pos = 0
        eof = False
        section = _Section()
        n = 0
        while True:
            size = len(buf)
            while pos + 12 <= size:
                if fast:
                    starts, ends, times, pos, lt, why = section.walk(buf, pos)
                    if len(starts):
                        n += len(starts)
                        yield lt, buf, starts, ends, times
                    if why == _NG_MORE:
                        break
                    if why == _NG_LINKTYPE:
                        continue
                if buf[pos : pos + 4] == _PCAPNG_SHB:
                    bom = buf[pos + 8 : pos + 12]
                    if bom == b"\x4d\x3c\x2b\x1a":
                        section = _Section("<")
                    elif bom == b"\x1a\x2b\x3c\x4d":
                        section = _Section(">")
                    else:
                        if n == 0 and base + pos == 0:
                            raise InputError(f"{self.name}: not a pcapng capture (bad byte order)")
                        self.frames_read = n
                        self._stop(base + pos, "corrupt section header")
                        return
                endian = section.endian
                btype, blen = struct.unpack_from(endian + "II", buf, pos)
                if blen < 12 or blen % 4 or blen > MAX_RECORD:
                    if n == 0 and base + pos == 0:
                        raise InputError(f"{self.name}: not a pcapng capture (bad block length)")
                    self.frames_read = n
                    self._stop(base + pos, f"corrupt block (length {blen})")
                    return
                end = pos + blen
                if end > size:
                    break
                frame = None
                ifaces = section.ifaces
                if btype == 6 and blen >= 32:  # enhanced packet block
                    iface, hi, lo, caplen = struct.unpack_from(endian + "IIII", buf, pos + 8)
                    if iface < len(ifaces) and 28 + caplen <= blen:
                        lt, per_second, offset = ifaces[iface]
                        t = ((hi << 32) | lo) / per_second + offset
                        frame = lt, t, buf, pos + 28, pos + 28 + caplen
                elif btype == 3 and blen >= 16 and ifaces:  # simple packet block
                    (orig,) = struct.unpack_from(endian + "I", buf, pos + 8)
                    caplen = min(orig, blen - 16)
                    frame = ifaces[0][0], 0.0, buf, pos + 12, pos + 12 + caplen
                elif btype == 2 and blen >= 32:  # obsolete packet block
                    iface, _drops, hi, lo, caplen = struct.unpack_from(
                        endian + "HHIII", buf, pos + 8
                    )
                    if iface < len(ifaces) and 28 + caplen <= blen:
                        lt, per_second, offset = ifaces[iface]
                        t = ((hi << 32) | lo) / per_second + offset
                        frame = lt, t, buf, pos + 28, pos + 28 + caplen
                elif btype == 1 and blen >= 20:  # interface description block
                    (lt,) = struct.unpack_from(endian + "H", buf, pos + 8)
                    check_linktype(lt, f"{self.name} (interface {len(ifaces)})")
                    per_second, offset = _idb_options(buf, pos + 16, end - 4, endian)
                    section.add(lt, per_second, offset)
                if frame is not None:
                    n += 1
                    yield frame
                pos = end
            self.frames_read = n
            if eof:
                if pos < size:
                    self._stop(base + pos, "truncated block")
                return
            chunk = read(CHUNK)
            while chunk is None:
                yield None
                chunk = read(CHUNK)
            if not chunk:
                eof = True
            base += pos
            buf = buf[pos:] + chunk
            pos = 0


# why `_fastscan.walk_ng` stopped: the block at pos is not whole / is read in Python / is a
# packet of another link type than the batch's
_NG_MORE, _NG_PYTHON, _NG_LINKTYPE = 0, 1, 2


class _Section:
    """One pcapng section: its byte order and interfaces (link type, units per second,
    offset in seconds), also as the arrays `_fastscan.walk_ng` reads."""

    def __init__(self, endian: str = "<") -> None:
        self.endian = endian
        self.ifaces: list[tuple[int, float, int]] = []
        self._columns = (array("i"), array("d"), array("q"))

    def add(self, linktype: int, per_second: float, offset: int) -> None:
        self.ifaces.append((linktype, per_second, offset))
        lts, pers, offs = self._columns
        lts.append(linktype)
        pers.append(per_second)
        offs.append(offset)

    def walk(self, buf: bytes, pos: int) -> tuple[Numbers, Numbers, Numbers, int, int, int]:
        """`_fastscan.walk_ng` from pos: a batch's columns, the next pos, the batch's link
        type, and why the walk stopped."""
        heads, ends, times, pos, lt, why = _fastscan.walk_ng(
            buf, pos, self.endian == ">", *self._columns, MAX_RECORD
        )
        return (
            memoryview(heads).cast("q"),
            memoryview(ends).cast("q"),
            memoryview(times).cast("d"),
            pos,
            lt,
            why,
        )


_NO_FRAMES = memoryview(b"").cast("q")
_NO_TIMES = memoryview(b"").cast("d")
#: the empty batch of a silent live stream
_TICK: Batch = (-1, b"", _NO_FRAMES, _NO_FRAMES, _NO_TIMES)


def _read_error(exc: OSError, name: str) -> InputError:
    """A read that failed: the input's fault (status 5), with the system's words."""
    return InputError(f"reading {name}: {describe_oserror(exc)}")


def _batch(
    current: tuple[int, bytes], starts: list[int], ends: list[int], times: list[float]
) -> Batch:
    return (
        current[0],
        current[1],
        np.array(starts, dtype=np.int64),
        np.array(ends, dtype=np.int64),
        np.array(times, dtype=np.float64),
    )


def _fast_batches(items: Iterator[Any]) -> Iterator[Batch]:
    """`CaptureFile._pcapng(fast=True)`'s items as batches: its batches as they are, its
    frames gathered into batches of one buffer and link type (as `_grouped` does, without
    numpy), a silent live stream's None as an empty batch."""
    starts, ends, times = array("q"), array("q"), array("d")
    current: tuple[int, bytes] | None = None

    def gathered() -> Batch:
        assert current is not None
        return current[0], current[1], memoryview(starts), memoryview(ends), memoryview(times)

    for item in items:
        if item is not None and not isinstance(item[1], bytes):  # a Frame: (lt, t, buf, ...)
            lt, t, buf, start, end = item
            if current is not None and (current[0] != lt or current[1] is not buf):
                yield gathered()
                starts, ends, times = array("q"), array("q"), array("d")
            current = (lt, buf)
            starts.append(start)
            ends.append(end)
            times.append(t)
            continue
        if current is not None:
            yield gathered()
            starts, ends, times = array("q"), array("q"), array("d")
            current = None
        yield item if item is not None else _TICK
    if current is not None:
        yield gathered()


def _idb_options(buf: bytes, pos: int, end: int, endian: str) -> tuple[float, int]:
    """if_tsresol (9) and if_tsoffset (14) of an interface: (units per second, offset s)."""
    per_second, offset = 1e6, 0
    while pos + 4 <= end:
        code, length = struct.unpack_from(endian + "HH", buf, pos)
        if code == 0:
            break
        value = buf[pos + 4 : pos + 4 + length]
        if code == 9 and length >= 1:
            r = value[0]
            per_second = float(2 ** (r & 0x7F)) if r & 0x80 else 10.0 ** (r & 0x7F)
        elif code == 14 and length == 8:
            (offset,) = struct.unpack(endian + "q", value)
        pos += 4 + ((length + 3) & ~3)
    return per_second, offset


class GunzipStream:
    """A gzip reader that hands out every byte it could decompress, even from a cut file.

    `read(n)` never raises for a truncated or broken stream: it returns what decompressed,
    then b""; `broken` then holds one line saying why. Multi-member files are followed (and
    zero padding after the last member ignored). From a live source, `read` returns None
    when nothing could be decompressed before the source fell silent.
    """

    def __init__(self, raw: _Source) -> None:
        self._raw = raw
        self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        #: the current member has had input (a new member's object, made after the end
        #: marker of the one before, has not: ending there is no truncation)
        self._started = False
        self._pending = b""
        self.broken: str | None = None
        self._done = False

    def read(self, n: int) -> bytes | None:
        while len(self._pending) < n and not self._done:
            data = self._z.unconsumed_tail or self._raw.read(CHUNK)
            if data is None:
                if self._pending:
                    break
                return None
            if not data:
                if self._started and not self._z.eof:
                    self.broken = "the compressed data ends before the gzip end marker"
                self._done = True
                break
            self._started = True
            try:
                self._pending += self._z.decompress(data, CHUNK)
            except zlib.error as exc:
                self.broken = f"broken gzip data ({exc})"
                self._done = True
                break
            if self._z.eof:
                rest = self._z.unused_data
                self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
                self._started = False
                if rest.strip(b"\0"):
                    self._started = True
                    try:
                        self._pending += self._z.decompress(rest, CHUNK)
                    except zlib.error as exc:
                        self.broken = f"broken gzip data after a member ({exc})"
                        self._done = True
                        break
        out, self._pending = self._pending[:n], self._pending[n:]
        return out

    def close(self) -> None:
        self._raw.close()


class _Source:
    """The raw bytes of a capture: a regular file, or a live stream (pipe, FIFO, terminal)
    read with select() so that a silent stream returns None every `TICK` seconds instead of
    blocking. `prefix` bytes (already read to sniff the format) come first."""

    def __init__(self, fd: int, live: bool, owned: bool) -> None:
        self.fd = fd
        self.live = live
        self._owned = owned
        self.prefix = b""
        #: bytes read from the file so far (for a progress bar)
        self.consumed = 0
        try:
            self.size = os.fstat(fd).st_size if not live else 0
        except OSError:
            self.size = 0

    def read(self, n: int) -> bytes | None:
        if self.prefix:
            out, self.prefix = self.prefix[:n], self.prefix[n:]
            return out
        if self.live:
            ready, _, _ = select.select([self.fd], [], [], TICK)
            if not ready:
                return None
        data = os.read(self.fd, n)  # a pipe: what has arrived (up to n), b"" at the end
        self.consumed += len(data)
        return data

    def close(self) -> None:
        if self._owned and self.fd >= 0:
            os.close(self.fd)
        self.fd = -1


def _sniff(source: _Source, size: int) -> bytes:
    """The first `size` bytes (fewer only at the end), waiting for a live stream."""
    head = b""
    while len(head) < size:
        data = source.read(size - len(head))
        if data is None:
            continue
        if not data:
            break
        head += data
    return head


def open_capture(path: str | Path) -> CaptureFile:
    """Open a capture file (gzip-compressed or not; "-" is standard input) and check its
    header. Anything but a regular file is read as a live stream."""
    path = Path(path)
    if str(path) == "-":
        fd, owned, name = sys.stdin.fileno(), False, "standard input"
    else:
        name = str(path)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise InputError(f"cannot open {name}: {describe_oserror(exc)}") from exc
        owned = True
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise InputError(f"{name}: is a directory")
        source = _Source(fd, live=not stat.S_ISREG(mode), owned=owned)
    except OSError as exc:
        if owned:
            os.close(fd)
        raise InputError(f"cannot open {name}: {describe_oserror(exc)}") from exc
    except BaseException:
        if owned:
            os.close(fd)
        raise
    try:
        magic = _sniff(source, 2)
        source.prefix = magic
        compressed = magic == b"\x1f\x8b"
        stream = GunzipStream(source) if compressed else source
        head = _sniff(stream, CHUNK if not source.live else 24)  # type: ignore[arg-type]
        if compressed and not head and stream.broken:  # type: ignore[union-attr]
            raise InputError(f"{name}: {stream.broken}")  # type: ignore[union-attr]
        capture = CaptureFile(path, stream, head, compressed, live=source.live)
        capture.source = source
        return capture
    except OSError as exc:
        source.close()
        raise _read_error(exc, name) from exc
    except BaseException:
        source.close()
        raise
