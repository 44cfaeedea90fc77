"""RunFacts: everything a run's timeline says about how its connection ended, computed once.

Causality comes from stamps and packet order, never from a time window:

* a segment was sent by the sender's call that was in progress when it left (the call began
  at `started_ns` and returned at `t_ns`); otherwise by the sender's last call before it. For
  FIN and RST only the calls that can end a connection count (close, shutdown, abort, exit, a
  death by signal): a write before an unlogged close() is never the cause of its FIN;
* an RST answered the peer's last segment carrying data or FIN before it on the wire when that
  segment arrived after the sender's cause had already returned (data reaching a closed
  socket); an RST sent while its cause was in progress, or before the peer's segment arrived
  at a socket still open, answered nothing.
"""

from __future__ import annotations

import enum
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field

from tcpclose.classify import classify_packets
from tcpclose.model.event import (
    AppEvent,
    Call,
    Event,
    EventFormatError,
    Exit,
    Received,
    Sent,
    Signal,
    Syscall,
    typed,
)
from tcpclose.model.packet import Packet
from tcpclose.model.timeline import Note, Role, Segment, Timeline


class SegmentKind(enum.StrEnum):
    """The most telling thing a segment carries: rst > fin > syn > data > ack."""

    RST = "rst"
    FIN = "fin"
    SYN = "syn"
    DATA = "data"
    ACK = "ack"


def segment_kind(packet: Packet) -> SegmentKind:
    if packet.rst:
        return SegmentKind.RST
    if packet.fin:
        return SegmentKind.FIN
    if packet.syn:
        return SegmentKind.SYN
    if packet.length:
        return SegmentKind.DATA
    return SegmentKind.ACK


#: a cause: the call (or exit, or death by signal) that made a kernel send a segment
Cause = Call | Exit | Signal


@dataclass(frozen=True, slots=True)
class CallFact:
    """One call a program made, on the timeline's clock (`t` seconds from its start).

    Lesson reads and writes (`sent`, `received`, `eof` records) are calls too (syscall read or
    write, id `read` / `write`); `record` keeps the kind of record it came from.
    """

    t: float
    call: Call
    record: str

    @property
    def role(self) -> Role:
        return Role(self.call.role)

    @property
    def call_id(self) -> str:
        return self.call.call_id

    @property
    def syscall(self) -> Syscall:
        return self.call.syscall

    @property
    def label(self) -> str:
        return self.call.label

    @property
    def result(self) -> int | None:
        return self.call.result

    @property
    def errno(self) -> str | None:
        return self.call.errno

    @property
    def data(self) -> str | None:
        return self.call.data


@dataclass(frozen=True, slots=True)
class WireFact:
    """One captured segment: who sent it, what it was, its cause, what it answered."""

    index: int  #: position among the run's segments (the key `in_reply_to` refers to)
    t: float
    by: Role
    kind: SegmentKind
    packet: Packet
    cause: Cause | None  #: the sender's call that made its kernel send it
    cause_t: float | None  #: when that cause was logged, on the timeline's clock
    in_reply_to: int | None  #: index of the peer's segment this one answered

    @property
    def data(self) -> str | None:
        """The payload as text (None when empty or not printable)."""
        return self.packet.text(limit=10_000)

    @property
    def cause_id(self) -> str | None:
        """The cause's stable identifier: a call id, `exit`, or `killed:SIGPIPE`."""
        cause = self.cause
        if isinstance(cause, Call):
            return cause.call_id
        if isinstance(cause, Exit):
            return "exit"
        if isinstance(cause, Signal):
            return f"{'killed' if cause.fatal else 'signal'}:{cause.signal}"
        return None


@dataclass(frozen=True, slots=True)
class SignalFact:
    """A signal handler ran (`fatal` False) or a signal killed the process."""

    t: float
    role: Role
    signal: str
    fatal: bool


@dataclass(frozen=True, slots=True)
class Ending:
    """How one process ended: `exit_status`, or the `signal` that killed it."""

    exit_status: int | None
    signal: str | None = None
    ended_ns: int | None = None
    #: replaces `exit N` when no ending was seen (a side not traced, or still running)
    described: str | None = None

    @property
    def text(self) -> str:
        """`exit 0`, `exit 1` or `killed by SIGPIPE` (or `described`)."""
        if self.described:
            return self.described
        return f"killed by {self.signal}" if self.signal else f"exit {self.exit_status}"


@dataclass(frozen=True, slots=True)
class TerminationFact:
    """The shared classifier's verdict on the captured packets."""

    termination: str
    reason: str
    conn_state: str
    history: str


@dataclass(frozen=True)
class RunFacts:
    """The facts of one run. Build with `RunFacts.of(timeline, endings)`."""

    start: float  #: the timeline's t = 0, seconds since the epoch
    segments: tuple[WireFact, ...]
    calls: tuple[CallFact, ...]
    signals: tuple[SignalFact, ...]
    exits: tuple[tuple[float, Exit], ...]
    messages: tuple[str, ...]  #: what the client sent, one entry per write
    answers_expected: tuple[str, ...]
    answers_delivered: tuple[str, ...]
    answers_lost: tuple[str, ...]
    endings: Mapping[Role, Ending] = field(default_factory=dict)
    termination: TerminationFact | None = None
    #: records that were not valid events, as (role, kind, why): kept, never silently dropped
    invalid: tuple[tuple[str, str, str], ...] = ()

    # --- questions judges ask --------------------------------------------------------------

    @property
    def captured(self) -> bool:
        return bool(self.segments)

    def wire(self, kind: SegmentKind | None = None, by: Role | None = None) -> list[WireFact]:
        return [
            w
            for w in self.segments
            if (kind is None or w.kind is kind) and (by is None or w.by is by)
        ]

    def first(self, kind: SegmentKind, by: Role | None = None) -> WireFact | None:
        found = self.wire(kind, by)
        return found[0] if found else None

    def first_with(self, flag: str, by: Role | None = None) -> WireFact | None:
        """The first segment carrying FIN (`fin`) or RST (`rst`), whatever else it carries
        (sent by `by`, when given)."""
        return next(
            (w for w in self.segments if getattr(w.packet, flag) and (by is None or w.by is by)),
            None,
        )

    def first_end(self, by: Role) -> WireFact | None:
        """The first segment `by` sent carrying FIN or RST: how that side began to end."""
        return next(
            (w for w in self.segments if w.by is by and (w.packet.fin or w.packet.rst)), None
        )

    @property
    def first_fin(self) -> WireFact | None:
        return self.first_with("fin")

    @property
    def first_rst(self) -> WireFact | None:
        return self.first_with("rst")

    @property
    def fins(self) -> tuple[Role, ...]:
        return tuple(w.by for w in self.segments if w.packet.fin)

    @property
    def rsts(self) -> tuple[Role, ...]:
        return tuple(w.by for w in self.segments if w.packet.rst)

    def segment(self, index: int | None) -> WireFact | None:
        return self.segments[index] if index is not None else None

    def calls_of(
        self, role: Role | None = None, syscall: Syscall | None = None, call_id: str | None = None
    ) -> list[CallFact]:
        return [
            c
            for c in self.calls
            if (role is None or c.role is role)
            and (syscall is None or c.syscall is syscall)
            and (call_id is None or c.call_id == call_id)
        ]

    def call(self, role: Role, call_id: str) -> CallFact | None:
        found = self.calls_of(role, call_id=call_id)
        return found[0] if found else None

    def errors(self, role: Role) -> list[CallFact]:
        return [c for c in self.calls if c.role is role and c.errno]

    def signals_of(self, role: Role, signal: str | None = None) -> list[SignalFact]:
        return [
            s for s in self.signals if s.role is role and (signal is None or s.signal == signal)
        ]

    def ending(self, role: Role) -> Ending | None:
        return self.endings.get(role)

    def ended_at(self, role: Role) -> float | None:
        """When the process playing `role` was seen to end, on the timeline's clock."""
        ending = self.endings.get(role)
        if ending is None or ending.ended_ns is None:
            return None
        return ending.ended_ns / 1e9 - self.start

    # --- building ----------------------------------------------------------------------------

    @classmethod
    def of(cls, timeline: Timeline, endings: Mapping[Role, Ending] | None = None) -> RunFacts:
        """All facts of one timeline (pure)."""
        notes: list[tuple[Note, Event]] = []
        invalid: list[tuple[str, str, str]] = []
        for note in timeline.notes:
            try:
                notes.append((note, typed(note.event)))
            except EventFormatError as exc:
                invalid.append((note.event.role, note.event.event, str(exc)))
        calls = tuple(_call_facts(notes))
        signals = tuple(
            SignalFact(n.t, n.role, e.signal, e.fatal) for n, e in notes if isinstance(e, Signal)
        )
        exits = tuple((n.t, e) for n, e in notes if isinstance(e, Exit))
        segments = _wire_facts(timeline, notes)
        messages = tuple(e.data for n, e in notes if isinstance(e, Sent) and n.role is Role.CLIENT)
        expected = tuple(f"Hi, {m}" for m in messages)
        stream = "".join(
            e.data for n, e in notes if isinstance(e, Received) and n.role is Role.CLIENT
        )
        delivered = tuple(a for a in expected if a in stream)
        termination = None
        if segments:
            verdict = classify_packets(w.packet for w in segments)
            termination = TerminationFact(
                str(verdict.termination), verdict.reason, verdict.conn_state, verdict.history
            )
        return cls(
            start=timeline.start,
            segments=segments,
            calls=calls,
            signals=signals,
            exits=exits,
            messages=messages,
            answers_expected=expected,
            answers_delivered=delivered,
            answers_lost=tuple(a for a in expected if a not in delivered),
            endings=dict(endings or {}),
            termination=termination,
            invalid=tuple(invalid),
        )


def _call_facts(notes: list[tuple[Note, Event]]) -> list[CallFact]:
    out: list[CallFact] = []
    for note, e in notes:
        record = note.event.event
        if isinstance(e, Call):
            out.append(CallFact(note.t, e, record))
        elif isinstance(e, Sent):
            call = Call(e.t_ns, e.role, Syscall.WRITE, "write", "write()", e.nbytes, data=e.data)
            out.append(CallFact(note.t, call, record))
        elif isinstance(e, Received):
            call = Call(e.t_ns, e.role, Syscall.READ, "read", "read()", e.nbytes, data=e.data)
            out.append(CallFact(note.t, call, record))
    return out


def _can_end(e: Event) -> bool:
    """Whether this event can make its side's kernel send FIN or RST."""
    if isinstance(e, Call):
        return e.syscall.can_end
    return isinstance(e, Exit) or (isinstance(e, Signal) and e.fatal)


def _is_cause(e: Event) -> bool:
    return isinstance(e, Call | Exit) or (isinstance(e, Signal) and e.fatal)


class _Causes:
    """One side's candidate causes, indexed for `at(t)`: the call in progress at `t`, else the
    last one begun before it (bisection: timelines from trace or drain hold many calls)."""

    def __init__(self, pairs: list[tuple[Note, Event]]) -> None:
        begun = [(self._start(e), i) for i, (_, e) in enumerate(pairs)]
        begun.sort()
        self._pairs = pairs
        self._starts = [start for start, _ in begun]
        self._order = [i for _, i in begun]
        #: calls with a start stamp, by start: the only ones that can be "in progress"
        self._spans = sorted(
            (e.started_ns, e.t_ns, i)
            for i, (_, e) in enumerate(pairs)
            if isinstance(e, Call | Exit) and e.started_ns is not None
        )
        self._span_starts = [start for start, _, _ in self._spans]
        #: the latest end among the spans up to each one: where the backward search may stop
        self._reach: list[int] = []
        for _, end, _ in self._spans:
            self._reach.append(max(end, self._reach[-1]) if self._reach else end)

    @staticmethod
    def _start(e: Event) -> int:
        if isinstance(e, Call | Exit) and e.started_ns is not None:
            return e.started_ns
        return e.t_ns

    def at(self, sent_ns: float) -> tuple[Cause, float, bool] | tuple[None, None, bool]:
        """(cause, when it was logged, whether it was in progress) for a segment sent then."""
        j = bisect_right(self._span_starts, sent_ns) - 1
        while j >= 0 and self._reach[j] >= sent_ns:  # no earlier span reaches past sent_ns
            start, end, i = self._spans[j]
            if start <= sent_ns <= end:
                note, e = self._pairs[i]
                assert isinstance(e, Call | Exit)
                return e, note.t, True
            j -= 1
        k = bisect_right(self._starts, sent_ns)
        if k == 0:
            return None, None, False
        note, e = self._pairs[self._order[k - 1]]
        assert isinstance(e, Call | Exit | Signal)
        return e, note.t, False


def _wire_facts(timeline: Timeline, notes: list[tuple[Note, Event]]) -> tuple[WireFact, ...]:
    segments = [e for e in timeline.entries if isinstance(e, Segment)]
    by_role = {role: [(n, e) for n, e in notes if n.role is role and _is_cause(e)] for role in Role}
    causes = {role: _Causes(pairs) for role, pairs in by_role.items()}
    enders = {
        role: _Causes([(n, e) for n, e in pairs if _can_end(e)]) for role, pairs in by_role.items()
    }
    facts: list[WireFact] = []
    for i, seg in enumerate(segments):
        sent_ns = (timeline.start + seg.t) * 1e9
        ends = seg.packet.fin or seg.packet.rst
        cause, cause_t, in_progress = (enders if ends else causes)[seg.sender].at(sent_ns)
        reply = None
        if seg.packet.rst and not in_progress:
            reply = _answered(segments, i, cause)
        facts.append(
            WireFact(
                i, seg.t, seg.sender, segment_kind(seg.packet), seg.packet, cause, cause_t, reply
            )
        )
    return tuple(facts)


def _answered(segments: list[Segment], index: int, cause: Cause | None) -> int | None:
    """The peer segment an RST answered: the peer's last segment with data or FIN before it,
    if it arrived after the sender's cause had returned (so it found the socket closed)."""
    rst = segments[index]
    for j in range(index - 1, -1, -1):
        seg = segments[j]
        if seg.sender is rst.sender:
            continue
        if seg.packet.length or seg.packet.fin:
            done = None if cause is None else cause.t_ns / 1e9
            if done is None or seg.packet.t >= done:
                return j
            return None
    return None


__all__ = [
    "AppEvent",
    "CallFact",
    "Ending",
    "RunFacts",
    "SegmentKind",
    "SignalFact",
    "TerminationFact",
    "WireFact",
    "segment_kind",
]
