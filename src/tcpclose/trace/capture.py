"""Capturing a traced program's packets before its ports are known.

The program has not connected yet when the capture must start, so the kernel filter is widened
to every TCP segment (IPv4 and IPv6) and the rows are filtered afterwards, by the connections
the program's calls revealed. This reuses the project's AF_PACKET capture
(`tcpclose.capture.live`) with a wider filter: one socket on `lo` (where each packet passes the
tap twice and only the arriving copy is kept) and one on each other Ethernet interface that is
up (where our own outgoing packets appear once, as PACKET_OUTGOING, and are kept).
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import time
from dataclasses import dataclass

from tcpclose.capture import CaptureResult, parse_frame
from tcpclose.capture.bpf import ETH_P_IP, ETH_P_IPV6, IPPROTO_TCP, SNAPLEN
from tcpclose.capture.frames import Frame
from tcpclose.capture.live import (
    MAX_FRAME,
    PACKET_OUTGOING,
    SCM_TIMESTAMPNS,
    SOL_PACKET,
    AfPacketCapture,
)

_LD_H_ABS, _LD_B_ABS, _JEQ_K, _RET_K = 0x28, 0x30, 0x15, 0x06

#: every TCP segment over IPv4 or IPv6 (no IPv6 extension headers), Ethernet framing
ALL_TCP_PROGRAM: list[tuple[int, int, int, int]] = [
    (_LD_H_ABS, 0, 0, 12),  # 0: ethertype
    (_JEQ_K, 0, 2, ETH_P_IP),  # 1: IPv4? else 4
    (_LD_B_ABS, 0, 0, 14 + 9),  # 2: IPv4 protocol
    (_JEQ_K, 3, 4, IPPROTO_TCP),  # 3: TCP -> 7 (accept), else 8 (drop)
    (_JEQ_K, 0, 3, ETH_P_IPV6),  # 4: IPv6? else drop
    (_LD_B_ABS, 0, 0, 14 + 6),  # 5: IPv6 next header
    (_JEQ_K, 0, 1, IPPROTO_TCP),  # 6: TCP -> accept, else drop
    (_RET_K, 0, 0, SNAPLEN),  # 7: accept
    (_RET_K, 0, 0, 0),  # 8: drop
]
#: how long after the program ended its kernel may still be answering (loopback: microseconds)
GRACE_SECONDS = 0.02
_ARPHRD_ETHER = 1
#: frames read in one go by the reader thread before it looks whether to stop
BUDGET = 2000
#: loopback connections made at most to see the kernel stamp packets (see wait_for_kernel_stamps)
PROBE_TRIES = 20


class WideCapture(AfPacketCapture):
    """AfPacketCapture with an all-TCP filter; on interfaces other than `lo` it keeps the
    outgoing copies (there each packet is seen once, in its own direction)."""

    def __init__(self, interface: str = "lo") -> None:
        self.keep_outgoing = interface != "lo"
        super().__init__((1,), interface)

    def _attach_filter(self, program: list[tuple[int, int, int, int]]) -> None:
        super()._attach_filter(ALL_TCP_PROGRAM)

    def _receive_pending(self, until_ns: int | None = None, budget: int = BUDGET) -> int:
        """recvmsg() what is queued, at most `budget` frames (the reader thread then checks
        whether to stop: a busy loopback must not keep it here), none stamped after `until_ns`.
        Returns how many frames were read."""
        read = 0
        while read < budget:
            try:
                data, ancdata, _flags, address = self.sock.recvmsg(MAX_FRAME, socket.CMSG_SPACE(16))
            except OSError:
                break
            read += 1
            if address[2] == PACKET_OUTGOING and not self.keep_outgoing:
                continue
            t_ns = time.time_ns()
            for level, kind, value in ancdata:
                if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS and len(value) >= 16:
                    seconds, nanoseconds = struct.unpack("qq", value[:16])
                    t_ns = seconds * 1_000_000_000 + nanoseconds
            if until_ns is not None and t_ns > until_ns:
                return 0  # sent after the trace ended: what we wanted is all read
            self.frames.append(Frame(t_ns, data))
        return read

    def _read_loop(self) -> None:
        """As AfPacketCapture's, with a shorter select(): stop() waits for this loop."""
        while not self._stop.is_set():
            try:
                readable, _, _ = select.select([self.sock], [], [], 0.01)
            except (OSError, ValueError):
                return
            if readable:
                self._receive_pending()

    def stop_now(self, until_ns: int | None = None) -> tuple[list[Frame], int]:
        """Read what the kernel queued up to `until_ns` and close: on loopback the program's
        packets were queued to us as they were sent (no quiet period to wait for)."""
        self._stop.set()
        self._thread.join()
        while self._receive_pending(until_ns):
            pass
        dropped = 0
        with contextlib.suppress(OSError):
            _packets, dropped = struct.unpack("II", self.sock.getsockopt(SOL_PACKET, 6, 8))
        self.sock.close()
        return self.frames, dropped


def frame_ports(data: bytes) -> tuple[int, int] | None:
    """(source port, destination port) of an Ethernet-framed TCP segment, without decoding it
    (the wide capture holds every TCP segment on the machine: most are not ours)."""
    if len(data) < 14 + 20:
        return None
    ethertype = int.from_bytes(data[12:14], "big")
    if ethertype == ETH_P_IP:
        offset = 14 + (data[14] & 0x0F) * 4
    elif ethertype == ETH_P_IPV6:
        offset = 14 + 40
    else:
        return None
    if len(data) < offset + 4:
        return None
    return int.from_bytes(data[offset : offset + 2], "big"), int.from_bytes(
        data[offset + 2 : offset + 4], "big"
    )


def ethernet_interfaces() -> list[str]:
    """Interfaces other than lo that are up and carry Ethernet framing."""
    names = []
    for _index, name in socket.if_nameindex():
        if name == "lo":
            continue
        try:
            with open(f"/sys/class/net/{name}/type") as f:
                kind = int(f.read().strip())
            with open(f"/sys/class/net/{name}/operstate") as f:
                state = f.read().strip()
        except (OSError, ValueError):
            continue
        if kind == _ARPHRD_ETHER and state in ("up", "unknown"):
            names.append(name)
    return names


@dataclass
class TraceCapture:
    """AF_PACKET sockets on lo and the other interfaces, started before the program runs."""

    backends: list[WideCapture]
    note: str | None

    @classmethod
    def start(cls, enabled: bool = True) -> TraceCapture:
        if not enabled:
            return cls([], "packet capture turned off (--no-capture): socket calls only")
        backends: list[WideCapture] = []
        try:
            backends.append(WideCapture("lo"))
        except PermissionError:
            return cls(
                [],
                "no packet capture (no permission for AF_PACKET: needs root or CAP_NET_RAW): "
                "socket calls only",
            )
        except OSError as exc:
            return cls([], f"no packet capture ({exc.strerror or exc}): socket calls only")
        for name in ethernet_interfaces():
            with contextlib.suppress(OSError):
                backends.append(WideCapture(name))
        session = cls(backends, None)
        session.wait_for_kernel_stamps()
        return session

    def wait_for_kernel_stamps(self) -> bool:
        """Wait until the kernel stamps packets as they pass (True), at most PROBE_TRIES
        loopback connections.

        The first socket asking for timestamps turns them on through deferred work: until it
        ran, a packet is stamped only when we read it, milliseconds late, and would land after
        the call that sent it. A loopback connection of our own, made between two clock
        readings, shows when its SYN's stamp falls between them."""
        lo = self.backends[0]
        for _ in range(PROBE_TRIES):
            with socket.socket() as server:
                server.bind(("127.0.0.1", 0))
                server.listen(1)
                port = server.getsockname()[1]
                before = time.time_ns()
                with socket.create_connection(("127.0.0.1", port), timeout=2):
                    after = time.time_ns()
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                syn = next(
                    (
                        f
                        for f in list(lo.frames)
                        if (p := parse_frame(f)) is not None and p.syn and p.dport == port
                    ),
                    None,
                )
                if syn is not None:
                    if before <= syn.t_ns <= after:
                        return True
                    break
                time.sleep(0.002)
        return False

    def stop(self) -> CaptureResult:
        """Every TCP frame seen, undecoded (`packets` is empty: see runs.build_runs)."""
        if not self.backends:
            return CaptureResult("none", self.note)
        deadline = time.monotonic() + GRACE_SECONDS
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(left)
        until_ns = time.time_ns()
        frames: list[Frame] = []
        dropped = 0
        for backend in self.backends:
            got, lost = backend.stop_now(until_ns)
            frames.extend(got)
            dropped += lost
        frames.sort(key=lambda frame: frame.t_ns)
        self.backends = []
        # Undecoded: most are other programs' segments; the traced ones are picked by port.
        return CaptureResult("af_packet", self.note, tuple(frames), (), dropped)

    def close(self) -> None:
        """Stop without reading (on an error path)."""
        for backend in self.backends:
            with contextlib.suppress(OSError):
                backend.stop_now()
        self.backends = []
