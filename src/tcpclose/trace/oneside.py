"""The verdict of a trace where only the server was traced (pure: a judged run in, words out).

The lab's verdicts assume both programs' calls are known: for a server traced alone they would
say the client's FIN came "after nothing", and the lesson's verdict (answers delivered, how the
client closed) would rest on calls nobody saw. Here the sentence keeps the two kinds of
evidence apart: what the traced server did (its calls, its signals, its end), and what the wire
shows about the untraced client (its data, its FIN, its kernel's RST), without naming a call of
the client's. An answer counts as lost only on the wire's evidence (never sent, or answered by
the client's kernel with RST); one the client's kernel acknowledged "reached the client's
kernel": whether the client read it, only its calls would tell.
"""

from __future__ import annotations

from collections.abc import Sequence

from tcpclose.facts import RunFacts
from tcpclose.model.event import AppEvent
from tcpclose.model.timeline import Role
from tcpclose.render.labels import abbreviate

#: at most this many of the server's calls are named; the rest are counted
MAX_CALLS = 8


def _server_story(events: Sequence[AppEvent]) -> list[str]:
    """The traced server's calls that matter for the ending, in its own order."""
    told: list[str] = []
    for e in events:
        if e.role != "server":
            continue
        kind = e.event
        if kind == "received":
            told.append(f"read {_data(e)}")
        elif kind == "eof":
            told.append("read EOF")
        elif kind == "sent":
            told.append(f"sent {_data(e)}")
        elif kind == "error":
            told.append(f"{e.get('call')}() failed with {e.get('errno')}")
        elif kind in ("shutdown", "close", "abort"):
            told.append(str(e.get("text") or kind))
        elif kind == "signal":
            told.append(f"its {e.get('signal')} handler ran")
        elif kind == "killed":
            told.append(f"killed by {e.get('signal')}")
        elif kind == "exit":
            told.append(f"exit({e.get('status')})")
    if len(told) > MAX_CALLS:
        told = [*told[: MAX_CALLS - 1], f"{len(told) - MAX_CALLS + 1} more", told[-1]]
    return told


def _data(e: AppEvent) -> str:
    data = e.get("data")
    if data is None:
        return f"{e.get('bytes')} bytes"
    return _shown(str(data))


def _shown(text: str) -> str:
    """Data as one short line: `GET / HTTP/1.1\\r\\nH…`."""
    return abbreviate(text.replace("\r", "\\r").replace("\n", "\\n"), 20)


def _client_wire(facts: RunFacts) -> list[str]:
    """What the client's packets show, in order: its data, its FIN, its kernel's RSTs."""
    told: list[str] = []
    for w in facts.wire(by=Role.CLIENT):
        p = w.packet
        if p.length:
            told.append(f"sent {_shown(w.data) if w.data else f'{p.length} bytes'}")
        if p.fin:
            told.append(f"FIN at {w.t * 1000:.1f} ms")
        if p.rst:
            answered = facts.segment(w.in_reply_to)
            if answered is not None and answered.packet.length:
                what = _shown(answered.data or f"{answered.packet.length} bytes")
                told.append(f"its kernel answered {what} with RST")
            else:
                told.append(f"RST at {w.t * 1000:.1f} ms")
            break  # after an RST the connection is gone: what follows says nothing more
    return told


def _answers(facts: RunFacts) -> str | None:
    """The lesson's answers (`Hi, <message>` for each message the client's data carried), on
    the wire's evidence alone."""
    messages = [w.data for w in facts.wire(by=Role.CLIENT) if w.packet.length and w.data]
    if not messages:
        return None
    server_data = [w for w in facts.wire(by=Role.SERVER) if w.packet.length]
    if not all((w.data or "").startswith("Hi, ") for w in server_data):
        return None
    client_rsts = [w for w in facts.wire(by=Role.CLIENT) if w.packet.rst]
    refused = {w.in_reply_to for w in client_rsts if w.in_reply_to is not None}
    first_rst = client_rsts[0].t if client_rsts else None
    reached, lost = [], []
    for message in messages:
        answer = f"Hi, {message}"
        sent = next((w for w in server_data if w.data == answer), None)
        if sent is None:
            lost.append(f"{answer} (never sent)")
        elif sent.index in refused:
            lost.append(f"{answer} (the client's kernel answered it with RST)")
        elif first_rst is not None and sent.t > first_rst:
            lost.append(f"{answer} (sent after the client's RST)")
        else:
            reached.append(answer)
    n = len(messages)
    head = f"{len(reached)} of {n} answers reached the client's kernel"
    if reached:
        head += f" ({', '.join(reached)})"
    if lost:
        head += f", {len(lost)} lost: " + ", ".join(lost)
    return head


def server_only_conclusion(facts: RunFacts, events: Sequence[AppEvent]) -> str:
    """`ANSWERS: the server (traced) ...; the wire shows the client (not traced) ...`."""
    parts = []
    if (answers := _answers(facts)) is not None:
        parts.append(answers)
    story = _server_story(events)
    parts.append("the server (traced): " + (", ".join(story) if story else "no socket calls"))
    if not facts.captured:
        parts.append("the client (not traced): no packets captured, nothing known of it")
    else:
        wire = _client_wire(facts)
        shows = ", ".join(wire) if wire else "no data, no FIN and no RST"
        parts.append(f"the wire shows the client (not traced): {shows}")
    return "; ".join(parts)


#: the lab's lesson verdict's words for the server's last calls, known only when it is traced
SERVER_CALLS_CLAUSE = "then the server read EOF, exited, and its kernel sent FIN"


def client_only_conclusion(conclusion: str, facts: RunFacts) -> str:
    """The lab's lesson verdict for a client traced alone, without the server's calls: its FIN
    is said as the wire shows it."""
    if SERVER_CALLS_CLAUSE not in conclusion:
        return conclusion
    fin = next((w for w in facts.wire(by=Role.SERVER) if w.packet.fin), None)
    seen = "the wire shows the server (not traced) sent FIN"
    if fin is not None:
        seen += f" at {fin.t * 1000:.1f} ms"
    return conclusion.replace(SERVER_CALLS_CLAUSE, seen)
