"""Verdicts: pure functions from a timeline and the programs' outcomes to what happened.

Facts first (who sent the first FIN and the first RST and in reply to what, which answers came
back, which calls failed with which errno, how each program ended), then one plain sentence
built from those facts. Nothing here knows which answer to expect from the kernel: change the
packets and the sentence changes with them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from tcpclose.classify import classify_packets
from tcpclose.model.timeline import Note, Role, Segment, Timeline
from tcpclose.render.labels import event_label, segment_label

if TYPE_CHECKING:
    from tcpclose.lab.processes import ProcessOutcome
    from tcpclose.lab.scenarios import Scenario

#: an RST this soon after a peer's segment is taken to answer it (loopback answers in µs)
REPLY_WINDOW = 0.05


@dataclass(frozen=True)
class Mark:
    """The first FIN or RST: who sent it, when, and what it followed."""

    by: str  #: "client" or "server"
    ms: float
    after: str  #: the sender's own last call before it, e.g. "close()"
    in_reply_to: str | None  #: the peer's segment it answered, e.g. "Hi, data1"


@dataclass(frozen=True)
class Call:
    """One call an actor or program made and what it returned."""

    role: str
    call: str
    result: Any  #: int / byte count, or None when it failed
    errno: str | None
    data: str | None = None


@dataclass(frozen=True)
class LabVerdict:
    messages: tuple[str, ...] = ()
    answers_expected: tuple[str, ...] = ()
    answers_delivered: tuple[str, ...] = ()
    answers_lost: tuple[str, ...] = ()
    first_fin: Mark | None = None
    first_rst: Mark | None = None
    fins: tuple[str, ...] = ()  #: every side that sent a FIN, in order
    rsts: tuple[str, ...] = ()  #: every side that sent an RST, in order
    client_end: str = ""
    server_end: str = ""
    errors: dict[str, tuple[str, ...]] = field(default_factory=dict)
    calls: tuple[Call, ...] = ()
    signals: tuple[str, ...] = ()  #: handlers that ran and deaths by signal, "server SIGPIPE"
    captured: bool = True
    #: the shared classifier's verdict on the captured packets (None without a capture)
    termination: str | None = None
    termination_reason: str | None = None
    conn_state: str | None = None
    history: str | None = None
    conclusion: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


#: events that can make a kernel send FIN or RST
_CAUSES = frozenset({"close", "shutdown", "abort", "exit", "call", "killed", "error"})


def cause_of(timeline: Timeline, index: int) -> str:
    """The sender's call that made its kernel send this segment.

    Calls that send (the actors' calls, the lesson client's close/shutdown/abort) carry when
    they began (`started_ns`): a call in progress when the segment went out sent it. Otherwise
    it is the sender's last call before it (an exit, a killed process, an earlier call).
    """
    seg = timeline.entries[index]
    assert isinstance(seg, Segment)
    sent_ns = (timeline.start + seg.t) * 1e9
    mine = [
        e
        for e in timeline.entries
        if isinstance(e, Note) and e.role is seg.sender and e.event.event in _CAUSES
    ]
    for note in mine:
        started = note.event.get("started_ns")
        if started is not None and started <= sent_ns <= note.event.t_ns:
            return event_label(note.event)
    before = [n for n in mine if n.event.get("started_ns", n.event.t_ns) <= sent_ns]
    return event_label(before[-1].event) if before else "nothing"


def reply_to(timeline: Timeline, index: int) -> str | None:
    """The peer's segment (data or FIN) that this one answered, if it came within the window."""
    seg = timeline.entries[index]
    for entry in reversed(timeline.entries[:index]):
        if seg.t - entry.t > REPLY_WINDOW:
            break
        if (
            isinstance(entry, Segment)
            and entry.sender is not seg.sender
            and (entry.packet.length or entry.packet.fin)
        ):
            return segment_label(entry.packet, limit=40)
    return None


def _mark(timeline: Timeline, index: int) -> Mark:
    seg = timeline.entries[index]
    assert isinstance(seg, Segment)
    return Mark(
        seg.sender.value,
        round(seg.t * 1000, 1),
        cause_of(timeline, index),
        reply_to(timeline, index),
    )


def _first(timeline: Timeline, flag: str) -> Mark | None:
    for i, entry in enumerate(timeline.entries):
        if isinstance(entry, Segment) and getattr(entry.packet, flag):
            return _mark(timeline, i)
    return None


def _calls(timeline: Timeline) -> tuple[Call, ...]:
    calls = []
    for note in timeline.notes:
        e = note.event
        if e.event == "call":
            calls.append(
                Call(e.role, str(e.get("call")), e.get("result"), e.get("errno"), e.get("data"))
            )
        elif e.event == "error":
            calls.append(Call(e.role, f"{e.get('call')}()", None, e.get("errno")))
    return tuple(calls)


def _answers(timeline: Timeline) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """Messages the client sent, the answers they call for, and those that reached it."""
    messages = tuple(str(e.get("data")) for e in timeline.events_of(Role.CLIENT, "sent"))
    expected = tuple(f"Hi, {m}" for m in messages)
    stream = "".join(str(e.get("data")) for e in timeline.events_of(Role.CLIENT, "received"))
    delivered = tuple(a for a in expected if a in stream)
    return messages, expected, delivered


def judge(
    scenario: Scenario, timeline: Timeline, client: ProcessOutcome, server: ProcessOutcome
) -> LabVerdict:
    """All the facts of one run, and the sentence that sums them up."""
    messages, expected, delivered = _answers(timeline)
    errors: dict[str, list[str]] = {"client": [], "server": []}
    for call in _calls(timeline):
        if call.errno:
            errors[call.role].append(f"{call.call}: {call.errno}")
    signals = tuple(
        f"{n.role.value} {n.event.get('signal')}"
        for n in timeline.notes
        if n.event.event in ("signal", "killed")
    )
    segments = timeline.segments
    connection = classify_packets(s.packet for s in segments) if segments else None
    verdict = LabVerdict(
        messages=messages,
        answers_expected=expected,
        answers_delivered=delivered,
        answers_lost=tuple(a for a in expected if a not in delivered),
        first_fin=_first(timeline, "fin"),
        first_rst=_first(timeline, "rst"),
        fins=tuple(s.sender.value for s in segments if s.packet.fin),
        rsts=tuple(s.sender.value for s in segments if s.packet.rst),
        client_end=client.ending,
        server_end=server.ending,
        errors={k: tuple(v) for k, v in errors.items()},
        calls=_calls(timeline),
        signals=signals,
        captured=bool(segments),
        termination=str(connection.termination) if connection else None,
        termination_reason=connection.reason if connection else None,
        conn_state=connection.conn_state if connection else None,
        history=connection.history if connection else None,
    )
    conclude = _lesson_conclusion if scenario.kind == "lesson" else _actor_conclusion
    return replace(verdict, conclusion=conclude(scenario.name, verdict, timeline))


def _how_client_closed(timeline: Timeline) -> str | None:
    for e in timeline.events_of(Role.CLIENT):
        if e.event == "shutdown":
            return "the client closed only its sending direction (shutdown(SHUT_WR))"
        if e.event == "close":
            return "the client closed both directions (close())"
        if e.event == "abort":
            return "the client aborted (SO_LINGER 0 and close())"
    return None


def _server_fate(verdict: LabVerdict, timeline: Timeline) -> str | None:
    if "server SIGPIPE" in verdict.signals and verdict.server_end == "killed by SIGPIPE":
        return "the server's next write raised SIGPIPE and killed it"
    write_errors = [e for e in verdict.errors.get("server", ()) if e.startswith("write")]
    if write_errors:
        errno = write_errors[0].split(": ")[-1]
        handler = " after its SIGPIPE handler ran" if "server SIGPIPE" in verdict.signals else ""
        return f"the server's next write failed with {errno}{handler}"
    read_errors = [e for e in verdict.errors.get("server", ()) if e.startswith("read")]
    if read_errors:
        return f"the server's read failed with {read_errors[0].split(': ')[-1]}"
    server_eof = timeline.events_of(Role.SERVER, "eof")
    if verdict.fins.count("server"):
        return "then the server read EOF, exited, and its kernel sent FIN"
    if server_eof:
        return "then the server read EOF and exited"
    return None


def _lesson_conclusion(name: str, verdict: LabVerdict, timeline: Timeline) -> str:
    n = len(verdict.answers_expected)
    lost = len(verdict.answers_lost)
    if not n:
        head = "no message was sent"
    elif lost == 0:
        head = f"all {n} answers delivered" if n > 1 else "the answer was delivered"
    elif lost == n:
        head = f"{lost} answers lost" if lost > 1 else "the answer was lost"
    else:
        got = ", ".join(verdict.answers_delivered)
        head = f"{n - lost} of {n} answers delivered ({got}), {lost} lost"
    parts = [head]
    if how := _how_client_closed(timeline):
        parts.append(how)
    rst = verdict.first_rst
    if rst is not None and rst.in_reply_to:
        parts.append(
            f"its kernel answered {rst.in_reply_to} with RST"
            if rst.by == "client"
            else f"the server's kernel answered {rst.in_reply_to} with RST"
        )
    elif rst is not None:
        parts.append(f"the {rst.by} sent RST after {rst.after}")
    if fate := _server_fate(verdict, timeline):
        parts.append(fate)
    if not verdict.captured:
        parts.append("(no packets captured: socket-level evidence only)")
    return ": ".join(parts[:2]) + ("; " + "; ".join(parts[2:]) if len(parts) > 2 else "")


def _call_text(call: Call) -> str:
    if call.errno:
        return f"{call.call} failed with {call.errno}"
    if call.data is not None:
        return f"{call.call} returned {call.result}" + (
            " (EOF)" if call.result == 0 else f' ("{call.data[:20]}")'
        )
    return f"{call.call} returned {call.result}"


def _actor_conclusion(name: str, verdict: LabVerdict, timeline: Timeline) -> str:
    """For the kernel scenarios: what the packets and return values say, in order."""
    fin, rst = verdict.first_fin, verdict.first_rst
    wire = []
    if fin is not None:
        wire.append(f"first FIN by the {fin.by} after {fin.after}")
    if rst is not None:
        reply = f" in reply to {rst.in_reply_to}" if rst.in_reply_to else ""
        wire.append(f"first RST by the {rst.by} after {rst.after}{reply}")
    if not wire and verdict.captured:
        wire.append("no FIN and no RST")
    # Per role, in each role's own order: the two sides run concurrently, so an order across
    # roles would change from run to run.
    calls = "; ".join(
        f"{role}: " + ", ".join(_call_text(c) for c in verdict.calls if c.role == role)
        for role in ("client", "server")
        if any(c.role == role for c in verdict.calls)
    )
    text = "; ".join(wire)
    if calls:
        text += (": " if text else "") + calls
    if verdict.signals:
        text += "; signals: " + ", ".join(verdict.signals)
    if not verdict.captured:
        text += " (no packets captured: socket-level evidence only)"
    return text
