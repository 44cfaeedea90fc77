"""A run's facts as (label, value) rows, the same words on the terminal and in the report.

Pure: RunFacts (and how the packets were captured) in, words out.
"""

from __future__ import annotations

from tcpclose.facts import RunFacts, WireFact
from tcpclose.model.timeline import Role
from tcpclose.render.labels import cause_label, wire_label
from tcpclose.render.views import CaptureView

#: how trace describes the ending of a side whose calls it did not see (Ending.described)
NOT_TRACED = "not traced (packets only)"


def mark_text(facts: RunFacts, wire: WireFact) -> str:
    """`client at 22.1 ms, after close(), in reply to Hi, data1`."""
    answered = facts.segment(wire.in_reply_to)
    reply = f", in reply to {wire_label(answered)}" if answered else ""
    ending = facts.ending(wire.by)
    if wire.cause is None and ending is not None and ending.described == NOT_TRACED:
        after = "its calls not traced"  # a side seen on the wire only: no call to name
    else:
        after = f"after {cause_label(wire.cause)}"
    return f"{wire.by} at {round(wire.t * 1000, 1):.1f} ms, {after}{reply}"


def capture_text(capture: CaptureView) -> str:
    text = capture.note or f"{capture.method}, {len(capture.packets)} packets"
    if capture.dropped:
        text += f" (the kernel dropped {capture.dropped})"
    return text


def fact_rows(
    facts: RunFacts, capture: CaptureView, *, brief: bool = False
) -> list[tuple[str, str]]:
    """The facts of a run as rows; `brief` leaves out the classifier's long reason."""
    rows = []
    for role in Role:
        ending = facts.ending(role)
        rows.append((role.value, ending.text if ending else "unknown"))
    if facts.answers_expected:
        lost = f" (lost: {', '.join(facts.answers_lost)})" if facts.answers_lost else ""
        got, want = len(facts.answers_delivered), len(facts.answers_expected)
        rows.append(("answers", f"{got} of {want} delivered{lost}"))
    for label, wire in (("first FIN", facts.first_fin), ("first RST", facts.first_rst)):
        if wire is not None:
            rows.append((label, mark_text(facts, wire)))
    if (term := facts.termination) is not None:
        reason = "" if brief else f": {term.reason}"
        rows.append(
            ("termination", f"{term.termination} (Zeek {term.conn_state} {term.history}){reason}")
        )
    if facts.signals:
        rows.append(("signals", ", ".join(f"{s.role} {s.signal}" for s in facts.signals)))
    errors = [f"{c.role}: {c.label}: {c.errno}" for role in Role for c in facts.errors(role)]
    if errors:
        rows.append(("errors", "; ".join(errors)))
    rows.append(("capture", capture_text(capture)))
    return rows
