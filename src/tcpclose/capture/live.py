"""Live capture on the loopback interface with an AF_PACKET raw socket.

Syscalls, in order:
  socket(AF_PACKET, SOCK_RAW, 0)          protocol 0: the socket receives nothing yet
  setsockopt(SO_ATTACH_FILTER, prog)      the kernel drops all but our ports' TCP segments
  setsockopt(SO_TIMESTAMPNS, 1)           each packet comes with its kernel timestamp
  setsockopt(SO_RCVBUFFORCE, 8 MiB)       room for bursts while the reader thread sleeps
  bind(("lo", ETH_P_ALL))                 start receiving, on loopback only
  recvmsg(snaplen)                        one frame (its first `snaplen` bytes: the kernel
                                          copies no more) + SCM_TIMESTAMPNS + sockaddr_ll
  getsockopt(PACKET_STATISTICS)           at stop: tp_drops, frames the full buffer cost us

On `lo` every packet passes the tap twice: once leaving (pkttype PACKET_OUTGOING) and once
arriving (PACKET_HOST). Like libpcap we keep only the arriving copy, so each packet counts once.

By default every frame is kept in memory until stop(). A caller watching a long transfer gives
a `sink` instead: each frame is handed to it as it is read (in the reader thread) and nothing
is kept here, so memory is whatever the sink keeps (the probe keeps a bounded window).
"""

from __future__ import annotations

import ctypes
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable

from tcpclose.capture.bpf import assemble, tcp_ports_program
from tcpclose.capture.frames import Frame

ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26
SO_TIMESTAMPNS = 35
SCM_TIMESTAMPNS = SO_TIMESTAMPNS
SO_RCVBUFFORCE = 33
SOL_PACKET = 263
PACKET_STATISTICS = 6
PACKET_OUTGOING = 4
RCVBUF = 8 * 1024 * 1024
MAX_FRAME = 65536 + 256

#: how long the link must be silent before stop() believes every packet has been read
QUIET_SECONDS = 0.03
#: stop() never waits longer than this for silence
MAX_STOP_WAIT = 1.0


class AfPacketCapture:
    """Captures our ports' TCP segments on one interface in a reader thread.

    Raises PermissionError on construction without CAP_NET_RAW. With a `sink`, each frame goes
    to it (from the reader thread, in arrival order) instead of `frames`; `snaplen` bounds the
    bytes copied per frame (headers are whole: the IP header's length field still tells the
    payload's length); `rcvbuf` is the kernel buffer that absorbs bursts.
    """

    method = "af_packet"

    def __init__(
        self,
        ports: Iterable[int],
        interface: str = "lo",
        *,
        sink: Callable[[Frame], None] | None = None,
        snaplen: int = MAX_FRAME,
        rcvbuf: int = RCVBUF,
    ) -> None:
        self.interface = interface
        self.frames: list[Frame] = []
        self._sink = sink if sink is not None else self.frames.append
        self._snaplen = snaplen
        self._last_arrival = time.monotonic()
        self._stop = threading.Event()
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        try:
            self._attach_filter(tcp_ports_program(ports))
            self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
            except PermissionError:  # without CAP_NET_ADMIN: take what the limit allows
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.bind((interface, ETH_P_ALL))
            self.sock.setblocking(False)
        except BaseException:
            self.sock.close()
            raise
        self._thread = threading.Thread(target=self._read_loop, name="capture", daemon=True)
        self._thread.start()

    def _attach_filter(self, program: list[tuple[int, int, int, int]]) -> None:
        code = assemble(program)
        buffer = ctypes.create_string_buffer(code)
        fprog = struct.pack("HL", len(program), ctypes.addressof(buffer))  # struct sock_fprog
        self.sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)

    def _receive_pending(self) -> int:
        """recvmsg() until the socket would block; returns the number of frames kept."""
        kept = 0
        ancillary_size = socket.CMSG_SPACE(16)  # struct timespec
        while True:
            try:
                data, ancdata, _flags, address = self.sock.recvmsg(self._snaplen, ancillary_size)
            except (BlockingIOError, InterruptedError):
                return kept
            except OSError:
                return kept
            if address[2] == PACKET_OUTGOING:
                continue
            t_ns = time.time_ns()
            for level, kind, value in ancdata:
                if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS and len(value) >= 16:
                    seconds, nanoseconds = struct.unpack("qq", value[:16])
                    t_ns = seconds * 1_000_000_000 + nanoseconds
            self._sink(Frame(t_ns, data))
            self._last_arrival = time.monotonic()
            kept += 1

    def _read_loop(self) -> None:
        while not self._stop.is_set():
            try:
                readable, _, _ = select.select([self.sock], [], [], 0.05)
            except (OSError, ValueError):
                return
            if readable:
                self._receive_pending()

    def stop(self) -> tuple[list[Frame], int]:
        """Wait for the link to fall quiet, read what is left, close; (frames, kernel drops).

        With a sink the frames list is empty: the sink has had them all."""
        deadline = time.monotonic() + MAX_STOP_WAIT
        while time.monotonic() < deadline and time.monotonic() - self._last_arrival < QUIET_SECONDS:
            time.sleep(QUIET_SECONDS / 3)
        self._stop.set()
        self._thread.join()
        self._receive_pending()
        dropped = 0
        try:
            stats = self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
            _packets, dropped = struct.unpack("II", stats)
        except OSError:
            pass
        self.sock.close()
        self.frames.sort(key=lambda frame: frame.t_ns)
        return self.frames, dropped
