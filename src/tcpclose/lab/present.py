"""How a lab run looks on a terminal: heading, diagram, facts, verdict (pure: run -> rich Text)."""

from __future__ import annotations

from rich.text import Text

from tcpclose.lab.runner import LabRun
from tcpclose.render.text import rich_diagram


def fact_rows(run: LabRun, *, brief: bool = False) -> list[tuple[str, str]]:
    """The facts of a run as (label, value) rows, for the terminal and the HTML report alike;
    `brief` leaves out the classifier's long reason."""
    v = run.verdict
    rows = [("client", run.client.ending), ("server", run.server.ending)]
    if v.answers_expected:
        lost = f" (lost: {', '.join(v.answers_lost)})" if v.answers_lost else ""
        rows.append(
            ("answers", f"{len(v.answers_delivered)} of {len(v.answers_expected)} delivered{lost}")
        )
    for label, mark in (("first FIN", v.first_fin), ("first RST", v.first_rst)):
        if mark is not None:
            reply = f", in reply to {mark.in_reply_to}" if mark.in_reply_to else ""
            rows.append((label, f"{mark.by} at {mark.ms:.1f} ms, after {mark.after}{reply}"))
    if v.termination:
        reason = "" if brief else f": {v.termination_reason}"
        rows.append(("termination", f"{v.termination} (Zeek {v.conn_state} {v.history}){reason}"))
    if v.signals:
        rows.append(("signals", ", ".join(v.signals)))
    errors = [f"{role}: {e}" for role, errs in v.errors.items() for e in errs]
    if errors:
        rows.append(("errors", "; ".join(errors)))
    capture = f"{run.capture.method}, {len(run.capture.packets)} packets"
    if run.capture.note:
        capture = f"{run.capture.note}"
    if run.capture.dropped:
        capture += f" (the kernel dropped {run.capture.dropped})"
    rows.append(("capture", capture))
    return rows


def facts_text(run: LabRun, *, brief: bool = False) -> Text:
    """The facts under a diagram, one `label: value` line each (capture trouble in colour)."""
    out = Text()
    for label, value in fact_rows(run, brief=brief):
        trouble = label == "capture" and (run.capture.note or run.capture.dropped)
        out.append(f"{label}: {value}\n", style="yellow" if trouble else "")
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
