"""How did one TCP connection end? The one classifier of the lab, the probe and the analyser.

Theory of operation
===================

A `ConnectionTracker` is fed one connection's segments in capture order. It keeps a fixed set
of facts per direction (no packet list): SYN/SYN-ACK seen, the highest sequence number (so
retransmitted bytes count once), payload bytes, the time of its first FIN and whether the
peer ACKed it, its first RST, and how many bytes it sent after the PEER's first FIN. At the
first RST of the connection it also notes what the resetting side had seen until then: had it
sent a FIN itself, how many bytes arrived at it after its FIN, how many bytes of the
peer's last run of data it had left unanswered, whether it had acknowledged everything the
peer sent, and whether its last window advertisement was 0 (a full receive buffer). It also
runs Zeek's endpoint state machine and history (`tcpclose.classify.zeek`).

Payload bytes count the sequence space covered: a retransmission counts nothing again, and a
segment that arrives late (out of order) counts the bytes of the holes it fills.

Roles: the originator is the side that sent the first SYN. If the capture starts with the
SYN-ACK, the originator is its receiver. If no SYN is seen at all, the first packet's sender
is taken, unless Zeek's port heuristic says its source port is the server's (then the roles
are flipped); history then starts with `^`, as in Zeek.

`verdict()` walks `RULES` (below) in order; the first rule whose test holds names the
termination and writes the reason:

==================  ==========================================================================
termination         test (first match wins)
==================  ==========================================================================
rejected            the originator's SYN was answered by RST, never by SYN-ACK
no-answer           the originator sent SYN and the responder sent nothing at all
rst-after-close     the first RST came from a side that had sent FIN, and data from the peer
                    arrived after that FIN (the lesson's close case)
fin-then-rst        the first RST came from a side that had sent FIN, no data arrived after it
rst-unread          the first RST came from a side that never sent FIN and whose last window
                    advertisement before it was 0 (its receive buffer held the peer's data,
                    unread by its application): proven by the wire
abort               the first RST came from a side that never sent FIN (by whom: the reason;
                    when the peer's last data was unanswered, the reason names both causes the
                    wire cannot tell apart: SO_LINGER {1, 0}, or close() with unread data)
half-close          FIN both ways, and the side that did not close first sent data after the
                    first FIN (the lesson's shutdown case)
graceful            FIN both ways, no data after the first FIN
open                anything else: no FIN both ways and no RST when the capture ends
==================  ==========================================================================

When no SYN was seen the termination is `midstream`, and the reason tells what the rules
above found for the rest of the connection.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

from tcpclose.classify import zeek
from tcpclose.model.packet import Packet

_M32 = 0xFFFFFFFF
_HALF = 0x80000000
_HIST_DATA = zeek.HIST_DATA
_HIST_ACK = zeek.HIST_ACK
_INACTIVE = zeek.INACTIVE
_CLOSED = zeek.CLOSED
_RESET = zeek.RESET


class Termination(enum.StrEnum):
    """How a connection ended, in the lesson's terms."""

    #: FIN both ways, no data after the first FIN
    GRACEFUL = "graceful"
    #: data flowed after the first FIN, then FIN back: the lesson's shutdown case
    HALF_CLOSE = "half-close"
    #: RST without a FIN before it, by the side named in the reason
    ABORT = "abort"
    #: data arrived at a side that had closed, which answered with RST: the lesson's close case
    RST_AFTER_CLOSE = "rst-after-close"
    #: RST from a side whose receive window was closed: it held its peer's data unread
    RST_UNREAD = "rst-unread"
    #: RST after the same side's own FIN, with nothing arriving in between: benign
    FIN_THEN_RST = "fin-then-rst"
    #: the SYN was answered by RST: nothing listening
    REJECTED = "rejected"
    #: the SYN got no answer at all
    NO_ANSWER = "no-answer"
    #: no FIN both ways and no RST: still open when the capture ends
    OPEN = "open"
    #: no SYN seen: the capture began in the middle of the connection
    MIDSTREAM = "midstream"


class Side(enum.StrEnum):
    """One end of a connection: the originator sent the first SYN."""

    ORIGINATOR = "originator"
    RESPONDER = "responder"

    @property
    def other(self) -> Side:
        return Side.RESPONDER if self is Side.ORIGINATOR else Side.ORIGINATOR


@dataclass(frozen=True)
class ConnectionVerdict:
    """Everything the project says about one connection once its packets are seen."""

    originator: tuple[str, int]
    responder: tuple[str, int]
    start: float
    end: float
    packets: int
    bytes_originator: int
    bytes_responder: int
    first_fin: Side | None
    first_rst: Side | None
    data_after_fin: bool
    termination: Termination
    reason: str
    conn_state: str
    history: str
    #: packets each side sent (Zeek's orig_pkts and resp_pkts)
    packets_originator: int = 0
    packets_responder: int = 0

    @property
    def duration(self) -> float:
        return self.end - self.start

    def to_json(self) -> dict[str, Any]:
        """A plain dict (str, int, float, bool, None, lists) for `json.dumps`."""
        out = asdict(self)
        out["originator"] = list(self.originator)
        out["responder"] = list(self.responder)
        out["first_fin"] = None if self.first_fin is None else str(self.first_fin)
        out["first_rst"] = None if self.first_rst is None else str(self.first_rst)
        out["termination"] = str(self.termination)
        out["duration"] = self.duration
        return out


#: Ports Zeek's heuristic takes for a server's (a subset of its `likely_server_ports`, plus
#: every port below 1024 and the lesson's 43211). Used only when no SYN is seen.
LIKELY_SERVER_PORTS = frozenset(range(1, 1024)) | {
    1080,
    1433,
    1521,
    2049,
    3128,
    3306,
    3389,
    5432,
    5672,
    5900,
    6379,
    6443,
    8000,
    8008,
    8080,
    8443,
    8888,
    9000,
    9092,
    9200,
    11211,
    27017,
    43211,
}


def flipped_roles(flags: int, sport: int, dport: int) -> bool:
    """Is the first packet's sender the responder? True for a SYN-ACK; for a packet without SYN,
    Zeek's port heuristic (source port a likely server port, and not less likely than the
    destination's)."""
    if flags & 0x02:
        return bool(flags & 0x10)
    if sport in LIKELY_SERVER_PORTS:
        return sport < dport if dport in LIKELY_SERVER_PORTS else True
    return False


#: holes kept per direction (beyond that the oldest is forgotten: its bytes never count)
MAX_HOLES = 16


def _open_hole(h: _Half, start: int, end: int) -> None:
    """A segment began at `end`, past `start` (the highest sequence number so far): the range
    between is not seen yet."""
    holes = (*h.holes, (start, end))
    h.holes = holes[-MAX_HOLES:]


def _fill_holes(h: _Half, ref: int, start: int, end: int) -> int:
    """Bytes of [start, end) that fall in a hole (all holes lie below `ref`), removed from the
    holes: the part of a late segment that no earlier one covered."""
    # Work in distances below `ref` (mod 2**32): a range [a, b) is (ref - b, ref - a].
    d_start = (ref - start) & _M32
    d_end = (ref - end) & _M32 if ((end - ref) & _M32) >= _HALF else 0
    filled = 0
    kept: list[tuple[int, int]] = []
    for a, b in h.holes:
        da, db = (ref - a) & _M32, (ref - b) & _M32
        lo, hi = max(db, d_end), min(da, d_start)
        if hi <= lo:
            kept.append((a, b))
            continue
        filled += hi - lo
        if da > hi:  # the part of the hole below the segment
            kept.append((a, (ref - hi) & _M32))
        if lo > db:  # the part above it
            kept.append(((ref - lo) & _M32, b))
    h.holes = tuple(kept)
    return filled


class _Half:
    """What one direction did, as far as the verdict needs it. O(1) memory."""

    __slots__ = (
        "acked",
        "after_peer_fin",
        "bytes",
        "closed_window",
        "fin_acked",
        "fin_end",
        "fin_t",
        "high",
        "holes",
        "isn",
        "rst_t",
        "run",
        "sent",
        "syn",
        "synack",
        "z",
    )

    def __init__(self) -> None:
        self.sent = 0  # packets sent
        self.syn = 0  # pure SYNs sent
        self.synack = 0  # SYN-ACKs sent
        self.high: int | None = None  # sequence number one past the highest segment
        self.isn: int | None = None  # sequence number of the first SYN
        self.bytes = 0  # new payload bytes (retransmissions counted once)
        self.run = 0  # bytes of this side's current run of data (reset when the peer sends)
        self.after_peer_fin = 0  # bytes sent after the peer's first FIN
        self.fin_t: float | None = None
        self.fin_end = 0  # sequence number the peer's ACK must reach to ACK the FIN
        self.fin_acked = False
        self.rst_t: float | None = None
        self.z = zeek.ZeekEndpoint()
        #: sequence ranges [start, end) below `high` not seen yet (a later segment that fills
        #: one counts its bytes: payload counts by the sequence space covered), oldest first
        self.holes: tuple[tuple[int, int], ...] = ()
        #: this side's latest acknowledgement number (of the peer's sequence space), once the
        #: peer has sent something
        self.acked: int | None = None
        #: this side's latest advertised window was 0: its receive buffer was full of data its
        #: application had not read
        self.closed_window = False


class ConnectionTracker:
    """Follows one connection packet by packet; `verdict()` may be asked at any time."""

    __slots__ = (
        "_first_fin",
        "_first_rst",
        "_history",
        "_last_data_orig",
        "_o",
        "_r",
        "_rst_facts",
        "end",
        "first_is_originator",
        "midstream",
        "originator",
        "packets",
        "responder",
        "start",
    )

    def __init__(self, first: Packet) -> None:
        self._begin(first.t, first.src, first.sport, first.dst, first.dport, first.flags)
        self.feed_fields(
            first.t,
            self.first_is_originator,
            first.flags,
            first.seq,
            first.ack,
            first.win,
            first.length,
        )

    @classmethod
    def from_fields(
        cls, t: float, src: str, sport: int, dst: str, dport: int, flags: int
    ) -> ConnectionTracker:
        """A tracker for a connection whose first packet has these fields; feed that packet next
        with `feed_fields` (the analyser's fast path: no `Packet` objects)."""
        tracker = cls.__new__(cls)
        tracker._begin(t, src, sport, dst, dport, flags)
        return tracker

    def _begin(self, t: float, src: str, sport: int, dst: str, dport: int, flags: int) -> None:
        flip = flipped_roles(flags, sport, dport)
        self.first_is_originator = not flip
        a, b = (src, sport), (dst, dport)
        self.originator, self.responder = (b, a) if flip else (a, b)
        self.midstream = not flags & 0x02
        self.start = t
        self.end = t
        self.packets = 0
        self._o = _Half()
        self._r = _Half()
        self._first_fin: Side | None = None
        self._first_rst: Side | None = None
        self._history = "^" if flip else ""  # a str: smaller than a list of letters
        self._last_data_orig: bool | None = None
        self._rst_facts: tuple[bool, int, int, bool, bool] | None = None

    def feed(self, p: Packet) -> None:
        """Add one packet of this connection (either direction)."""
        if (p.src, p.sport) == self.originator and (p.dst, p.dport) == self.responder:
            is_orig = True
        elif (p.src, p.sport) == self.responder and (p.dst, p.dport) == self.originator:
            is_orig = False
        else:
            raise ValueError(
                f"packet {p.src}:{p.sport} -> {p.dst}:{p.dport} is not part of the connection "
                f"{self.originator[0]}:{self.originator[1]} <-> "
                f"{self.responder[0]}:{self.responder[1]}"
            )
        self.feed_fields(p.t, is_orig, p.flags, p.seq, p.ack, p.win, p.length)

    def feed_fields(
        self, t: float, is_orig: bool, flags: int, seq: int, ack: int, win: int, length: int
    ) -> None:
        """Add one packet given as header fields; `is_orig`: sent by the originator.

        Segments with SYN, FIN or RST go through `feed_reference`, the rules as written. The
        others (most of a capture: data and ACKs) take the same rules specialised for
        "no SYN, FIN or RST": the same effects, without the calls and the tests that cannot
        hold. Tests feed every capture both ways and compare the verdicts."""
        if flags & 7:
            self.feed_reference(t, is_orig, flags, seq, ack, win, length)
            return
        if is_orig:
            h = self._o
            p = self._r
        else:
            h = self._r
            p = self._o
        self.packets += 1
        self.end = t
        h.sent += 1
        zh = h.z
        state = zh.state
        # zeek.update_history without SYN/FIN/RST: D for data, else A for an ACK, once each.
        if length:
            if not zh.seen & _HIST_DATA:
                zh.seen |= _HIST_DATA
                self._history += "D" if is_orig else "d"
        elif flags & 0x10 and not zh.seen & _HIST_ACK:
            zh.seen |= _HIST_ACK
            self._history += "A" if is_orig else "a"
        if win == 0 and p.z.state != _CLOSED and state != _RESET:
            self._history += zeek.zero_window(zh, is_orig)
        h.closed_window = win == 0
        high = h.high
        if high is None:
            h.high = high = seq
        seg_end = (seq + length) & _M32
        delta = (seg_end - high) & _M32
        new = 0
        if state == _RESET:
            pass  # Zeek trusts no sequence number after the side's RST
        elif delta and delta < _HALF:
            h.high = seg_end
            if length:
                if delta > length:
                    _open_hole(h, high, seq)
                    new = length
                else:
                    new = delta
                    if h.holes and delta < length:
                        new += _fill_holes(h, high, seq, high)
        elif length:
            self._history += zeek.retransmitted(zh, is_orig)
            if h.holes:
                new = _fill_holes(h, high, seq, seg_end)
        if state == _INACTIVE:  # update_state changes nothing else without SYN/FIN/RST
            zeek.update_state(zh, p.z, self._o.z, is_orig, flags, length)
        if new > 0:
            h.bytes += new
            if p.fin_t is not None:
                h.after_peer_fin += new
            if self._last_data_orig is is_orig:
                h.run += new
            else:
                h.run = new
                self._last_data_orig = is_orig
        if flags & 0x10 and p.high is not None:
            h.acked = ack
            if p.fin_t is not None and not p.fin_acked and ((ack - p.fin_end) & _M32) < _HALF:
                p.fin_acked = True

    def feed_reference(
        self, t: float, is_orig: bool, flags: int, seq: int, ack: int, win: int, length: int
    ) -> None:
        """`feed_fields` as the rules are written, for any segment: the reference semantics."""
        h, p = (self._o, self._r) if is_orig else (self._r, self._o)
        self.packets += 1
        self.end = t
        h.sent += 1
        syn = flags & 0x02
        fin = flags & 0x01
        rst = flags & 0x04

        # Zeek: history letters, zero window, then the sequence-number bookkeeping.
        zh, zp = h.z, p.z
        self._history += zeek.update_history(zh, is_orig, flags, seq, length)
        if win == 0 and not rst and zp.state != zeek.CLOSED and zh.state != zeek.RESET:
            self._history += zeek.zero_window(zh, is_orig)
        if not rst:
            h.closed_window = win == 0
        seg_end = (seq + (0 if rst else length) + (1 if syn else 0) + (1 if fin else 0)) & _M32
        if h.high is None or (syn and h.syn + h.synack == 0):
            h.high = seq if not syn else (seq + 1) & _M32
            delta = (seg_end - h.high) & _M32
        else:
            delta = (seg_end - h.high) & _M32
        new = 0
        # The payload's sequence range (a SYN's payload starts after the SYN's number).
        data_start = (seq + 1) & _M32 if syn else seq
        data_end = (data_start + length) & _M32
        high = h.high
        if zh.state == zeek.RESET:
            pass  # Zeek trusts no sequence number after the side's RST
        elif delta and delta < _HALF:
            h.high = seg_end
            if length and not rst:
                new = min(length, delta - (1 if fin else 0))
                gap = (data_start - high) & _M32
                if gap and gap < _HALF:
                    _open_hole(h, high, data_start)
                elif h.holes and gap:  # the segment starts below `high`: may fill holes
                    new += _fill_holes(h, high, data_start, high)
        elif length:
            self._history += zeek.retransmitted(zh, is_orig)
            if h.holes and not rst:
                new = _fill_holes(h, high, data_start, data_end)
        zeek.update_state(zh, zp, self._o.z, is_orig, flags, length)

        # The lesson's facts.
        if syn:
            if flags & 0x10:
                h.synack += 1
            else:
                if not h.syn:
                    h.isn = seq
                h.syn += 1
        if new > 0:
            h.bytes += new
            if p.fin_t is not None:
                h.after_peer_fin += new
            if self._last_data_orig is is_orig:
                h.run += new
            else:
                h.run = new
                self._last_data_orig = is_orig
        if flags & 0x10 and p.high is not None:
            h.acked = ack
            if p.fin_t is not None and not p.fin_acked and ((ack - p.fin_end) & _M32) < _HALF:
                p.fin_acked = True
        if fin and h.fin_t is None:
            h.fin_t = t
            h.fin_end = seg_end
            if self._first_fin is None:
                self._first_fin = Side.ORIGINATOR if is_orig else Side.RESPONDER
        if rst and h.rst_t is None:
            h.rst_t = t
            if self._first_rst is None:
                self._first_rst = Side.ORIGINATOR if is_orig else Side.RESPONDER
                unanswered = p.run if self._last_data_orig is (not is_orig) else 0
                # Had this side acknowledged everything the peer sent (its data, its FIN)?
                received_all = p.high is None or (
                    h.acked is not None and ((h.acked - p.high) & _M32) < _HALF
                )
                self._rst_facts = (
                    h.fin_t is not None,
                    p.after_peer_fin,
                    unanswered,
                    received_all,
                    h.closed_window and p.bytes > 0,
                )

    @property
    def ended(self) -> bool:
        """FIN both ways or an RST seen: a new SYN on the same 4-tuple is a new connection."""
        return (self._o.fin_t is not None and self._r.fin_t is not None) or (
            self._first_rst is not None
        )

    def starts_new_connection(self, from_orig: bool, flags: int, seq: int) -> bool:
        """Does this packet open a new connection on the same 4-tuple (as tshark's tcp.stream
        and Zeek decide)? A SYN without ACK after FIN both ways or RST, or a SYN whose sequence
        number differs from the one the originator's SYN had once the handshake is done."""
        if flags & 0x12 != 0x02:
            return False
        if self.ended:
            return True
        o = self._o
        return from_orig and o.isn is not None and seq != o.isn and self._r.synack > 0

    def verdict(self) -> ConnectionVerdict:
        """The verdict on what was seen so far."""
        o, r = self._o, self._r
        first_fin = self._first_fin
        after_first_fin = (
            0 if first_fin is None else (r if first_fin is Side.ORIGINATOR else o).after_peer_fin
        )
        # `_decide` is a pure function of the facts; the ones it only tests for zero are
        # keyed as booleans, so that connections that went the same way share one entry.
        key = (
            self.midstream,
            o.syn,
            r.synack > 0,
            r.sent == 0,
            r.rst_t is not None,
            o.fin_t is not None,
            r.fin_t is not None,
            o.fin_acked and r.fin_acked,
            first_fin,
            self._first_rst,
            self._rst_facts,
            after_first_fin,
        )
        decided = _DECIDED.get(key)
        if decided is None:
            if len(_DECIDED) >= _DECIDED_MAX:
                _DECIDED.clear()
            decided = _DECIDED[key] = _decide(_Facts(self))
        termination, reason = decided
        history = self._history
        state = zeek.conn_state(
            self._o.z.state, self._r.z.state, self._o.bytes, self._r.bytes, history
        )
        return ConnectionVerdict(
            originator=self.originator,
            responder=self.responder,
            start=self.start,
            end=self.end,
            packets=self.packets,
            bytes_originator=self._o.bytes,
            bytes_responder=self._r.bytes,
            first_fin=self._first_fin,
            first_rst=self._first_rst,
            data_after_fin=after_first_fin > 0,
            termination=termination,
            reason=reason,
            conn_state=state,
            history=history,
            packets_originator=o.sent,
            packets_responder=r.sent,
        )


class _Facts:
    """The tracker's state, read once, in the terms the rules use."""

    def __init__(self, tr: ConnectionTracker) -> None:
        o, r = tr._o, tr._r
        self.midstream = tr.midstream
        self.orig_syn = o.syn
        self.resp_synack = r.synack
        self.resp_sent = r.sent
        self.resp_rst = r.rst_t is not None
        self.orig_fin = o.fin_t is not None
        self.resp_fin = r.fin_t is not None
        self.fins_acked = o.fin_acked and r.fin_acked
        self.first_fin = tr._first_fin
        self.first_rst = tr._first_rst
        rst_facts = tr._rst_facts or (False, 0, 0, True, False)
        (
            self.rst_after_own_fin,
            self.arrived_after_fin,
            self.unanswered,
            self.received_all,
            self.window_full,
        ) = rst_facts
        if self.first_fin is None:
            self.after_first_fin = 0
        else:
            later = r if self.first_fin is Side.ORIGINATOR else o
            self.after_first_fin = later.after_peer_fin


def _side(side: Side | None) -> str:
    return f"the {side}" if side else "nobody"


def _plural(n: int, word: str = "byte") -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _is_rejected(f: _Facts) -> bool:
    return bool(f.orig_syn) and f.resp_rst and not f.resp_synack and f.first_rst is Side.RESPONDER


def _is_no_answer(f: _Facts) -> bool:
    return bool(f.orig_syn) and f.resp_sent == 0


def _rst_after_own_fin(f: _Facts) -> bool:
    return f.first_rst is not None and f.rst_after_own_fin


_Rule = tuple[Termination, Callable[[_Facts], bool], Callable[[_Facts], str]]

#: The decision order (see the module docstring): first matching test wins.
RULES: tuple[_Rule, ...] = (
    (
        Termination.REJECTED,
        _is_rejected,
        lambda f: (
            "the responder answered the SYN with RST: nothing was listening (connection refused)"
        ),
    ),
    (
        Termination.NO_ANSWER,
        _is_no_answer,
        lambda f: (
            f"the originator's SYN (sent {_plural(f.orig_syn, 'time')}) got no answer"
            + (", then the originator reset" if f.first_rst else "")
        ),
    ),
    (
        Termination.RST_AFTER_CLOSE,
        lambda f: _rst_after_own_fin(f) and f.arrived_after_fin > 0,
        lambda f: (
            f"{_side(f.first_rst)} closed (FIN), then {_plural(f.arrived_after_fin)} "
            f"from {_side(f.first_rst and f.first_rst.other)} arrived: data arrived at "
            f"{_side(f.first_rst)} after it closed; its kernel answered with RST: "
            "the lesson's close case"
        ),
    ),
    (
        Termination.FIN_THEN_RST,
        _rst_after_own_fin,
        lambda f: (
            f"{_side(f.first_rst)} closed (FIN), then reset (RST) with no data arriving "
            "after its FIN: benign, as HAProxy and others do"
        ),
    ),
    (
        Termination.RST_UNREAD,
        lambda f: f.first_rst is not None and f.window_full,
        lambda f: (
            f"{_side(f.first_rst)} reset (RST) without FIN while its receive window was "
            f"closed (its last advertisement before the RST was a zero window: its buffer "
            f"was full of {_side(f.first_rst and f.first_rst.other)}'s data that its "
            "application had not read): closed with unread data, as Linux does when "
            "close() finds unread data"
        ),
    ),
    (
        Termination.ABORT,
        lambda f: f.first_rst is not None,
        lambda f: _abort_reason(f),
    ),
    (
        Termination.HALF_CLOSE,
        lambda f: f.orig_fin and f.resp_fin and f.after_first_fin > 0,
        lambda f: (
            f"{_side(f.first_fin)} half-closed (FIN); "
            f"{_side(f.first_fin and f.first_fin.other)} sent {_plural(f.after_first_fin)} "
            "after it, then its own FIN: all answers delivered"
            + ("" if f.fins_acked else " (the last ACK is not in the capture)")
        ),
    ),
    (
        Termination.GRACEFUL,
        lambda f: f.orig_fin and f.resp_fin,
        lambda f: (
            f"FIN both ways, {_side(f.first_fin)} first, no data after the first FIN"
            + (", all ACKed" if f.fins_acked else " (the last ACK is not in the capture)")
        ),
    ),
    (Termination.OPEN, lambda f: True, lambda f: _open_reason(f)),
)


def _abort_reason(f: _Facts) -> str:
    who = _side(f.first_rst)
    peer = _side(f.first_rst and f.first_rst.other)
    if not f.unanswered:
        return f"{who} aborted the connection (RST without FIN)"
    if f.received_all:
        return (
            f"{who} reset (RST) without FIN after receiving all {_plural(f.unanswered)} of "
            f"{peer}'s last data (it had ACKed them): an abort, either SO_LINGER {{1, 0}} "
            "then close(), or close() with that data unread (Linux then resets instead of "
            "sending FIN); the wire looks the same for both"
        )
    return (
        f"{who} reset (RST) without FIN before acknowledging all of {peer}'s data "
        f"({_plural(f.unanswered)} unanswered): an abort (SO_LINGER {{1, 0}}, a crash, or "
        "close() with unread data); the rest was lost in flight"
    )


def _open_reason(f: _Facts) -> str:
    if f.first_fin is None:
        return "no FIN and no RST: still open when the capture ends"
    return (
        f"{_side(f.first_fin)} half-closed (FIN); {_side(f.first_fin.other)} sent "
        f"{_plural(f.after_first_fin)} after it and has not closed: still open when the "
        "capture ends"
    )


def _decide(f: _Facts) -> tuple[Termination, str]:
    """Apply RULES in order; a connection without SYN is `midstream` with the rule's reason."""
    for termination, test, reason in RULES:
        if test(f):
            if f.midstream:
                return Termination.MIDSTREAM, (
                    f"no SYN seen (the capture began mid-connection; roles guessed); "
                    f"then as {termination}: {reason(f)}"
                )
            return termination, reason(f)
    raise AssertionError("the last rule always matches")  # pragma: no cover


#: _decide's answers by facts (see `ConnectionTracker.verdict`), bounded
_DECIDED: dict[tuple, tuple[Termination, str]] = {}
_DECIDED_MAX = 4096


def classify_packets(packets: Iterable[Packet]) -> ConnectionVerdict:
    """The verdict on one connection given all its packets (both directions, capture order)."""
    tracker: ConnectionTracker | None = None
    for packet in packets:
        if tracker is None:
            tracker = ConnectionTracker(packet)
        else:
            tracker.feed(packet)
    if tracker is None:
        raise ValueError("no packets: nothing to classify")
    return tracker.verdict()
