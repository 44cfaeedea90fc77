"""Verdicts: from a run's facts (`tcpclose.facts.RunFacts`) to what happened, in words.

The facts (who sent the first FIN and the first RST and in reply to what, which answers came
back, which calls failed with which errno, how each program ended) are computed once by the
facts layer; this module names them and builds one plain sentence from them.
Nothing here knows which answer to expect from the kernel: change the
packets and the sentence changes with them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from tcpclose.facts import Ending, RunFacts, WireFact
from tcpclose.model.event import Syscall
from tcpclose.model.timeline import Role, Timeline
from tcpclose.render.labels import cause_label, wire_label

if TYPE_CHECKING:
    from tcpclose.lab.processes import ProcessOutcome
    from tcpclose.lab.scenarios import Scenario


@dataclass(frozen=True)
class Mark:
    """The first FIN or RST: who sent it, when, and what it followed."""

    by: str  #: "client" or "server"
    ms: float
    after: str  #: the sender's call that sent it (or its last before it), e.g. "close()"
    in_reply_to: str | None  #: the peer's segment it answered, e.g. "Hi, data1"
    after_id: str | None = None  #: that call's stable identifier, e.g. "close.child"


@dataclass(frozen=True)
class Call:
    """One call an actor or program made and what it returned."""

    role: str
    call: str  #: display label
    result: Any  #: int / byte count, or None when it failed
    errno: str | None
    data: str | None = None
    id: str = ""  #: stable identifier


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
    #: the facts this verdict was drawn from (computed once; judges and renderers read them)
    facts: RunFacts | None = field(default=None, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        out = asdict(replace(self, facts=None))
        del out["facts"]
        return out


def mark(facts: RunFacts, wire: WireFact | None) -> Mark | None:
    """A FIN or RST as the verdict names it."""
    if wire is None:
        return None
    answered = facts.segment(wire.in_reply_to)
    return Mark(
        wire.by.value,
        round(wire.t * 1000, 1),
        cause_label(wire.cause),
        wire_label(answered) if answered else None,
        wire.cause_id,
    )


def endings(client: ProcessOutcome, server: ProcessOutcome) -> dict[Role, Ending]:
    return {
        Role.CLIENT: Ending(client.exit_status, client.signal, client.ended_ns, client.described),
        Role.SERVER: Ending(server.exit_status, server.signal, server.ended_ns, server.described),
    }


def run_facts(timeline: Timeline, client: ProcessOutcome, server: ProcessOutcome) -> RunFacts:
    """The facts of one lab run: its timeline and how its two processes ended."""
    return RunFacts.of(timeline, endings(client, server))


def judge(
    scenario: Scenario, timeline: Timeline, client: ProcessOutcome, server: ProcessOutcome
) -> LabVerdict:
    """All the facts of one run, and the sentence that sums them up."""
    return verdict_of(scenario, run_facts(timeline, client, server))


def verdict_of(scenario: Scenario, facts: RunFacts) -> LabVerdict:
    """The lab's verdict from a run's facts (pure)."""
    logged = [c for c in facts.calls if c.record in ("call", "error")]
    calls = tuple(Call(c.role.value, c.label, c.result, c.errno, c.data, c.call_id) for c in logged)
    errors = {
        role.value: tuple(f"{c.label}: {c.errno}" for c in logged if c.role is role and c.errno)
        for role in Role
    }
    term = facts.termination
    client, server = facts.ending(Role.CLIENT), facts.ending(Role.SERVER)
    verdict = LabVerdict(
        messages=facts.messages,
        answers_expected=facts.answers_expected,
        answers_delivered=facts.answers_delivered,
        answers_lost=facts.answers_lost,
        first_fin=mark(facts, facts.first_fin),
        first_rst=mark(facts, facts.first_rst),
        fins=tuple(r.value for r in facts.fins),
        rsts=tuple(r.value for r in facts.rsts),
        client_end=client.text if client else "",
        server_end=server.text if server else "",
        errors=errors,
        calls=calls,
        signals=tuple(f"{s.role.value} {s.signal}" for s in facts.signals),
        captured=facts.captured,
        termination=term.termination if term else None,
        termination_reason=term.reason if term else None,
        conn_state=term.conn_state if term else None,
        history=term.history if term else None,
    )
    conclude = _lesson_conclusion if scenario.kind == "lesson" else _actor_conclusion
    return replace(verdict, conclusion=conclude(scenario.name, verdict, facts), facts=facts)


def _how_client_closed(facts: RunFacts) -> str | None:
    for c in facts.calls_of(Role.CLIENT):
        if c.errno:
            continue
        if c.syscall is Syscall.SHUTDOWN:
            return "the client closed only its sending direction (shutdown(SHUT_WR))"
        if c.syscall is Syscall.CLOSE:
            return "the client closed both directions (close())"
        if c.syscall is Syscall.ABORT:
            return "the client aborted (SO_LINGER 0 and close())"
    return None


def _server_fate(facts: RunFacts) -> str | None:
    server = facts.ending(Role.SERVER)
    handled = any(not s.fatal for s in facts.signals_of(Role.SERVER, "SIGPIPE"))
    if (
        server is not None
        and server.signal == "SIGPIPE"
        and facts.signals_of(Role.SERVER, "SIGPIPE")
    ):
        return "the server's next write raised SIGPIPE and killed it"
    failed = facts.errors(Role.SERVER)
    writes = [c for c in failed if c.syscall is Syscall.WRITE]
    if writes:
        handler = " after its SIGPIPE handler ran" if handled else ""
        return f"the server's next write failed with {writes[0].errno}{handler}"
    reads = [c for c in failed if c.syscall is Syscall.READ]
    if reads:
        return f"the server's read failed with {reads[0].errno}"
    server_eof = [c for c in facts.calls_of(Role.SERVER, Syscall.READ) if c.result == 0]
    if Role.SERVER in facts.fins:
        return "then the server read EOF, exited, and its kernel sent FIN"
    if server_eof:
        return "then the server read EOF and exited"
    return None


def _lesson_conclusion(name: str, verdict: LabVerdict, facts: RunFacts) -> str:
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
    if how := _how_client_closed(facts):
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
    if fate := _server_fate(facts):
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


def _actor_conclusion(name: str, verdict: LabVerdict, facts: RunFacts) -> str:
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
