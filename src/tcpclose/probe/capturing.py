"""The probe's capture: each run's packets into a bounded `PacketWindow`, never all of them.

With AF_PACKET (root or CAP_NET_RAW) the reader thread hands every frame to the window as it
is read (`AfPacketCapture(sink=...)`), so memory stays bounded however long the server
streams; the kernel's count of frames it dropped for lack of buffer (PACKET_STATISTICS
tp_drops) is reported. Otherwise tcpdump captures into a file (2 KiB per packet: about 32 MB
per GB streamed) that is read back through the window once the run is over; tcpdump's
"dropped by kernel" count is reported the same way. Without either, no packets (a note says why).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tcpclose.capture import CaptureSession, start_capture
from tcpclose.capture.live import AfPacketCapture
from tcpclose.probe.window import PacketWindow

#: the reader thread sleeps while Python reads the answer: a stream of 64 KiB segments needs
#: room (the kernel charges ~68 KiB per frame: 32 MiB holds ~480 of them)
RCVBUF = 32 * 1024 * 1024

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

    def __init__(self, ports: Iterable[int], methods: Iterable[str] = ("af_packet", "tcpdump")):
        ports = tuple(ports)
        methods = tuple(methods)
        self.window = PacketWindow()
        self._live: AfPacketCapture | None = None
        self._session: CaptureSession | None = None
        self._why = "af_packet not tried"
        if "af_packet" in methods:
            try:
                self._live = AfPacketCapture(ports, sink=self.window.add, rcvbuf=RCVBUF)
            except PermissionError:
                self._why = NO_AF_PACKET
            except OSError as exc:
                self._why = f"af_packet: {exc.strerror or exc}"
        if self._live is None:
            fallback = tuple(m for m in methods if m != "af_packet")
            self._session = start_capture(ports, methods=fallback)

    def stop(self) -> WindowedResult:
        if self._live is not None:
            _frames, dropped = self._live.stop()  # no frames: the window had them all
            return WindowedResult("af_packet", None, dropped, self.window)
        assert self._session is not None
        result = self._session.stop()
        self.window.feed(list(result.frames))
        if result.available:
            note = f"capturing with {result.method}: {self._why}"
        else:
            note = (result.note or "no packet capture").replace(
                "no packet capture (", f"no packet capture ({self._why}; ", 1
            )
        return WindowedResult(result.method, note, result.dropped, self.window)
