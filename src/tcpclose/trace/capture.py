"""Capturing a traced program's packets before its ports are known.

The program has not connected yet when the capture must start, so the kernel filter is widened
to every TCP segment (IPv4 and IPv6) and the rows are filtered afterwards, by the connections
the program's calls revealed. (Restarting a narrower capture once a port is known would lose
what came first: a connect()'s SYN leaves before strace prints the call.)

With CAP_NET_RAW, AF_PACKET sockets (as `tcpclose.capture.live`, with a wider filter): one on
`lo`, where each packet passes the tap twice and only the arriving copy is kept; one on each
other interface that is up, where our own outgoing packets appear once, as PACKET_OUTGOING, and
are kept. Ethernet interfaces are read with SOCK_RAW (their frames as they are); any other link
(a tun device, an IP tunnel, ppp) with SOCK_DGRAM, which gives the IP packet without its link
header, turned into an Ethernet frame (`frames.ethernet_header`) like every frame the project
keeps.

Without CAP_NET_RAW, the lab's fallback: tcpdump (which may hold the capability itself, by file
capabilities or sudo), on every interface at once (`-i any`) with the filter `tcp`, in Linux's
cooked v2 framing, which names each frame's interface and direction.
"""

from __future__ import annotations

import contextlib
import ctypes
import select
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from tcpclose.capture import CaptureResult, parse_frame
from tcpclose.capture.bpf import ETH_P_IP, ETH_P_IPV6, IPPROTO_TCP, SNAPLEN, assemble
from tcpclose.capture.frames import Frame, ethernet_header, once_per_packet
from tcpclose.capture.live import (
    ETH_P_ALL,
    MAX_FRAME,
    PACKET_OUTGOING,
    SCM_TIMESTAMPNS,
    SO_ATTACH_FILTER,
    SO_RCVBUFFORCE,
    SO_TIMESTAMPNS,
    SOL_PACKET,
)
from tcpclose.capture.tcpdump import TcpdumpCapture, TcpdumpUnavailable

_LD_H_ABS, _LD_B_ABS, _JEQ_K, _RET_K = 0x28, 0x30, 0x15, 0x06
#: `ld #proto`: the packet's EtherType, whatever the link (linux/filter.h SKF_AD_PROTOCOL)
_SKF_AD_PROTOCOL = 0xFFFFF000


def _all_tcp(network: int, ethertype_at: int) -> list[tuple[int, int, int, int]]:
    """Every TCP segment over IPv4 or IPv6 (no IPv6 extension headers); the IP header at
    `network`, the EtherType loaded from `ethertype_at`."""
    return [
        (_LD_H_ABS, 0, 0, ethertype_at),  # 0: ethertype
        (_JEQ_K, 0, 2, ETH_P_IP),  # 1: IPv4? else 4
        (_LD_B_ABS, 0, 0, network + 9),  # 2: IPv4 protocol
        (_JEQ_K, 3, 4, IPPROTO_TCP),  # 3: TCP -> 7 (accept), else 8 (drop)
        (_JEQ_K, 0, 3, ETH_P_IPV6),  # 4: IPv6? else drop
        (_LD_B_ABS, 0, 0, network + 6),  # 5: IPv6 next header
        (_JEQ_K, 0, 1, IPPROTO_TCP),  # 6: TCP -> accept, else drop
        (_RET_K, 0, 0, SNAPLEN),  # 7: accept
        (_RET_K, 0, 0, 0),  # 8: drop
    ]


#: Ethernet framing (SOCK_RAW on lo and Ethernet interfaces)
ALL_TCP_PROGRAM = _all_tcp(14, 12)
#: no link header (SOCK_DGRAM): the EtherType comes from the kernel's skb->protocol
ALL_TCP_COOKED_PROGRAM = _all_tcp(0, _SKF_AD_PROTOCOL)

_ARPHRD_ETHER = 1
_ARPHRD_LOOPBACK = 772
_IFF_UP = 0x1
#: how long after the program ended its kernel may still be answering (loopback: microseconds)
GRACE_SECONDS = 0.02
#: frames read in one go by the reader thread before it looks whether to stop
BUDGET = 2000
#: loopback connections made at most to see the kernel stamp packets (see wait_for_kernel_stamps),
#: for at most PROBE_SECONDS (the kernel's deferred work may wait for a loaded CPU)
PROBE_TRIES = 200
PROBE_SECONDS = 2.0
#: at most this long, after the program ended, for lo's arriving copies of the packets it sent:
#: they are queued to us by the receive softirq, which a loaded machine runs late (ksoftirqd)
TWIN_WAIT = 5.0
#: the wide capture's receive buffer: every TCP segment on the machine queues here while the
#: reader thread waits for a loaded CPU (the lab's narrow capture needs 8 MiB)
WIDE_RCVBUF = 32 * 1024 * 1024
#: how long the probe waits for its own SYN
PROBE_WAIT = 2.0


class WideCapture:
    """Every TCP segment on one interface, read by a thread; PermissionError without
    CAP_NET_RAW.

    On `lo` the copy of a packet going out is queued to us at once, in the sender's own call,
    and its arriving copy (the one kept) when the receive softirq runs: each outgoing copy
    waits in `_awaiting` until its twin, byte for byte, is read. `stop_now` uses that to know
    that every packet the program sent has been read, instead of a fixed grace period.
    """

    def __init__(self, interface: str = "lo", *, cooked: bool = False) -> None:
        self.interface = interface
        self.cooked = cooked
        self.loopback = interface == "lo"
        self.frames: list[Frame] = []
        self._awaiting: Counter[int] = Counter()
        self._pending: Counter[int] | None = None
        self._late = False
        self._stop = threading.Event()
        self.sock = _packet_socket(interface, cooked)
        self._thread = threading.Thread(target=self._read_loop, name="capture", daemon=True)
        self._thread.start()

    def _receive_pending(self, until_ns: int | None = None, budget: int = BUDGET) -> int:
        """recvmsg() what is queued, at most `budget` frames (the reader thread then checks
        whether to stop: a busy loopback must not keep it here); frames stamped after
        `until_ns` are read and dropped. Returns how many frames were read."""
        read = 0
        while read < budget:
            try:
                data, ancdata, _flags, address = self.sock.recvmsg(MAX_FRAME, socket.CMSG_SPACE(16))
            except OSError:
                break
            read += 1
            if self.loopback:
                twin = hash(data)
                if address[2] == PACKET_OUTGOING:
                    self._awaiting[twin] += 1
                    continue
                left = self._awaiting.pop(twin, 0) - 1
                if left > 0:
                    self._awaiting[twin] = left  # (no zero entries: a long trace would keep them)
                if left >= 0 and self._pending is not None and self._pending.get(twin, 0) > 0:
                    self._pending[twin] -= 1
            t_ns = time.time_ns()
            for level, kind, value in ancdata:
                if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS and len(value) >= 16:
                    seconds, nanoseconds = struct.unpack("qq", value[:16])
                    t_ns = seconds * 1_000_000_000 + nanoseconds
            if until_ns is not None and t_ns > until_ns:
                self._late = True  # sent after the trace ended: all before it is read
                continue
            if self.cooked:
                data = ethernet_header(address[1]) + data
            self.frames.append(Frame(t_ns, data))
        return read

    def _read_loop(self) -> None:
        while not self._stop.is_set():
            try:
                readable, _, _ = select.select([self.sock], [], [], 0.01)
            except (OSError, ValueError):
                return
            if readable:
                self._receive_pending()

    def stop_now(
        self, until_ns: int | None = None, wait: float = TWIN_WAIT
    ) -> tuple[list[Frame], int]:
        """Read what the kernel queued up to `until_ns` and close. On `lo`, first wait (at most
        `wait` seconds) until every packet whose outgoing copy is queued has arrived."""
        self._stop.set()
        self._thread.join()
        deadline = time.monotonic() + wait
        while not self._late and self._receive_pending(until_ns):
            if time.monotonic() > deadline:
                break
        # The packets sent before until_ns were all queued (outgoing copies) before the late
        # frame, or the queue is empty: the arriving copies not read yet are what we need.
        self._pending = +self._awaiting
        while sum(self._pending.values()) and (left := deadline - time.monotonic()) > 0:
            with contextlib.suppress(OSError, ValueError):
                select.select([self.sock], [], [], min(left, 0.05))
            self._receive_pending(until_ns)
            self._pending = +self._pending
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


def other_interfaces() -> list[tuple[str, bool]]:
    """Interfaces other than lo that are up, each with whether it is read cooked (SOCK_DGRAM:
    every link that is not Ethernet)."""
    found = []
    for _index, name in socket.if_nameindex():
        if name == "lo":
            continue
        try:
            with open(f"/sys/class/net/{name}/type") as f:
                kind = int(f.read().strip())
            with open(f"/sys/class/net/{name}/flags") as f:
                flags = int(f.read().strip(), 0)
        except (OSError, ValueError):
            continue
        if kind == _ARPHRD_LOOPBACK or not flags & _IFF_UP:
            continue
        found.append((name, kind != _ARPHRD_ETHER))
    return found


_NO_RAW = "no permission for AF_PACKET (needs root or CAP_NET_RAW)"


@dataclass
class TraceCapture:
    """The capture of a trace, started before the program runs: AF_PACKET sockets, or tcpdump."""

    backends: list[WideCapture]
    note: str | None
    tcpdump: TcpdumpCapture | None = None
    #: interfaces that could not be captured, with why
    missed: list[str] = field(default_factory=list)
    kernel_stamps: bool = True

    @classmethod
    def start(
        cls, enabled: bool = True, methods: Sequence[str] = ("af_packet", "tcpdump")
    ) -> TraceCapture:
        """The first method of `methods` that works; a capture of nothing (its note says why)
        when none does."""
        if not enabled or not methods:
            return cls([], "packet capture turned off (--no-capture): socket calls only")
        attempts: list[str] = []
        for method in methods:
            if method == "af_packet":
                try:
                    return cls._af_packet(attempts)
                except PermissionError:
                    attempts.append(_NO_RAW)
                except OSError as exc:
                    attempts.append(f"af_packet: {exc.strerror or exc}")
            elif method == "tcpdump":
                try:
                    backend = TcpdumpCapture(None, "any", link_type="LINUX_SLL2")
                except TcpdumpUnavailable as exc:
                    attempts.append(str(exc))
                    continue
                except OSError as exc:
                    attempts.append(f"tcpdump: {exc.strerror or exc}")
                    continue
                note = "tcpdump on every interface" + (
                    f" ({'; '.join(attempts)})" if attempts else ""
                )
                return cls([], note, backend)
            else:
                raise ValueError(f"unknown capture method {method!r}")
        return cls([], "no packet capture (" + "; ".join(attempts) + "): socket calls only")

    @classmethod
    def _af_packet(cls, attempts: list[str]) -> TraceCapture:
        backends = [WideCapture("lo")]
        missed = []
        for name, cooked in other_interfaces():
            try:
                backends.append(WideCapture(name, cooked=cooked))
            except OSError as exc:
                missed.append(f"{name} ({exc.strerror or exc})")
        session = cls(backends, "; ".join(attempts) or None, missed=missed)
        session.kernel_stamps = session.wait_for_kernel_stamps()
        return session

    @property
    def method(self) -> str:
        return "tcpdump" if self.tcpdump is not None else "af_packet" if self.backends else "none"

    def wait_for_kernel_stamps(self) -> bool:
        """Wait until the kernel stamps packets as they pass (True), at most PROBE_TRIES
        loopback connections and PROBE_SECONDS.

        The first socket asking for timestamps turns them on through deferred work: until it
        ran, a packet is stamped only when it is read, which can be long after the call that
        sent it. A socket of the probe's own, read only after a loopback connection of ours
        was made between two clock readings, shows it: a SYN stamped before the second reading
        was stamped by the kernel as it passed (a stamp taken when read comes after it)."""
        deadline = time.monotonic() + PROBE_SECONDS
        with _packet_socket("lo", cooked=False, blocking=True) as probe:
            for _ in range(PROBE_TRIES):
                stamp, after = _probe_syn(probe)
                if stamp is not None and stamp <= after:
                    return True
                if time.monotonic() > deadline:
                    break
        return False

    def stop(self) -> CaptureResult:
        """Every TCP frame seen, undecoded (`packets` is empty: see runs.build_runs)."""
        deadline = time.monotonic() + GRACE_SECONDS
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(left)
        until_ns = time.time_ns()
        notes = [self.note] if self.note else []
        if self.missed:
            notes.append("not captured: " + ", ".join(self.missed))
        if self.tcpdump is not None:
            got, dropped = self.tcpdump.stop()
            kept = tuple(f for f in got if f.t_ns <= until_ns)
            skipped = self.tcpdump.skipped
            if skipped:
                notes.append(
                    "skipped: " + ", ".join(f"{n} frames of {kind}" for kind, n in skipped.items())
                )
            self.tcpdump = None
            return CaptureResult("tcpdump", "; ".join(notes), kept, (), dropped)
        if not self.backends:
            return CaptureResult("none", self.note)
        if not self.kernel_stamps:
            notes.append("the kernel did not stamp packets as they passed: times are approximate")
        seen: list[tuple[Frame, object]] = []
        dropped = 0
        for backend in self.backends:
            got, lost = backend.stop_now(until_ns)
            seen.extend((frame, backend.interface) for frame in got)
            dropped += lost
        frames = once_per_packet(seen)
        self.backends = []
        # Undecoded: most are other programs' segments; the traced ones are picked by port.
        return CaptureResult("af_packet", "; ".join(notes) or None, tuple(frames), (), dropped)

    def close(self) -> None:
        """Stop without reading (on an error path)."""
        for backend in self.backends:
            with contextlib.suppress(OSError):
                backend.stop_now(wait=0)
        self.backends = []
        if self.tcpdump is not None:
            with contextlib.suppress(OSError):
                self.tcpdump.stop()
            self.tcpdump = None


def _packet_socket(interface: str, cooked: bool, blocking: bool = False) -> socket.socket:
    """An AF_PACKET socket on `interface` with the all-TCP filter and kernel timestamps.

    socket(AF_PACKET, SOCK_RAW or SOCK_DGRAM, 0): protocol 0 receives nothing before
    setsockopt(SO_ATTACH_FILTER) has put the filter in place and bind() names the interface.
    """
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM if cooked else socket.SOCK_RAW, 0)
    try:
        program = ALL_TCP_COOKED_PROGRAM if cooked else ALL_TCP_PROGRAM
        code = ctypes.create_string_buffer(assemble(program))
        fprog = struct.pack("HL", len(program), ctypes.addressof(code))  # struct sock_fprog
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, WIDE_RCVBUF)
        except PermissionError:  # without CAP_NET_ADMIN: take what the limit allows
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, WIDE_RCVBUF)
        sock.bind((interface, ETH_P_ALL))
        sock.setblocking(blocking)
    except BaseException:
        sock.close()
        raise
    return sock


def _probe_syn(sock: socket.socket) -> tuple[int | None, int]:
    """Connect to a listener of ours; (the kernel's stamp of its SYN, the clock just after
    connect() returned). The SYN is read only after that reading."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=PROBE_WAIT):
            after = time.time_ns()
    deadline = time.monotonic() + PROBE_WAIT
    while (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([sock], [], [], left)
        if not readable:
            break
        data, ancdata, _flags, address = sock.recvmsg(MAX_FRAME, socket.CMSG_SPACE(16))
        if address[2] == PACKET_OUTGOING:
            continue
        packet = parse_frame(Frame(0, data))
        if packet is None or not packet.syn or packet.has_ack or packet.dport != port:
            continue
        for level, kind, value in ancdata:
            if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS and len(value) >= 16:
                seconds, nanoseconds = struct.unpack("qq", value[:16])
                return seconds * 1_000_000_000 + nanoseconds, after
        return None, after
    return None, after
