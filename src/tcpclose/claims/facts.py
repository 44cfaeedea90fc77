"""Facts read from lab runs, the vocabulary of the claims' judges (pure: run in, facts out).

Every fact comes from the run's timeline (captured packets and both programs' events) or from
how its processes ended. A judge that asks for a fact the run lacks gets `MissingEvidence`,
which turns the claim's verdict into `unchecked` instead of a guess.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tcpclose.claims.model import MissingEvidence
from tcpclose.lab.verdicts import cause_of, reply_to
from tcpclose.model.timeline import Segment
from tcpclose.render.labels import segment_kind, segment_label

if TYPE_CHECKING:
    from tcpclose.lab.processes import ProcessOutcome
    from tcpclose.lab.runner import LabRun


@dataclass(frozen=True)
class Wire:
    """One captured segment: when, who sent it, what it was, which call of the sender's caused
    it, and which of the peer's segments it answered (within the reply window)."""

    t: float
    by: str  #: "client" or "server"
    kind: str  #: rst, fin, syn, data or ack
    label: str  #: "Hi, data1", "FIN", "RST"...
    cause: str  #: the sender's call, e.g. "close() in child"
    in_reply_to: str | None
    seq_end: int
    ack: int

    @property
    def ms(self) -> str:
        return f"{self.t * 1000:.1f} ms"


@dataclass(frozen=True)
class CallFact:
    """One call a program made: lesson events (sent, received, eof, error) and the actors'
    `call` events, in one shape."""

    t: float
    role: str
    call: str  #: "write()", "read() in parent", "shutdown(SHUT_RD)"
    result: Any  #: byte count or return value; None when the call failed
    errno: str | None
    data: str | None

    @property
    def text(self) -> str:
        if self.errno:
            return f"{self.call}: {self.errno}"
        if self.data is not None:
            shown = f'"{self.data[:20]}"' if self.data else "(EOF)"
            return f"{self.call} = {self.result} {shown}"
        return f"{self.call} = {self.result}"


def need(runs: Mapping[str, LabRun], name: str) -> LabRun:
    """The run of scenario `name`, or MissingEvidence."""
    try:
        return runs[name]
    except KeyError:
        raise MissingEvidence(f"scenario {name} was not run") from None


def wire(run: LabRun) -> list[Wire]:
    """Every captured segment of the run; MissingEvidence when nothing was captured."""
    entries = run.timeline.entries
    facts = [
        Wire(
            t=entry.t,
            by=entry.sender.value,
            kind=segment_kind(entry.packet),
            label=segment_label(entry.packet, limit=40),
            cause=cause_of(run.timeline, i),
            in_reply_to=reply_to(run.timeline, i),
            seq_end=entry.packet.seq_end,
            ack=entry.packet.ack,
        )
        for i, entry in enumerate(entries)
        if isinstance(entry, Segment)
    ]
    if not facts:
        note = f" ({run.capture.note})" if run.capture.note else ""
        raise MissingEvidence(f"{run.scenario.name}: no packets captured{note}")
    return facts


def segments_of(run: LabRun, kind: str, by: str | None = None) -> list[Wire]:
    """Segments of one kind ("fin", "rst", "data"...), optionally only those `by` one side.
    A FIN that carries data counts as "fin"; `segment_kind` decides."""
    return [w for w in wire(run) if w.kind == kind and (by is None or w.by == by)]


def first(run: LabRun, kind: str, by: str | None = None) -> Wire | None:
    found = segments_of(run, kind, by)
    return found[0] if found else None


def calls(run: LabRun, role: str | None = None, prefix: str = "") -> list[CallFact]:
    """The calls `role` made whose label starts with `prefix`, in time order."""
    out: list[CallFact] = []
    for note in run.timeline.notes:
        e = note.event
        get = e.get
        if e.event == "call":
            fact = CallFact(note.t, e.role, str(get("call")), get("result"), get("errno"), None)
            if get("data") is not None:
                fact = CallFact(note.t, e.role, fact.call, fact.result, None, str(get("data")))
        elif e.event == "sent":
            fact = CallFact(note.t, e.role, "write()", get("bytes"), None, str(get("data")))
        elif e.event == "received":
            fact = CallFact(note.t, e.role, "read()", get("bytes"), None, str(get("data")))
        elif e.event == "eof":
            fact = CallFact(note.t, e.role, "read()", 0, None, "")
        elif e.event == "error":
            fact = CallFact(note.t, e.role, f"{get('call')}()", None, get("errno"), None)
        else:
            continue
        if (role is None or fact.role == role) and fact.call.startswith(prefix):
            out.append(fact)
    return out


def call(run: LabRun, role: str, prefix: str) -> CallFact:
    """The first call of `role` starting with `prefix`, or MissingEvidence."""
    found = calls(run, role, prefix)
    if not found:
        raise MissingEvidence(f"{run.scenario.name}: the {role} made no call {prefix}")
    return found[0]


def event_time(run: LabRun, role: str, name: str) -> float | None:
    """When `role` first logged event `name` (close, shutdown, exit, eof...), or None."""
    for note in run.timeline.notes:
        if note.role.value == role and note.event.event == name:
            return note.t
    return None


def ended_at(run: LabRun, role: str) -> float:
    """When the process playing `role` was seen to end, on the timeline's clock."""
    outcome = run.client if role == "client" else run.server
    return outcome.ended_ns / 1e9 - run.timeline.start


def signal_notes(run: LabRun, role: str, name: str = "") -> list[tuple[float, str, str]]:
    """Handlers that ran (`signal`) and deaths (`killed`) of `role`: (t, event, signal)."""
    return [
        (n.t, n.event.event, str(n.event.get("signal")))
        for n in run.timeline.notes
        if n.role.value == role
        and n.event.event in ("signal", "killed")
        and (not name or n.event.get("signal") == name)
    ]


def delivered(run: LabRun) -> tuple[str, ...]:
    """The answers (`Hi, <message>`) that reached the client, from the client's reads."""
    stream = "".join(c.data or "" for c in calls(run, "client", "read()"))
    sent = [c.data for c in calls(run, "client", "write()") if c.data]
    return tuple(f"Hi, {m}" for m in sent if f"Hi, {m}" in stream)


_PROGRAM_PREFIX = re.compile(r"^(graceserver|graceclient): ")


def printed(outcome: ProcessOutcome) -> list[str]:
    """The lines a program printed (stdout, then stderr), without our own `listening on` line
    and the program-name prefix of its error messages; blank lines dropped."""
    lines = []
    for line in (outcome.stdout + outcome.stderr).splitlines():
        line = _PROGRAM_PREFIX.sub("", line).strip()
        if line and not line.startswith("listening on"):
            lines.append(line)
    return lines


def squeeze(text: str) -> str:
    """Text without whitespace: `send bytes:5` and `send bytes: 5 ` compare equal."""
    return "".join(text.split())
