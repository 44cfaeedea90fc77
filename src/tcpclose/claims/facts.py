"""The judges' vocabulary over lab runs: the run's `RunFacts` (computed once by the lab) and
a few questions asked of them. Pure: run in, facts out.

Judges select segments and calls by values and stable identifiers (`Role`, `SegmentKind`,
`Syscall`, call ids such as `close.child`), never by display text; the labels here are only
for writing evidence. A judge that asks for a fact the run lacks gets `MissingEvidence`, which
turns the claim's verdict into `unchecked` instead of a guess.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from tcpclose.claims.model import MissingEvidence
from tcpclose.facts import CallFact, RunFacts, SegmentKind, SignalFact, WireFact
from tcpclose.model.event import Syscall
from tcpclose.model.timeline import Role
from tcpclose.render.labels import cause_label, wire_label

if TYPE_CHECKING:
    from tcpclose.lab.processes import ProcessOutcome
    from tcpclose.lab.runner import LabRun

__all__ = [
    "CallFact",
    "Role",
    "SegmentKind",
    "SignalFact",
    "Syscall",
    "WireFact",
    "call",
    "call_text",
    "calls",
    "delivered",
    "ended_at",
    "facts_of",
    "fin_text",
    "first",
    "label",
    "ms",
    "need",
    "printed",
    "segments_of",
    "squeeze",
    "wire",
]


def need(runs: Mapping[str, LabRun], name: str) -> LabRun:
    """The run of scenario `name`, or MissingEvidence."""
    try:
        return runs[name]
    except KeyError:
        raise MissingEvidence(f"scenario {name} was not run") from None


def facts_of(run: LabRun) -> RunFacts:
    facts = run.verdict.facts
    if facts is None:
        raise MissingEvidence(f"{run.scenario.name}: the run has no facts")
    return facts


def wire(run: LabRun) -> list[WireFact]:
    """Every captured segment of the run; MissingEvidence when nothing was captured."""
    facts = facts_of(run)
    if not facts.captured:
        note = f" ({run.capture.note})" if run.capture.note else ""
        raise MissingEvidence(f"{run.scenario.name}: no packets captured{note}")
    return list(facts.segments)


def segments_of(run: LabRun, kind: SegmentKind, by: Role | None = None) -> list[WireFact]:
    """Segments of one kind, optionally only those `by` one side. A FIN that carries data
    counts as FIN (`segment_kind` decides)."""
    return [w for w in wire(run) if w.kind is kind and (by is None or w.by is by)]


def first(run: LabRun, kind: SegmentKind, by: Role | None = None) -> WireFact | None:
    found = segments_of(run, kind, by)
    return found[0] if found else None


def calls(run: LabRun, role: Role | None = None, syscall: Syscall | None = None) -> list[CallFact]:
    """The calls `role` made (of one syscall), in time order."""
    return facts_of(run).calls_of(role, syscall)


def call(run: LabRun, role: Role, call_id: str) -> CallFact:
    """The first call of `role` with this id, or MissingEvidence."""
    found = facts_of(run).call(role, call_id)
    if found is None:
        raise MissingEvidence(f"{run.scenario.name}: the {role} made no call {call_id}")
    return found


def ended_at(run: LabRun, role: Role) -> float:
    """When the process playing `role` was seen to end, on the timeline's clock."""
    t = facts_of(run).ended_at(role)
    if t is None:
        raise MissingEvidence(f"{run.scenario.name}: when the {role} ended is unknown")
    return t


def delivered(run: LabRun) -> tuple[str, ...]:
    """The answers (`Hi, <message>`) that reached the client, from the client's reads."""
    return facts_of(run).answers_delivered


# --- words for evidence ------------------------------------------------------------------


def ms(t: float) -> str:
    return f"{t * 1000:.1f} ms"


def label(w: WireFact) -> str:
    """A segment as evidence names it: `Hi, data1`, `FIN`, `RST`."""
    return wire_label(w)


def call_text(c: CallFact) -> str:
    """`read() = 5 "data1"`, `write(): EPIPE`, `close() = 0`."""
    if c.errno:
        return f"{c.label}: {c.errno}"
    if c.data is not None:
        shown = f'"{c.data[:20]}"' if c.data else "(EOF)"
        return f"{c.label} = {c.result} {shown}"
    return f"{c.label} = {c.result}"


def fin_text(w: WireFact | None) -> str:
    if w is None:
        return "no FIN"
    return f"FIN at {ms(w.t)}" + (f" after {cause_label(w.cause)}" if w.cause else "")


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
