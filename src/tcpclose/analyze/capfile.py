"""Reading pcap and pcapng files, plain or gzip-compressed, as a stream of raw frames.

`open_capture(path)` checks the file's first bytes and returns a `CaptureFile`, whose
`frames()` yields `(linktype, t, buf, start, end)` for every record: the frame is
`buf[start:end]`, `t` its timestamp in seconds. Records are read in large chunks and never
copied one by one. Nothing is kept once a chunk is consumed, so memory stays flat whatever the
file's size.

Errors: a file that is empty, is not a capture or has an unsupported link type raises
`InputError` before any frame. A file that stops in the middle of a record (truncated, or
corrupt from some point on) ends the stream early; `stopped` then says where, in one line,
and `frames_read` how many frames came before.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from tcpclose.errors import InputError, from_oserror

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
Batch = tuple[int, bytes, np.ndarray, np.ndarray, np.ndarray]


def check_linktype(linktype: int, where: str) -> None:
    if linktype not in LINKTYPES:
        raise InputError(
            f"{where}: unsupported link type {linktype} "
            f"(supported: Ethernet, Linux cooked v1/v2, raw IP, loopback)"
        )


class CaptureFile:
    """One opened capture; iterate `frames()` once."""

    def __init__(self, path: Path, stream: BinaryIO, head: bytes, compressed: bool) -> None:
        self.path = path
        self.name = str(path)
        self._f = stream
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
                yield from self._pcapng()
            self._gzip_broken()
        except OSError as exc:
            raise from_oserror(exc, f"reading {self.name}") from exc

    def batches(self) -> Iterator[Batch]:
        """The same records as `frames()`, many at a time: (linktype, buf, starts, ends, times),
        numpy arrays (int64, int64, float64), frame i being buf[starts[i]:ends[i]]. One batch per
        read chunk (and link type): the analyser's fast path decodes them with numpy."""
        try:
            if self.format == "pcap":
                yield from self._pcap_batches()
            else:
                yield from self._grouped(self._pcapng())
            self._gzip_broken()
        except OSError as exc:
            raise from_oserror(exc, f"reading {self.name}") from exc

    def _pcap_batches(self) -> Iterator[Batch]:
        """`_pcap`, one chunk at a time: only the record walk is per record, in Python; the
        timestamps are computed with numpy, with the same float operations as `_pcap`."""
        read = self._f.read
        incl_at = struct.Struct(self._endian + "I").unpack_from
        u32 = np.dtype(self._endian + "u4")
        lt = self.linktype
        unit = self._unit
        buf = self._head[24:]
        base = 24  # file offset of buf[0]
        pos = 0
        eof = False
        n = 0
        while True:
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
            if starts:
                n += len(starts)
                heads = np.array(starts, dtype=np.int64)
                # the 16-byte record headers as rows of 4 integers in the file's byte order
                view = np.frombuffer(buf, dtype=np.uint8)
                rows = sliding_window_view(view, 16)[heads].view(u32)
                times = rows[:, 0].astype(np.float64) + rows[:, 1].astype(np.float64) * unit
                data = heads + 16
                yield lt, buf, data, data + rows[:, 2].astype(np.int64), times
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
            if not chunk:
                eof = True
            base += pos
            buf = buf[pos:] + chunk
            pos = 0

    def _grouped(self, frames: Iterator[Frame]) -> Iterator[Batch]:
        """Frames gathered into batches of one buffer and one link type."""
        starts: list[int] = []
        ends: list[int] = []
        times: list[float] = []
        current: tuple[int, bytes] | None = None
        for lt, t, buf, start, end in frames:
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
        read = self._f.read
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
            if not chunk:
                eof = True
            base += pos
            buf = buf[pos:] + chunk
            pos = 0

    def _pcapng(self) -> Iterator[Frame]:
        """Blocks: SHB (byte order), IDB (link type, time resolution), EPB/SPB/PB (packets)."""
        read = self._f.read
        buf = self._head
        base = 0
        pos = 0
        eof = False
        endian = "<"
        ifaces: list[tuple[int, float, int]] = []  # (linktype, units per second, offset)
        n = 0
        while True:
            size = len(buf)
            while pos + 12 <= size:
                if buf[pos : pos + 4] == _PCAPNG_SHB:
                    bom = buf[pos + 8 : pos + 12]
                    if bom == b"\x4d\x3c\x2b\x1a":
                        endian = "<"
                    elif bom == b"\x1a\x2b\x3c\x4d":
                        endian = ">"
                    else:
                        if n == 0 and base + pos == 0:
                            raise InputError(f"{self.name}: not a pcapng capture (bad byte order)")
                        self.frames_read = n
                        self._stop(base + pos, "corrupt section header")
                        return
                    ifaces = []
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
                if btype == 6 and blen >= 32:  # enhanced packet block
                    iface, hi, lo, caplen = struct.unpack_from(endian + "IIII", buf, pos + 8)
                    if iface < len(ifaces) and 28 + caplen <= blen:
                        lt, per_second, offset = ifaces[iface]
                        n += 1
                        t = ((hi << 32) | lo) / per_second + offset
                        yield lt, t, buf, pos + 28, pos + 28 + caplen
                elif btype == 3 and blen >= 16 and ifaces:  # simple packet block
                    (orig,) = struct.unpack_from(endian + "I", buf, pos + 8)
                    caplen = min(orig, blen - 16)
                    n += 1
                    yield ifaces[0][0], 0.0, buf, pos + 12, pos + 12 + caplen
                elif btype == 2 and blen >= 32:  # obsolete packet block
                    iface, _drops, hi, lo, caplen = struct.unpack_from(
                        endian + "HHIII", buf, pos + 8
                    )
                    if iface < len(ifaces) and 28 + caplen <= blen:
                        lt, per_second, offset = ifaces[iface]
                        n += 1
                        yield (
                            lt,
                            ((hi << 32) | lo) / per_second + offset,
                            buf,
                            pos + 28,
                            (pos + 28 + caplen),
                        )
                elif btype == 1 and blen >= 20:  # interface description block
                    (lt,) = struct.unpack_from(endian + "H", buf, pos + 8)
                    check_linktype(lt, f"{self.name} (interface {len(ifaces)})")
                    per_second, offset = _idb_options(buf, pos + 16, end - 4, endian)
                    ifaces.append((lt, per_second, offset))
                pos = end
            self.frames_read = n
            if eof:
                if pos < size:
                    self._stop(base + pos, "truncated block")
                return
            chunk = read(CHUNK)
            if not chunk:
                eof = True
            base += pos
            buf = buf[pos:] + chunk
            pos = 0


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
    then b""; `broken` then holds one line saying why. Multi-member files are followed.
    """

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._pending = b""
        self.broken: str | None = None
        self._done = False

    def read(self, n: int) -> bytes:
        while len(self._pending) < n and not self._done:
            data = self._z.unconsumed_tail or self._raw.read(CHUNK)
            if not data:
                if not self._z.eof:
                    self.broken = "the compressed data ends before the gzip end marker"
                self._done = True
                break
            try:
                self._pending += self._z.decompress(data, CHUNK)
            except zlib.error as exc:
                self.broken = f"broken gzip data ({exc})"
                self._done = True
                break
            if self._z.eof:
                rest = self._z.unused_data
                self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
                if rest.strip(b"\0"):
                    self._pending += self._z.decompress(rest, CHUNK)
        out, self._pending = self._pending[:n], self._pending[n:]
        return out

    def close(self) -> None:
        self._raw.close()


def open_capture(path: str | Path) -> CaptureFile:
    """Open a capture file (gzip-compressed or not) and check its header."""
    path = Path(path)
    try:
        raw: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed by CaptureFile.close
    except OSError as exc:
        raise from_oserror(exc, f"cannot open {path}") from exc
    try:
        magic = raw.read(2)
        raw.seek(0)
        compressed = magic == b"\x1f\x8b"
        stream: BinaryIO = GunzipStream(raw) if compressed else raw  # type: ignore[assignment]
        head = stream.read(CHUNK)
        if compressed and not head and stream.broken:  # type: ignore[attr-defined]
            raise InputError(f"{path}: {stream.broken}")  # type: ignore[attr-defined]
        return CaptureFile(path, stream, head, compressed)
    except OSError as exc:
        raw.close()
        raise from_oserror(exc, f"reading {path}") from exc
    except BaseException:
        raw.close()
        raise
