"""The connection table: raw frames in, one tracker per TCP connection, verdicts out.

Two paths, same rows:

* the fast path (`ConnectionTable.scan_batch`, used by `read_rows`): each connection gets a
  `MemoTracker`, which shares tracker states with the connections that went the same way
  (`tcpclose.classify.memo`); the cyclic collector is off while a batch runs. With the
  compiled loop (`_fastscan.scan`, when built) a read chunk's frames are decoded and
  tracked in C, as `decode` and `_frame` do, and only the frames it stops at go through
  `_frame`; without it, the plain IPv4 frames are decoded at once with numpy (others one by
  one, with `decode`) and the table lookup and the step in the shared states are Python's.
* the reference path (`scan`, `reference=True`): frame by frame, a plain
  `ConnectionTracker` per connection, every segment through `feed_reference` (the rules as
  written). Tests run both on every capture they make and compare.

A connection is keyed by the raw bytes of (source address, destination address, ports) of
one direction, the smaller of the two directions' keys; the packet's direction is whether
its own key is that one. Trackers receive header fields, not `Packet`s.

Connection boundaries follow tshark's `tcp.stream`: a SYN without ACK on a 4-tuple whose
connection has ended (FIN both ways or RST), or that carries a new initial sequence number,
starts a new connection. Connections are numbered in the order their first packet appears
(0, 1, 2... as tshark numbers streams).

Memory stays flat: every `SWEEP` packets, connections that ended more than `LINGER` seconds
of capture time ago, or saw no packet for `IDLE` seconds (Zeek's TCP inactivity timeout),
are finished and handed to the `done` callback. What is left is finished at the end. And
memory stays bounded: when more than `max_open` connections are open at once (a flood of
SYNs that nobody answers, each one a connection until it idles out), the quietest tenth are
finished at once, counted in `evicted` (the command warns: a later packet of one starts a
new row).
"""

from __future__ import annotations

import gc
import heapq
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import islice
from socket import AF_INET, AF_INET6, inet_ntop
from typing import TYPE_CHECKING

from tcpclose.analyze.capfile import Frame
from tcpclose.analyze.filter import ConnectionFilter
from tcpclose.classify import ConnectionTracker, ConnectionVerdict
from tcpclose.classify.memo import MemoTracker, TrackerMemo
from tcpclose.model.packet import Packet

if TYPE_CHECKING:
    import numpy as np
else:
    from tcpclose.analyze.lazynumpy import np

# the compiled inner loop, when built (None: the Python path, same output)
from tcpclose.analyze.compiled import fastscan as _fastscan

LINGER = 5.0
IDLE = 300.0
SWEEP = 1 << 16
assert IDLE >= LINGER
#: connections open at once that one table keeps (each costs ~1.2 kB); beyond, the quietest
#: tenth are finished early (a capture of a SYN flood holds one per SYN until they idle out)
MAX_OPEN = 60_000

_TCP = struct.Struct("!HHIIHH").unpack_from
_V6_EXTENSIONS = frozenset({0, 43, 60})


def decode(lt: int, buf: bytes, off: int, end: int) -> tuple | None:
    """One frame's TCP segment: (key, address length, TCP header offset, source port,
    destination port, seq, ack, data offset and flags, window, payload length), or None for a
    frame that is not TCP over IP or is cut short. The key is the raw (source address,
    destination address, ports)."""
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
            return None
        b0 = buf[n]
        ihl = (b0 & 15) * 4
        if b0 >> 4 != 4 or buf[n + 9] != 6 or ihl < 20 or (buf[n + 6] & 0x1F) | buf[n + 7]:
            return None
        th = n + ihl
        if th + 20 > end:
            return None
        ip_len = ((buf[n + 2] << 8) | buf[n + 3]) - ihl
        if ip_len < 0:  # total length 0 (TSO): the payload is what was captured
            ip_len = end - th
        # (source, destination, ports) are contiguous when there are no IP options
        key = buf[n + 12 : n + 24] if ihl == 20 else buf[n + 12 : n + 20] + buf[th : th + 4]
        alen = 4
    elif et == 0x86DD:
        if n + 40 > end:
            return None
        nh = buf[n + 6]
        th = n + 40
        while nh in _V6_EXTENSIONS and th + 8 <= end:
            nh = buf[th]
            th += (buf[th + 1] + 1) * 8
        if nh == 44 and th + 8 <= end:  # fragment: only the first one has the header
            if (buf[th + 2] << 8 | buf[th + 3]) & 0xFFF8:
                return None
            nh = buf[th]
            th += 8
        if nh != 6 or th + 20 > end:
            return None
        ip_len = ((buf[n + 4] << 8) | buf[n + 5]) - (th - n - 40)
        if ip_len <= 0:
            ip_len = end - th
        key = buf[n + 8 : n + 40] + buf[th : th + 4]
        alen = 16
    else:
        return None
    sport, dport, seq, ack, offflags, win = _TCP(buf, th)
    length = ip_len - ((offflags >> 12) << 2)
    if length < 0:
        length = 0
    return key, alen, th, sport, dport, seq, ack, offflags, win, length


def reverse_key(key: bytes, alen: int) -> bytes:
    """The key of the other direction: (destination, source, destination port, source port)."""
    return key[alen : 2 * alen] + key[:alen] + key[2 * alen + 2 :] + key[2 * alen : 2 * alen + 2]


#: the bytes of the IPv4 key's reverse, from the start of the IP header (see `reverse_key`)
_REVERSE = [16, 17, 18, 19, 12, 13, 14, 15, 22, 23, 20, 21]
#: where the network layer starts, and where its 2-byte protocol number is, by link type
_NETWORK_AT = {1: (14, 12), 113: (16, 14), 276: (20, 0), 12: (0, -1), 14: (0, -1), 101: (0, -1)}
_NETWORK_AT[228] = (0, -1)


class Decoded:
    """`decode`'s results for a batch of frames, as lists (and ports as arrays)."""

    __slots__ = ("ack", "dport", "flags", "keys", "length", "ok", "seq", "sport", "swap", "win")

    def __init__(self, count: int) -> None:
        self.ok = [False] * count
        empty = [0] * count
        self.keys = self.swap = self.flags = self.seq = self.ack = self.win = empty
        self.length = empty
        self.sport = self.dport = np.zeros(count, dtype=np.int64)


def _decode_ipv4(lt: int, buf: bytes, starts: np.ndarray, ends: np.ndarray) -> Decoded:
    """`decode` at once for the frames that are plain IPv4 (no options, not a fragment) with a
    whole TCP header (`ok`), their keys made canonical (the smaller of the key and its reverse,
    as bytes; `swap`: the frame's key is the reverse). The other frames' values are
    meaningless: `decode` them one by one."""
    headers = ipv4_headers(lt, buf, starts, ends)
    if headers is None:  # BSD loopback and the like: frame by frame
        return Decoded(len(starts))
    h, n, ok = headers
    return ipv4_fields(h, n, ends, ok)


def ipv4_headers(
    lt: int, buf: bytes, starts: np.ndarray, ends: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The 40 header bytes (IPv4 and TCP, if the frame is that) of every frame as rows `h`,
    where the network layer starts (`n`), and which frames are plain IPv4 (no options, not a
    fragment) with a whole TCP header (`ok`); None for the link types decoded frame by frame."""
    where = _NETWORK_AT.get(lt)
    if where is None:
        return None
    at_net, at_proto = where
    b = np.frombuffer(buf, dtype=np.uint8)
    last = len(b) - 1
    if len(b) < 40:
        return None
    n = starts + at_net
    # The 40 header bytes of every frame, as rows (from a window view: one copy per row;
    # a frame whose headers would pass the buffer's end gets other bytes, and is not ok).
    windows = np.lib.stride_tricks.sliding_window_view(b, 40)
    h = windows[np.minimum(n, len(windows) - 1)]
    ok = n + 40 <= ends  # also covers the link header
    if at_proto >= 0:
        proto = b[np.minimum(starts + at_proto, last)].astype(np.int64) << 8
        ok &= (proto | b[np.minimum(starts + at_proto + 1, last)]) == 0x0800
    ok &= h[:, 0] == 0x45  # version 4, no options
    ok &= h[:, 9] == 6
    ok &= ((h[:, 6] & 0x1F) | h[:, 7]) == 0
    return h, n, ok


def ipv4_fields(h: np.ndarray, n: np.ndarray, ends: np.ndarray, ok: np.ndarray) -> Decoded:
    """The `Decoded` fields of the frames whose header rows are `h` (see `ipv4_headers`)."""
    out = Decoded(len(h))
    u16 = h.view(">u2").astype(np.int64)
    u32 = h.view(">u4").astype(np.int64)
    ip_len = u16[:, 1] - 20
    ip_len = np.where(ip_len < 0, ends - (n + 20), ip_len)
    sport = u16[:, 10]
    dport = u16[:, 11]
    length = np.maximum(ip_len - ((h[:, 32] >> 4).astype(np.int64) << 2), 0)
    src = u32[:, 3]
    dst = u32[:, 4]
    swap = (dst < src) | ((dst == src) & (dport < sport))
    keys = np.where(swap[:, None], h[:, _REVERSE], h[:, 12:24])
    out.ok = ok.tolist()
    out.keys = np.ascontiguousarray(keys).view("V12").ravel().tolist()
    out.swap = swap.tolist()
    out.flags = h[:, 33].tolist()
    out.seq = u32[:, 6].tolist()
    out.ack = u32[:, 7].tolist()
    out.win = u16[:, 17].tolist()
    out.length = length.tolist()
    out.sport = sport
    out.dport = dport
    return out


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
        reference: bool = False,
        linger: float = LINGER,
    ) -> None:
        self._done = done
        #: seconds of capture time an ended connection waits for late packets before its row
        self.linger = min(linger, IDLE)
        #: capture time of the last packet tracked
        self.last_time = 0.0
        #: feed every segment through `ConnectionTracker.feed_reference`, frame by frame
        self.reference = reference
        self._filter = connection_filter
        #: canonical key -> [tracker, direction of the originator, number, key] (see `_new`)
        self._flows: dict[bytes, list] = {}
        self._ignored: set[bytes] = set()
        self._next_number = 0
        self.packets = 0  # frames seen
        self.tcp_packets = 0  # TCP segments decoded (before the filter)
        self.skipped = 0  # frames that are not TCP over IP or are cut short
        self._collect = collect
        #: the packets of connection number `collect`, with payload, for a timeline
        self.collected: list[Packet] = []
        self._addresses: dict[bytes, str] = {}
        #: the tracker states shared by connections that go the same way (fast path)
        self._memo = TrackerMemo()
        #: number -> forward entry of every connection in the table, in start order
        self._live: dict[int, list] = {}
        #: use the compiled loop when it is built (tests turn it off to compare)
        self.compiled = _fastscan is not None
        #: connections open at once before the quietest are finished early (`_evict`)
        self.max_open = MAX_OPEN
        #: connections finished early to keep `max_open`
        self.evicted = 0

    def scan(self, frames: Iterable[Frame]) -> None:
        """Decode and track every frame, one at a time: the reference path (`reference=True`
        also feeds every segment through the tracker's `feed_reference`)."""
        for lt, t, buf, off, end in frames:
            self.packets += 1
            self.last_time = t
            self._frame(lt, t, buf, off, end)

    def _frame(self, lt: int, t: float, buf: bytes, off: int, end: int) -> None:
        """Decode and track one frame (`self.packets` already counts it)."""
        decoded = decode(lt, buf, off, end)
        if decoded is None:
            self.skipped += 1
            return
        self.tcp_packets += 1
        key, alen, th, sport, dport, seq, ack, offflags, win, length = decoded
        flags = offflags & 0xFF
        reverse = reverse_key(key, alen)
        swap = reverse < key
        canonical = reverse if swap else key
        entry = self._flows.get(canonical)
        if entry is None or (
            flags & 0x12 == 0x02 and entry[0].starts_new_connection(entry[1] != swap, flags, seq)
        ):
            if entry is not None:
                self._finish(entry)
            elif key in self._ignored:
                return
            entry = self._new(key, canonical, swap, alen, t, sport, dport, flags)
            if entry is None:
                return
        if self.reference:
            entry[0].feed_reference(t, entry[1] != swap, flags, seq, ack, win, length)
        else:
            entry[0].feed_fields(t, entry[1] != swap, flags, seq, ack, win, length)
        if self._collect is not None and entry[2] == self._collect:
            payload_at = th + ((offflags >> 12) << 2)
            self._keep(
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
        if not self.packets & (SWEEP - 1):
            self._sweep(t)

    def scan_batch(
        self, lt: int, buf: bytes, starts: np.ndarray, ends: np.ndarray, times: np.ndarray
    ) -> None:
        """Decode and track the frames buf[starts[i]:ends[i]] (the fast path, same results as
        `scan` on the same frames).

        The common frames (IPv4 without options, not a fragment, with a whole TCP header, on
        the usual link types) are decoded at once with numpy; the others, and any frame when
        `collect` is set, go through `_frame` one by one. The per-frame Python work left is
        the table lookup and the tracker."""
        count = len(starts)
        if not count:
            return
        self.last_time = float(times[-1])
        compiled = _fastscan is not None and self.compiled
        if self.reference or (self._collect is not None and not compiled):
            for i in range(count):
                self.packets += 1
                self._frame(lt, float(times[i]), buf, int(starts[i]), int(ends[i]))
            return
        # The collector would walk the table's trackers again and again (they hold no cycles):
        # off while a batch runs, back on (one collection then at most) after it.
        collecting = gc.isenabled()
        gc.disable()
        try:
            if compiled:
                self._scan_compiled(lt, buf, starts, ends, times)
            else:
                self._scan_batch(lt, buf, starts, ends, times)
        finally:
            if collecting:
                gc.enable()

    def _scan_batch(
        self, lt: int, buf: bytes, starts: np.ndarray, ends: np.ndarray, times: np.ndarray
    ) -> None:
        """The pure fast path (no compiled loop): plain IPv4 decoded with numpy."""
        starts, ends, times = np.asarray(starts), np.asarray(ends), np.asarray(times)
        d = _decode_ipv4(lt, buf, starts, ends)
        get = self._flows.get
        base = packets = self.packets
        tcp_packets = self.tcp_packets
        ignored = self._ignored
        sweep_mask = SWEEP - 1
        for ok, t, key, swap, flags, seq, ack, win, length in zip(
            d.ok,
            times.tolist(),
            d.keys,
            d.swap,
            d.flags,
            d.seq,
            d.ack,
            d.win,
            d.length,
            strict=True,
        ):
            packets += 1
            if not ok:
                self.packets, self.tcp_packets = packets, tcp_packets
                i = packets - base - 1
                self._frame(lt, t, buf, int(starts[i]), int(ends[i]))
                packets, tcp_packets = self.packets, self.tcp_packets
                continue
            tcp_packets += 1
            entry = get(key)
            if entry is None or (
                flags & 0x12 == 0x02
                and entry[0].starts_new_connection(entry[1] != swap, flags, seq)
            ):
                raw = key[4:8] + key[:4] + key[10:] + key[8:10] if swap else key
                if entry is not None:
                    self._finish(entry)
                elif raw in ignored:
                    continue
                i = packets - base - 1
                sport, dport = int(d.sport[i]), int(d.dport[i])
                entry = self._new(raw, key, swap, 4, t, sport, dport, flags)
                if entry is None:
                    continue
            entry[0].feed_fields(t, entry[1] != swap, flags, seq, ack, win, length)
            if not packets & sweep_mask:
                self.packets, self.tcp_packets = packets, tcp_packets
                self._sweep(t)
        self.packets, self.tcp_packets = packets, tcp_packets

    def _scan_compiled(
        self,
        lt: int,
        buf: bytes,
        starts: np.ndarray,
        ends: np.ndarray,
        times: np.ndarray,
    ) -> None:
        """`_scan_batch` with the compiled loop (`_fastscan.scan`) for the frames it can
        take (any link type, IPv4 and IPv6), and `_frame` for each frame it stops at (see
        `_fastscan.c`)."""
        count = len(starts)
        if not isinstance(starts, memoryview):  # (a memoryview from the compiled walk is)
            starts = np.ascontiguousarray(starts, dtype=np.int64)
            ends = np.ascontiguousarray(ends, dtype=np.int64)
            times = np.ascontiguousarray(times, dtype=np.float64)
        scan = _fastscan.scan
        index, cuts = self._share()
        can_start = self._filter is None and self._collect is None
        collect = -1 if self._collect is None else self._collect
        started = self._started_list()
        base = self.packets
        i = 0
        while i < count:
            j, tcp, skipped = scan(
                self,
                buf,
                starts,
                ends,
                times,
                i,
                count,
                lt,
                MemoTracker,
                base,
                SWEEP - 1,
                index,
                cuts,
                can_start,
                started,
                self._ignored,
                collect,
                self.max_open,
            )
            self.tcp_packets += tcp
            self.skipped += skipped
            if len(self._live) > self.max_open:  # the loop stopped after the connection
                self.packets = base + j  # that went over: finish some, as `_new` does
                self._evict()
            if j >= count:
                break
            self.packets = base + j + 1
            self._frame(lt, float(times[j]), buf, int(starts[j]), int(ends[j]))
            i = j + 1
        self.packets = base + count

    def _started_list(self) -> list[int] | None:
        """Where the compiled loop appends the packet number of each connection it starts
        (`parallel.ShareTable.started`); None: nowhere."""
        return None

    def _share(self) -> tuple[int, bytes]:
        """(index, hash cut points as uint32 bytes) of the connections this table tracks
        (`tcpclose.analyze.parallel`); (0, b""): all of them."""
        return 0, b""

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
        """Start tracking the connection whose first packet has this key (`canonical`: the
        smaller of the key and its reverse, `swap`: the key is the reverse).

        The entry is [tracker, originator's direction, number, canonical key]: a packet whose
        key is the canonical one is the originator's if entry[1] is True, a packet with the
        reverse key if it is False (`entry[1] != swap`)."""
        src = self._address(key[:alen])
        dst = self._address(key[alen : 2 * alen])
        if self._filter is not None and not self._filter.matches(src, sport, dst, dport):
            if len(self._ignored) > 100_000:
                self._ignored.clear()
            self._ignored.add(key)
            return None
        tracker: ConnectionTracker | MemoTracker
        if self.reference:
            tracker = ConnectionTracker.from_fields(t, src, sport, dst, dport, flags)
        else:
            tracker = self._memo.tracker(t, src, sport, dst, dport, flags)
        number = self._next_number
        self._next_number += 1
        first = tracker.first_is_originator
        if key[:alen] == key[alen : 2 * alen] and key[-4:-2] == key[-2:]:
            # Both directions have the same key (same address and port at both ends): all
            # packets but the first are taken as the other side's, as when every key and its
            # reverse had an entry of their own, the reverse's written last.
            entry = [tracker, not first, number, canonical]
            self._flows[canonical] = entry
            self._live[number] = entry
            if len(self._live) > self.max_open:
                self._evict()
            return [tracker, first, number, canonical]
        entry = [tracker, first != swap, number, canonical]
        self._flows[canonical] = entry
        self._live[number] = entry
        if len(self._live) > self.max_open:
            self._evict()
        return entry

    def _evict(self) -> None:
        """More than `max_open` connections open: finish the quietest tenth (by their last
        packet's time, then start order), in start order. The newest connection, which went
        over, stays whatever its time (a capture's clock may step back): its first packet is
        fed after this in Python's `_frame`, before it in the compiled loop."""
        live = self._live
        excess = len(live) - self.max_open + self.max_open // 10
        older = islice(live.values(), len(live) - 1)  # all but the newest (start order)
        victims = heapq.nsmallest(excess, older, key=lambda entry: entry[0].end)
        victims.sort(key=lambda entry: entry[2])
        self.evicted += len(victims)
        self.finish_entries(victims)

    def _address(self, raw: bytes) -> str:
        """The text form of an address; one string per address (shared by its connections)."""
        text = self._addresses.get(raw)
        if text is None:
            if len(self._addresses) >= 65536:
                self._addresses.clear()
            text = inet_ntop(AF_INET if len(raw) == 4 else AF_INET6, raw)
            self._addresses[raw] = text
        return text

    def _keep(
        self,
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

    def finish_entries(self, entries: list[list]) -> None:
        """`_finish` each entry, in order."""
        if _fastscan is not None and self.compiled and type(self)._finish is _FINISH:
            _fastscan.finish(self, entries, Row, ConnectionVerdict)  # the loop below in C
            return
        for entry in entries:
            self._finish(entry)

    def _finish(self, entry: list) -> None:
        """Hand one connection's verdict out and forget it."""
        tracker, _, number, key = entry
        current = self._flows.get(key)
        if current is not None and current[0] is tracker:
            del self._flows[key]
        del self._live[number]
        self._done(Row(number, tracker.verdict()))

    def sweep(self, now: float) -> None:
        """Finish the connections quiet at capture time `now` (see `_sweep`): a live stream's
        reader calls this as time passes, between the sweeps the packets make."""
        self._sweep(now)

    def _sweep(self, now: float) -> None:
        """Finish connections that ended `linger` seconds ago or were idle IDLE seconds, in
        start order. (IDLE >= linger: a connection idle less than linger stays, ended or not.)"""
        linger = self.linger
        if _fastscan is not None and self.compiled:  # the lines below in C
            self.finish_entries(_fastscan.quiet(self._live, now, linger, IDLE))
            return
        quiet = [entry for entry in self._live.values() if now - entry[0].end > linger]
        for entry in quiet:
            if now - entry[0].end > IDLE or entry[0].ended:
                self._finish(entry)

    def finish(self) -> None:
        """Finish every connection still in the table, in start order."""
        self.finish_entries(list(self._live.values()))
        self._ignored.clear()

    @property
    def connections(self) -> int:
        return self._next_number


#: what `_fastscan.finish` does for each entry (a table that finishes otherwise does it so)
_FINISH = ConnectionTable._finish
