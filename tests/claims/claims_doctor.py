"""Doctoring real runs: the same run with one fact changed, its lab verdict recomputed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from tcpclose.lab.runner import LabRun
from tcpclose.lab.verdicts import judge
from tcpclose.model.event import AppEvent
from tcpclose.model.packet import Flag
from tcpclose.model.timeline import Entry, Note, Role, Segment


def with_entries(run: LabRun, entries: list[Entry]) -> LabRun:
    """The run with another timeline; entries sorted as Timeline.build sorts them."""
    ordered = sorted(entries, key=lambda e: (e.t, isinstance(e, Note)))
    timeline = replace(run.timeline, entries=tuple(ordered))
    verdict = judge(run.scenario, timeline, run.client, run.server)
    return replace(run, timeline=timeline, verdict=verdict)


def drop_segments(run: LabRun, unwanted: Callable[[Segment], bool]) -> LabRun:
    return with_entries(
        run, [e for e in run.timeline.entries if not (isinstance(e, Segment) and unwanted(e))]
    )


def add_segment(run: LabRun, t: float, sender: Role, flags: int) -> LabRun:
    """A copy of the sender's last segment before `t`, with other flags and no payload."""
    model = [s for s in run.timeline.segments if s.sender is sender and s.t <= t][-1]
    packet = replace(model.packet, flags=flags, length=0, payload=b"", t=run.timeline.start + t)
    return with_entries(run, [*run.timeline.entries, Segment(t, sender, packet)])


def edit_events(run: LabRun, match: Callable[[AppEvent], bool], **fields: Any) -> LabRun:
    """Every matching event with `fields` replaced (a value of None removes the key)."""
    entries: list[Entry] = []
    for e in run.timeline.entries:
        if isinstance(e, Note) and match(e.event):
            merged = {k: v for k, v in {**e.event.fields, **fields}.items() if v is not None}
            e = Note(e.t, e.role, replace(e.event, fields=merged))
        entries.append(e)
    return with_entries(run, entries)


FIN_ACK = Flag.FIN | Flag.ACK
