"""Each traced TCP connection as a judged lab run (pure: tracker and capture in, runs out).

Each connection becomes a `LabRun` (the lab's own result type), so the lab's verdict function,
its terminal presentation, its JSON, the Mermaid and HTML renderers all serve trace unchanged.
The traced side's calls are its notes; a side that was not traced is drawn packets-only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from tcpclose.addresses import host_port
from tcpclose.capture import CaptureResult, parse_frame
from tcpclose.capture.frames import Frame
from tcpclose.facts import RunFacts
from tcpclose.lab.processes import ProcessOutcome
from tcpclose.lab.runner import LabRun
from tcpclose.lab.scenarios import Scenario
from tcpclose.lab.verdicts import LabVerdict, judge
from tcpclose.model.event import AppEvent, Event, EventFormatError, typed
from tcpclose.model.packet import Packet
from tcpclose.model.timeline import Note, Role, Timeline
from tcpclose.render.facts_text import NOT_TRACED as PACKETS_ONLY
from tcpclose.trace.capture import frame_ports
from tcpclose.trace.oneside import client_only_conclusion, server_only_conclusion
from tcpclose.trace.sockets import Endpoint, ProcessInfo, SocketRef, SocketTracker

#: a connect() whose socket strace never named finds its SYN in this window after the call
SYN_SLACK_NS = 50_000_000
NOT_TRACED = "its calls not traced"
#: strace's end of a call (entry stamp + its -T time) can fall a few µs before the true end
END_SLACK_NS = 1_000_000


@dataclass(frozen=True)
class TracedOutcome(ProcessOutcome):
    """A side's outcome as the trace saw it; `described` replaces the lab's `exit N` wording
    for a side that was not traced or still runs."""


def _outcome(role: str, info: ProcessInfo | None, mode: str) -> TracedOutcome:
    if info is None:
        return TracedOutcome(role, (), None, None, "", "", 0, described=PACKETS_ONLY)
    if info.ended:
        return TracedOutcome(
            role, info.argv, info.exit_status, info.signal, "", "", info.ended_ns or 0
        )
    still = "still running (detached)" if mode == "attach" else "still running"
    return TracedOutcome(role, info.argv, None, None, "", "", 0, described=still)


def _resolve_unnamed(ref: SocketRef, packets: Sequence[Packet]) -> None:
    """A socket known only by inode (gone before it could be looked up: connect() failed,
    or a quick close): its SYN to the address it connected to, sent while connect() ran,
    names its local endpoint; an accepted one's is where its peer's packets went."""
    if ref.local is not None or ref.remote is None:
        return
    if ref.accepted_by_us:
        # The same port may be a client of other connections too (the kernel reuses a local
        # port toward other addresses): the SYN that accept() answered is the last one from
        # the peer before accept() returned; a connection accepted before an attach has none.
        syns = [
            p
            for p in packets
            if p.syn
            and not p.has_ack
            and p.src_endpoint == ref.remote
            and (ref.accepted_ns is None or p.t * 1e9 <= ref.accepted_ns + END_SLACK_NS)
        ]
        got = syns[-1] if syns else next((p for p in packets if p.src_endpoint == ref.remote), None)
        if got is not None:
            ref.local = got.dst_endpoint
        return
    if ref.connect_window is None:
        return
    start, end = ref.connect_window
    for p in packets:
        if (
            p.syn
            and not p.has_ack
            and p.dst_endpoint == ref.remote
            and start <= p.t * 1e9 <= end + SYN_SLACK_NS
        ):
            ref.local = p.src_endpoint
            return


def _client_and_server(
    key: tuple[Endpoint, Endpoint], refs: list[SocketRef], packets: Sequence[Packet]
) -> tuple[Endpoint, Endpoint]:
    for ref in refs:
        if ref.connected_by_us and ref.local is not None:
            return ref.local, ref.remote or key[0]
        if ref.accepted_by_us and ref.local is not None and ref.remote is not None:
            return ref.remote, ref.local
    first_syn = next((p for p in packets if p.syn and not p.has_ack), None)
    if first_syn is not None:
        return first_syn.src_endpoint, first_syn.dst_endpoint
    a, b = key  # begun before the trace: the lower port is the service
    return (b, a) if a[1] < b[1] else (a, b)


def _annotated(timeline: Timeline, facts: RunFacts) -> Timeline:
    """The timeline as drawn: each traced call that made its kernel send FIN or RST says so,
    `close() -> FIN`, `close() with SO_LINGER 0 -> RST`, `killed by SIGPIPE -> RST`. Which call
    did is the facts' `WireFact.cause` (from the calls' stamps and the packets' order)."""
    entries = timeline.entries
    notes_at: dict[tuple[Role, float], list[int]] = {}
    for i, entry in enumerate(entries):
        if isinstance(entry, Note):
            notes_at.setdefault((entry.role, entry.t), []).append(i)
    caused: dict[int, list[str]] = {}
    for wire in facts.segments:
        flag = "RST" if wire.packet.rst else "FIN" if wire.packet.fin else None
        if flag is None or wire.cause is None or wire.cause_t is None:
            continue
        if wire.in_reply_to is not None:  # an RST answering the peer's late data, not the call
            continue
        for i in notes_at.get((wire.by, wire.cause_t), []):
            note = entries[i]
            assert isinstance(note, Note)
            if _typed_or_none(note.event) == wire.cause:
                if flag not in caused.setdefault(i, []):
                    caused[i].append(flag)
                break
    if not caused:
        return timeline
    new_entries = list(entries)
    for i, flags in caused.items():
        note = entries[i]
        assert isinstance(note, Note)
        event = note.event
        text = str(event.get("text") or event.event)
        fields = {**event.fields, "text": f"{text} -> {', '.join(flags)}"}
        new_entries[i] = replace(note, event=replace(event, fields=fields))
    return replace(timeline, entries=tuple(new_entries))


def _typed_or_none(event: AppEvent) -> Event | None:
    try:
        return typed(event)
    except EventFormatError:  # RunFacts set it aside too: it caused nothing
        return None


def _follows_lesson(
    events: Sequence[AppEvent], packets: Sequence[Packet], server: Endpoint
) -> bool:
    """The lesson's protocol: the client sent messages and every answer is `Hi, <message>`.
    Then the lab's lesson verdict applies (answers delivered and lost); else the kernel one."""
    if not any(e.role == "client" and e.event == "sent" for e in events):
        return False
    answers = [p.payload for p in packets if p.src_endpoint == server and p.length]
    answers += [
        str(e.get("data") or "").encode()
        for e in events
        if e.role == "server" and e.event == "sent"
    ]
    return bool(answers) and all(a.startswith(b"Hi, ") for a in answers)


def build_runs(
    tracker: SocketTracker, capture: CaptureResult, target: str, mode: str
) -> tuple[list[LabRun], list[tuple[str, ...]]]:
    """One judged LabRun per TCP connection the program used, in the order they began."""
    ports = {e[1] for ref in tracker.refs for e in (ref.local, ref.remote) if e is not None}
    pairs = [
        (frame, parse_frame(frame))
        for frame in capture.frames
        if (found := frame_ports(frame.data)) is not None and not ports.isdisjoint(found)
    ]
    decoded: list[tuple[Frame, Packet]] = [(f, p) for f, p in pairs if p is not None]
    all_packets = [p for _f, p in decoded]
    groups: dict[tuple[Endpoint, Endpoint], list[SocketRef]] = {}
    for ref in tracker.refs:
        if not ref.events:
            continue
        _resolve_unnamed(ref, all_packets)
        key = ref.key
        if key is None:
            continue
        groups.setdefault(key, []).append(ref)
    ordered = sorted(
        groups.items(), key=lambda item: min(e.t_ns for r in item[1] for e in r.events)
    )
    runs: list[LabRun] = []
    traced: list[tuple[str, ...]] = []
    for number, (key, refs) in enumerate(ordered, start=1):
        ends = set(key)
        mine = [(f, p) for f, p in decoded if {p.src_endpoint, p.dst_endpoint} == ends]
        packets = [p for _f, p in mine]
        client, server = _client_and_server(key, refs, packets)
        events: list[AppEvent] = []
        actors: dict[str, ProcessInfo] = {}
        for ref in refs:
            role = Role.CLIENT if ref.local == client else Role.SERVER
            for e in ref.events:
                events.append(AppEvent(e.t_ns, role.value, e.event, {**e.fields, "pid": e.pid}))
                if role.value not in actors or e.event in ("connected", "accepted"):
                    info = tracker.processes.get(e.pid)
                    if info is not None:
                        actors[role.value] = info
        events.sort(key=lambda e: e.t_ns)
        starts = [p.t for p in packets[:1]] + [
            e.t for e in events if e.event in ("connected", "accepted")
        ][:1]
        timeline = Timeline.build(
            packets, events, server=server, client=client, start=min(starts) if starts else None
        )
        kind = "lesson" if _follows_lesson(events, packets, server) else "actor"
        scenario = Scenario(
            f"connection {number}",
            f"{host_port(*client)} -> {host_port(*server)}",
            f"traced: {target}",
            kind,  # type: ignore[arg-type]
        )
        client_outcome = _outcome("client", actors.get("client"), mode)
        server_outcome = _outcome("server", actors.get("server"), mode)
        verdict = _untraced(
            judge(scenario, timeline, client_outcome, server_outcome),
            {"client", "server"} - set(actors),
        )
        if set(actors) == {"server"} and verdict.facts is not None:
            # the lab's sentences assume the client's calls are known: say what is
            verdict = replace(verdict, conclusion=server_only_conclusion(verdict.facts, events))
        elif set(actors) == {"client"} and verdict.facts is not None:
            conclusion = client_only_conclusion(verdict.conclusion, verdict.facts)
            verdict = replace(verdict, conclusion=conclusion)
        frames = tuple(f for f, _p in mine)
        note = capture.note
        run_capture = CaptureResult(capture.method, note, frames, tuple(packets), capture.dropped)
        runs.append(
            LabRun(
                scenario,
                1.0,
                _annotated(timeline, verdict.facts or RunFacts.of(timeline)),
                client_outcome,
                server_outcome,
                run_capture,
                tuple(events),
                verdict,
            )
        )
        traced.append(tuple(sorted(actors)))
    return runs, traced


def _untraced(verdict: LabVerdict, roles: set[str]) -> LabVerdict:
    """The lab's verdict says a side whose calls are not on the timeline sent its FIN or RST
    "after nothing"; for a side that was not traced, say so instead."""
    changes: dict[str, object] = {}
    text = verdict.conclusion
    for attr in ("first_fin", "first_rst"):
        mark = getattr(verdict, attr)
        if mark is not None and mark.by in roles and mark.after == "nothing":
            changes[attr] = replace(mark, after=NOT_TRACED)
            text = text.replace(f"the {mark.by} after nothing", f"the {mark.by} ({NOT_TRACED})")
            text = text.replace(f"the {mark.by} sent RST after nothing", f"the {mark.by} sent RST")
    return replace(verdict, conclusion=text, **changes) if changes else verdict  # type: ignore[arg-type]
