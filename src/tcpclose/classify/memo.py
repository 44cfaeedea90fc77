"""Connections that go the same way share their tracker states: a memo of `ConnectionTracker`.

A capture of many short connections holds few different ones: the same handshake, the same
request and answer sizes, the same close. `MemoTracker` follows one connection like a
`ConnectionTracker` (same methods, same verdict) but keeps only a pointer into a graph of
tracker states shared by all connections (`TrackerMemo`), plus its own endpoints, times and
the first sequence number of each side.

Why it gives the same verdicts: a tracker's state after a packet depends on its state before,
on the packet's direction, flags (SYN, FIN, RST, ACK), payload length and whether the window
is 0, and on its sequence and acknowledgement numbers only through differences modulo 2**32
between numbers of the same side's sequence space (the highest sequence number, the ISN, the
FIN's end, Zeek's last SYN/FIN/RST numbers). Times are only stored (`end`) or tested for
None (`fin_t`, `rst_t`). So the graph's states are trackers fed with each side's sequence
numbers relative to that side's first one (acknowledgements relative to the peer's), time
0.0 and window 0 or 1; each transition is computed once, by the tracker itself
(`feed_fields`), and looked up afterwards. The verdict of a state is computed once, then
given each connection's own endpoints and times.

The memo is a cache, never a second classifier: a connection that keeps meeting states
nobody met before (`MAX_MISSES`), or any connection while the graph is full (`MAX_NODES`,
then it starts again empty) or while most lookups miss, gets a real tracker, rebuilt from
its state with its real sequence numbers, and goes on with it.
"""

from __future__ import annotations

import dataclasses

from tcpclose.classify.connection import (
    ConnectionTracker,
    ConnectionVerdict,
    _Half,
    flipped_roles,
)
from tcpclose.classify.zeek import ZeekEndpoint

_M32 = 0xFFFFFFFF
#: misses one connection may have before it gets a real tracker
MAX_MISSES = 3
#: states in the graph before it is started again empty
MAX_NODES = 20_000


class _Node:
    """One shared state: a tracker in relative numbers, where each packet leads, its verdict."""

    __slots__ = ("ended", "next", "tracker", "verdict")

    def __init__(self, tracker: ConnectionTracker) -> None:
        self.tracker = tracker
        self.next: dict[tuple, _Node] = {}
        self.ended = tracker.ended
        #: the verdict's fields after `end`, once asked for
        self.verdict: dict[str, object] | None = None


class TrackerMemo:
    """The graph of shared states, with its roots (one per first-packet kind) and counters."""

    def __init__(self, max_nodes: int = MAX_NODES, max_misses: int = MAX_MISSES) -> None:
        self.max_nodes = max_nodes
        self.max_misses = max_misses
        self._roots: dict[tuple[bool, bool], _Node] = {}
        self.nodes = 0
        self.hits = 0
        self.misses = 0

    @property
    def worth_it(self) -> bool:
        """False while more than 1 lookup in 8 misses (after the first few thousand; the hits
        of a connection are counted when its verdict is asked)."""
        return self.hits < 4096 or self.misses * 8 <= self.hits + self.misses

    def tracker(
        self, t: float, src: str, sport: int, dst: str, dport: int, flags: int
    ) -> MemoTracker | ConnectionTracker:
        """What `ConnectionTracker.from_fields` gives, shared when the memo is worth it."""
        if not self.worth_it:
            return ConnectionTracker.from_fields(t, src, sport, dst, dport, flags)
        flip = flipped_roles(flags, sport, dport)
        kind = (flip, not flags & 0x02)
        root = self._roots.get(kind)
        if root is None:
            self._grow()
            root = self._roots[kind] = _Node(
                ConnectionTracker.from_fields(0.0, "", sport, "", dport, flags)
            )
        return MemoTracker(self, root, t, src, sport, dst, dport, flip)

    def _grow(self) -> None:
        if self.nodes >= self.max_nodes:
            self._roots.clear()  # connections under way keep their own states alive
            self.nodes = 0
        self.nodes += 1


class MemoTracker:
    """One connection, as a `ConnectionTracker` (the methods the capture table uses)."""

    __slots__ = (
        "_memo",
        "_misses",
        "_node",
        "_real",
        "base_o",
        "base_r",
        "end",
        "first_is_originator",
        "originator",
        "responder",
        "start",
    )

    def __init__(
        self,
        memo: TrackerMemo,
        root: _Node,
        t: float,
        src: str,
        sport: int,
        dst: str,
        dport: int,
        flip: bool,
    ) -> None:
        self._memo = memo
        self._node = root
        self._real: ConnectionTracker | None = None
        self._misses = 0
        self.base_o: int | None = None
        self.base_r: int | None = None
        self.first_is_originator = not flip
        a, b = (src, sport), (dst, dport)
        self.originator, self.responder = (b, a) if flip else (a, b)
        self.start = t
        self.end = t

    def feed_fields(
        self, t: float, is_orig: bool, flags: int, seq: int, ack: int, win: int, length: int
    ) -> None:
        """`ConnectionTracker.feed_fields`, through the shared states."""
        self.end = t
        real = self._real
        if real is not None:
            real.feed_fields(t, is_orig, flags, seq, ack, win, length)
            return
        if is_orig:
            base = self.base_o
            if base is None:
                base = self.base_o = seq
            peer = self.base_r
        else:
            base = self.base_r
            if base is None:
                base = self.base_r = seq
            peer = self.base_o
        # The acknowledgement number counts only with ACK, once the peer has sent something.
        rel_ack = (ack - peer) & _M32 if peer is not None and flags & 0x10 else 0
        key = (is_orig, flags & 0x17, (seq - base) & _M32, rel_ack, win == 0, length)
        node = self._node
        nxt = node.next.get(key)
        if nxt is None:
            memo = self._memo
            memo.misses += 1
            if self._misses >= memo.max_misses or not memo.worth_it:
                self._make_real().feed_fields(t, is_orig, flags, seq, ack, win, length)
                return
            self._misses += 1
            tracker = _clone(node.tracker)
            tracker.feed_fields(0.0, is_orig, flags, key[2], rel_ack, 0 if win == 0 else 1, length)
            memo._grow()
            nxt = node.next[key] = _Node(tracker)
        self._node = nxt

    def _make_real(self) -> ConnectionTracker:
        """A real tracker with this connection's state, numbers and times."""
        real = _clone(self._node.tracker)
        for half, base, peer_base in (
            (real._o, self.base_o, self.base_r),
            (real._r, self.base_r, self.base_o),
        ):
            if half.acked is not None and peer_base is not None:
                half.acked = (half.acked + peer_base) & _M32
            if base is None:
                continue
            half.holes = tuple(((a + base) & _M32, (b + base) & _M32) for a, b in half.holes)
            if half.high is not None:
                half.high = (half.high + base) & _M32
            if half.isn is not None:
                half.isn = (half.isn + base) & _M32
            half.fin_end = (half.fin_end + base) & _M32
            z = half.z
            if z.last_syn != -1:
                z.last_syn = (z.last_syn + base) & _M32
            if z.last_fin != -1:
                z.last_fin = (z.last_fin + base) & _M32
            if z.last_rst != -1:
                z.last_rst = (z.last_rst + base) & _M32
        real.originator = self.originator
        real.responder = self.responder
        real.start = self.start
        real.end = self.end
        self._real = real
        return real

    @property
    def ended(self) -> bool:
        if self._real is not None:
            return self._real.ended
        return self._node.ended

    def starts_new_connection(self, from_orig: bool, flags: int, seq: int) -> bool:
        """`ConnectionTracker.starts_new_connection`, with the originator's ISN relative."""
        if self._real is not None:
            return self._real.starts_new_connection(from_orig, flags, seq)
        if flags & 0x12 != 0x02:
            return False
        node = self._node
        if node.ended:
            return True
        tracker = node.tracker
        isn = tracker._o.isn
        return (
            from_orig
            and isn is not None
            and (seq - self.base_o) & _M32 != isn  # type: ignore[operator]
            and tracker._r.synack > 0
        )

    def verdict(self) -> ConnectionVerdict:
        """The shared state's verdict with this connection's endpoints and times."""
        if self._real is not None:
            return self._real.verdict()
        node = self._node
        self._memo.hits += node.tracker.packets - self._misses  # (counted here, not per packet)
        rest = node.verdict
        if rest is None:
            v = node.tracker.verdict()
            rest = node.verdict = {name: getattr(v, name) for name in _SHARED}
        # ConnectionVerdict(self.originator, self.responder, self.start, self.end, **rest),
        # filled directly: a frozen dataclass's __init__ sets each field through
        # object.__setattr__, four times slower (tests compare with the tracker's verdicts).
        verdict = _new_object(ConnectionVerdict)
        fields = verdict.__dict__
        fields["originator"] = self.originator
        fields["responder"] = self.responder
        fields["start"] = self.start
        fields["end"] = self.end
        fields.update(rest)
        return verdict


_new_object = object.__new__
#: the verdict's fields that connections in the same state share (all after `end`)
_SHARED = tuple(f.name for f in dataclasses.fields(ConnectionVerdict))[4:]


def _clone(tracker: ConnectionTracker) -> ConnectionTracker:
    """A copy of a tracker that shares nothing mutable with it."""
    copy = ConnectionTracker.__new__(ConnectionTracker)
    for name in ConnectionTracker.__slots__:
        setattr(copy, name, getattr(tracker, name))
    copy._o = _clone_half(tracker._o)
    copy._r = _clone_half(tracker._r)
    return copy


def _clone_half(half: _Half) -> _Half:
    copy = _Half.__new__(_Half)
    for name in _Half.__slots__:
        setattr(copy, name, getattr(half, name))
    z = ZeekEndpoint.__new__(ZeekEndpoint)
    for name in ZeekEndpoint.__slots__:
        setattr(z, name, getattr(half.z, name))
    copy.z = z
    return copy
