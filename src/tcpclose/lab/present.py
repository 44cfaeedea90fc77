"""How a lab run looks on a terminal: heading, diagram, facts, verdict (pure: run -> rich Text)."""

from __future__ import annotations

from rich.text import Text

from tcpclose.lab.runner import LabRun
from tcpclose.render.text import rich_diagram


def facts_text(run: LabRun, *, brief: bool = False) -> Text:
    """The facts under a diagram; `brief` leaves out the classifier's long reason."""
    v = run.verdict
    out = Text()
    out.append(f"client: {run.client.ending}   server: {run.server.ending}\n")
    if v.answers_expected:
        lost = f" (lost: {', '.join(v.answers_lost)})" if v.answers_lost else ""
        out.append(
            f"answers delivered: {len(v.answers_delivered)} of {len(v.answers_expected)}{lost}\n"
        )
    for label, mark in (("first FIN", v.first_fin), ("first RST", v.first_rst)):
        if mark is not None:
            reply = f", in reply to {mark.in_reply_to}" if mark.in_reply_to else ""
            out.append(f"{label}: {mark.by} at {mark.ms:.1f} ms, after {mark.after}{reply}\n")
    if v.termination:
        reason = "" if brief else f": {v.termination_reason}"
        out.append(f"termination: {v.termination} (Zeek {v.conn_state} {v.history}){reason}\n")
    if run.capture.note:
        out.append(f"capture: {run.capture.note}\n", style="yellow")
    if run.capture.dropped:
        out.append(f"capture: the kernel dropped {run.capture.dropped} packets\n", style="red")
    return out


def verdict_text(run: LabRun) -> Text:
    return Text.assemble(("verdict: ", "bold"), (run.verdict.conclusion, "bold"), "\n")


def run_text(run: LabRun, *, show_acks: bool = False, width: int = 36) -> Text:
    s = run.scenario
    out = Text()
    out.append(f"── {s.name} ", style="bold cyan")
    out.append(f"{s.summary}\n", style="cyan")
    out.append(f"question: {s.question}\n", style="dim")
    out.append_text(rich_diagram(run.timeline, show_acks=show_acks, width=width))
    out.append_text(facts_text(run))
    out.append_text(verdict_text(run))
    return out
