"""The probe's capture: each run's packets into a bounded `PacketWindow`, never all of them.

With AF_PACKET (root or CAP_NET_RAW) the reader thread hands every frame to the window as it
is read (`AfPacketCapture(sink=...)`), so memory stays bounded however long the server
streams; the kernel's count of frames it dropped for lack of buffer (PACKET_STATISTICS
tp_drops) is reported. Otherwise tcpdump captures into a file (2 KiB per packet: about 32 MB
per GB streamed) that is read back through the window once the run is over; tcpdump's
"dropped by kernel" count is reported the same way. Without either, no packets (a note says why).

`--pcap FILE` gets every frame, not just the window: `PcapStream` writes each one to the file
as it arrives (the file grows, not the process).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tcpclose.capture import CaptureSession, start_capture
from tcpclose.capture.frames import Frame
from tcpclose.capture.live import AfPacketCapture
from tcpclose.errors import TcpcloseError, from_oserror
from tcpclose.probe.window import PacketWindow

#: the kernel's buffer for frames the reader thread has not read yet. The thread shares the
#: GIL with the probe's own reading and a loaded machine leaves it off the CPU for tens of ms,
#: while loopback streams ~12,000 frames a second, each charged at its full size (~64 KiB)
#: however little of it we copy. 200 MB streamed, 12 runs each on a loaded machine: with
#: 32 MiB, 2 runs dropped frames (up to 1,818, the server's FIN among them); with 128 MiB,
#: none. Kernel memory, used only while the reader lags, freed as it reads.
RCVBUF = 128 * 1024 * 1024

#: bytes of each frame read from the kernel: every header and the payload's start (the
#: diagram's labels); copying whole 64 KiB frames made the reader thread fall behind a fast
#: stream, and the kernel dropped frames. The IP header still tells each payload's length.
SNAPLEN = 2048

NO_AF_PACKET = "no permission for AF_PACKET (needs root or CAP_NET_RAW)"


@dataclass(frozen=True)
class WindowedResult:
    """What one run's capture kept."""

    method: str  #: "af_packet", "tcpdump" or "none"
    note: str | None  #: one line when the capture fell back or saw nothing
    dropped: int  #: frames the kernel dropped (its buffer was full): the facts may miss some
    window: PacketWindow

    @property
    def available(self) -> bool:
        return self.method != "none"


class WindowedCapture:
    """Start capturing our ports' TCP segments now; `stop()` returns the window."""

    def __init__(
        self,
        ports: Iterable[int],
        methods: Iterable[str] = ("af_packet", "tcpdump"),
        also: Callable[[Frame], None] | None = None,
    ) -> None:
        """`also` receives every frame too (the --pcap stream), from the reader thread."""
        ports = tuple(ports)
        methods = tuple(methods)
        self.window = PacketWindow()
        self._also = also
        self._live: AfPacketCapture | None = None
        self._session: CaptureSession | None = None
        self._why = "af_packet not tried"
        if "af_packet" in methods:
            try:
                self._live = AfPacketCapture(ports, sink=self._take, snaplen=SNAPLEN, rcvbuf=RCVBUF)
            except PermissionError:
                self._why = NO_AF_PACKET
            except OSError as exc:
                self._why = f"af_packet: {exc.strerror or exc}"
        if self._live is None:
            fallback = tuple(m for m in methods if m != "af_packet")
            self._session = start_capture(ports, methods=fallback)

    def _take(self, frame: Frame) -> None:
        self.window.add(frame)
        if self._also is not None:
            self._also(frame)

    def stop(self) -> WindowedResult:
        if self._live is not None:
            _frames, dropped = self._live.stop()  # no frames: the window had them all
            return WindowedResult("af_packet", None, dropped, self.window)
        assert self._session is not None
        result = self._session.stop()
        for frame in sorted(result.frames, key=lambda f: f.t_ns):
            self._take(frame)
        if result.available:
            note = f"capturing with {result.method}: {self._why}"
        else:
            note = (result.note or "no packet capture").replace(
                "no packet capture (", f"no packet capture ({self._why}; ", 1
            )
        return WindowedResult(result.method, note, result.dropped, self.window)


def _original_length(data: bytes) -> int:
    """The frame's length on the wire, from its IP header (we may have copied less)."""
    kind = int.from_bytes(data[12:14], "big") if len(data) >= 14 else 0
    if kind == 0x0800 and len(data) >= 18:
        return max(len(data), 14 + int.from_bytes(data[16:18], "big"))
    if kind == 0x86DD and len(data) >= 20:
        return max(len(data), 14 + 40 + int.from_bytes(data[18:20], "big"))
    return len(data)


#: classic pcap, nanosecond stamps (magic a1b23c4d), version 2.4, Ethernet (linktype 1)
_PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, 1)


class PcapStream:
    """A pcap file written frame by frame, as Wireshark reads it: nanosecond stamps, and each
    record's original length from the IP header, so a frame we copied only the start of
    shows as cut by the snap length, not as a malformed packet.

    `write` runs in the capture's reader thread: a failed write (disk full) is kept, not
    raised there, and `close()` raises it as a one-line file error (status 5)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._error: OSError | None = None
        try:
            self._file: IO[bytes] = path.open("wb")
            self._file.write(_PCAP_HEADER)
        except OSError as exc:
            raise from_oserror(exc, f"cannot write {path}", on_file=True) from exc

    def write(self, frame: Frame) -> None:
        if self._error is not None:
            return
        seconds, nanoseconds = divmod(frame.t_ns, 1_000_000_000)
        record = struct.pack(
            "<IIII", seconds, nanoseconds, len(frame.data), _original_length(frame.data)
        )
        try:
            self._file.write(record + frame.data)
        except OSError as exc:
            self._error = exc
            return
        self.count += 1

    def close(self) -> None:
        try:
            self._file.close()
        except OSError as exc:
            self._error = self._error or exc
        if self._error is not None:
            error: TcpcloseError = from_oserror(
                self._error, f"cannot write {self.path}", on_file=True
            )
            raise error from self._error
