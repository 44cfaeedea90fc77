"""How a lab run looks on a terminal: heading, diagram, facts, verdict (pure: run -> rich Text)."""

from __future__ import annotations

from rich.text import Text

from tcpclose.lab.runner import LabRun
from tcpclose.lab.verdicts import run_facts
from tcpclose.render.columns import Block
from tcpclose.render.facts_text import fact_rows as render_fact_rows
from tcpclose.render.text import rich_diagram


def fact_rows(run: LabRun, *, brief: bool = False) -> list[tuple[str, str]]:
    """The facts of a run as (label, value) rows, for the terminal and the HTML report alike;
    `brief` leaves out the classifier's long reason."""
    facts = run.verdict.facts
    if facts is None:  # a verdict built by hand, without its facts: recompute them
        facts = run_facts(run.timeline, run.client, run.server)
    return render_fact_rows(facts, run.capture, brief=brief)


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


def experiment_block(title: str, run: LabRun, width: int, show_acks: bool) -> Block:
    """One experiment as the demo shows it: its title and summary, the diagram (never wrapped
    side by side: `width` columns per lane), then the facts and the verdict."""
    head = Text(f"experiment: {title}\n", style="bold cyan")
    head.append(f"{run.scenario.summary}\n", style="dim")
    diagram = rich_diagram(run.timeline, width=width, show_acks=show_acks)
    facts = facts_text(run, brief=True)
    facts.append_text(verdict_text(run))
    return Block([(head, True), (diagram, False), (facts, True)])
