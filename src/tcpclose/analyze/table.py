"""The connection table: raw frames in, one `ConnectionTracker` per TCP connection, verdicts out.

The hot loop (`ConnectionTable.scan`) decodes the link layer, IPv4/IPv6 and the TCP header
with index arithmetic and `struct.unpack_from` straight on the file's read buffer: no
per-packet objects. A connection is keyed by the raw bytes of (source address, destination
address, ports) in both directions; its tracker receives header fields, not `Packet`s.

Connection boundaries follow tshark's `tcp.stream`: a SYN without ACK on a 4-tuple whose
connection has ended (FIN both ways or RST), or that carries a new initial sequence number,
starts a new connection. Connections are numbered in the order their first packet appears
(0, 1, 2... as tshark numbers streams).

Memory stays flat: every `SWEEP` packets, connections that ended more than `LINGER` seconds
of capture time ago, or saw no packet for `IDLE` seconds (Zeek's TCP inactivity timeout),
are finished and handed to the `done` callback. What is left is finished at the end.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from socket import AF_INET, AF_INET6, inet_ntop

from tcpclose.analyze.capfile import Frame
from tcpclose.analyze.filter import ConnectionFilter
from tcpclose.classify import ConnectionTracker, ConnectionVerdict
from tcpclose.model.packet import Packet

LINGER = 5.0
IDLE = 300.0
SWEEP = 1 << 16

_TCP = struct.Struct("!HHIIHH").unpack_from
_V6_EXTENSIONS = frozenset({0, 43, 60})


@dataclass(frozen=True, slots=True)
class Row:
    """One connection's verdict and its number (start order, like tshark's tcp.stream)."""

    number: int
    verdict: ConnectionVerdict


class ConnectionTable:
    """Feeds frames to per-connection trackers; calls `done(Row)` as each connection ends."""

    def __init__(
        self,
        done: Callable[[Row], None],
        connection_filter: ConnectionFilter | None = None,
        collect: int | None = None,
    ) -> None:
        self._done = done
        self._filter = connection_filter
        #: directional key -> [tracker, sent by the originator?, number]
        self._flows: dict[bytes, list] = {}
        self._ignored: set[bytes] = set()
        self._next_number = 0
        self.packets = 0  # frames seen
        self.tcp_packets = 0  # TCP segments decoded (before the filter)
        self.skipped = 0  # frames that are not TCP over IP or are cut short
        self._collect = collect
        #: the packets of connection number `collect`, with payload, for a timeline
        self.collected: list[Packet] = []
        self._last_sweep_t = 0.0

    def scan(self, frames: Iterable[Frame]) -> None:
        """Decode and track every frame (the hot loop)."""
        flows = self._flows
        get = flows.get
        tcp = _TCP
        skipped = 0
        count = self.packets
        tcp_count = self.tcp_packets
        collect = self._collect
        for lt, t, buf, off, end in frames:
            count += 1
            # Link layer -> network layer start `n` and protocol `et`.
            if lt == 1:
                et = (buf[off + 12] << 8) | buf[off + 13] if off + 14 <= end else 0
                n = off + 14
                while et in (0x8100, 0x88A8, 0x9100) and n + 4 <= end:
                    et = (buf[n + 2] << 8) | buf[n + 3]
                    n += 4
            elif lt == 113:
                et = (buf[off + 14] << 8) | buf[off + 15] if off + 16 <= end else 0
                n = off + 16
            elif lt == 276:
                et = (buf[off] << 8) | buf[off + 1] if off + 20 <= end else 0
                n = off + 20
            elif lt == 0 or lt == 108:
                n = off + 4
                family = (buf[off] | buf[off + 3]) if n <= end else 0
                et = 0x0800 if family == 2 else 0x86DD if family in (10, 24, 28, 30) else 0
            else:  # raw IP: 12, 14, 101, 228, 229
                n = off
                version = buf[off] >> 4 if off < end else 0
                et = 0x0800 if version == 4 else 0x86DD if version == 6 else 0
            # Network layer -> TCP header start `th`, payload length `ip_len`, key.
            if et == 0x0800:
                if n + 20 > end:
                    skipped += 1
                    continue
                b0 = buf[n]
                ihl = (b0 & 15) * 4
                if b0 >> 4 != 4 or buf[n + 9] != 6 or ihl < 20 or (buf[n + 6] & 0x1F) | buf[n + 7]:
                    skipped += 1
                    continue
                th = n + ihl
                if th + 20 > end:
                    skipped += 1
                    continue
                ip_len = ((buf[n + 2] << 8) | buf[n + 3]) - ihl
                if ip_len < 0:  # total length 0 (TSO): the payload is what was captured
                    ip_len = end - th
                # (source, destination, ports) are contiguous when there are no IP options
                key = buf[n + 12 : n + 24] if ihl == 20 else buf[n + 12 : n + 20] + buf[th : th + 4]
                alen = 4
            elif et == 0x86DD:
                if n + 40 > end:
                    skipped += 1
                    continue
                nh = buf[n + 6]
                th = n + 40
                while nh in _V6_EXTENSIONS and th + 8 <= end:
                    nh = buf[th]
                    th += (buf[th + 1] + 1) * 8
                if nh == 44 and th + 8 <= end:  # fragment: only the first one has the header
                    if (buf[th + 2] << 8 | buf[th + 3]) & 0xFFF8:
                        skipped += 1
                        continue
                    nh = buf[th]
                    th += 8
                if nh != 6 or th + 20 > end:
                    skipped += 1
                    continue
                ip_len = ((buf[n + 4] << 8) | buf[n + 5]) - (th - n - 40)
                if ip_len <= 0:
                    ip_len = end - th
                key = buf[n + 8 : n + 40] + buf[th : th + 4]
                alen = 16
            else:
                skipped += 1
                continue
            tcp_count += 1
            sport, dport, seq, ack, offflags, win = tcp(buf, th)
            flags = offflags & 0xFF
            length = ip_len - ((offflags >> 12) << 2)
            if length < 0:
                length = 0
            entry = get(key)
            if entry is None or (
                flags & 0x12 == 0x02 and entry[0].starts_new_connection(entry[1], flags, seq)
            ):
                if entry is not None:
                    self._finish(entry)
                elif key in self._ignored:
                    continue
                entry = self._new(key, alen, t, sport, dport, flags)
                if entry is None:
                    continue
            entry[0].feed_fields(t, entry[1], flags, seq, ack, win, length)
            if collect is not None and entry[2] == collect:
                payload_at = th + ((offflags >> 12) << 2)
                self._keep(
                    entry,
                    key,
                    alen,
                    t,
                    sport,
                    dport,
                    flags,
                    seq,
                    ack,
                    win,
                    length,
                    bytes(buf[payload_at : min(end, payload_at + length)]),
                )
            if not count & (SWEEP - 1):
                self.packets, self.tcp_packets, self.skipped = count, tcp_count, skipped
                self._sweep(t)
        self.packets, self.tcp_packets, self.skipped = count, tcp_count, skipped

    def _new(
        self, key: bytes, alen: int, t: float, sport: int, dport: int, flags: int
    ) -> list | None:
        """Start tracking the connection whose first packet has this key."""
        family = AF_INET if alen == 4 else AF_INET6
        src = inet_ntop(family, key[:alen])
        dst = inet_ntop(family, key[alen : 2 * alen])
        if self._filter is not None and not self._filter.matches(src, sport, dst, dport):
            if len(self._ignored) > 100_000:
                self._ignored.clear()
            self._ignored.add(key)
            return None
        tracker = ConnectionTracker.from_fields(t, src, sport, dst, dport, flags)
        reverse = (
            key[alen : 2 * alen] + key[:alen] + key[2 * alen + 2 :] + key[2 * alen : 2 * alen + 2]
        )
        number = self._next_number
        self._next_number += 1
        forward = [tracker, tracker.first_is_originator, number, key, reverse]
        backward = [tracker, not tracker.first_is_originator, number, key, reverse]
        self._flows[key] = forward
        self._flows[reverse] = backward
        return forward

    def _keep(
        self,
        entry: list,
        key: bytes,
        alen: int,
        t: float,
        sport: int,
        dport: int,
        flags: int,
        seq: int,
        ack: int,
        win: int,
        length: int,
        payload: bytes,
    ) -> None:
        family = AF_INET if alen == 4 else AF_INET6
        src = inet_ntop(family, key[:alen])
        dst = inet_ntop(family, key[alen : 2 * alen])
        self.collected.append(
            Packet(t, src, sport, dst, dport, flags, seq, ack, win, length, payload)
        )

    def _finish(self, entry: list) -> None:
        """Hand one connection's verdict out and forget it."""
        tracker, _, number, key, reverse = entry
        if self._flows.get(key) is not None and self._flows[key][0] is tracker:
            del self._flows[key]
        if self._flows.get(reverse) is not None and self._flows[reverse][0] is tracker:
            del self._flows[reverse]
        self._done(Row(number, tracker.verdict()))

    def _sweep(self, now: float) -> None:
        """Finish connections that ended LINGER seconds ago or were idle IDLE seconds."""
        seen: set[int] = set()
        for entry in list(self._flows.values()):
            tracker = entry[0]
            if id(tracker) in seen:
                continue
            seen.add(id(tracker))
            idle = now - tracker.end
            if idle > IDLE or (idle > LINGER and tracker.ended):
                self._finish(entry)

    def finish(self) -> None:
        """Finish every connection still in the table, in start order."""
        entries = {id(e[0]): e for e in self._flows.values()}
        for entry in sorted(entries.values(), key=lambda e: e[2]):
            self._finish(entry)
        self._ignored.clear()

    @property
    def connections(self) -> int:
        return self._next_number
