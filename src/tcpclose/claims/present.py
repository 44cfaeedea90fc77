"""How claim results look on a terminal and in JSON (pure: results in, rich objects out)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.table import Table
from rich.text import Text

from tcpclose.claims.model import ClaimResult, Verdict
from tcpclose.model.jsonshape import SCHEMA_VERSION

VERDICT_STYLES = {
    Verdict.HOLDS: "bold green",
    Verdict.DIFFERS: "bold red",
    Verdict.DEPENDS: "bold yellow",
    Verdict.UNCHECKED: "bold magenta",
}


def heading(results: Sequence[ClaimResult]) -> Text:
    system = results[0].system if results else "this system"
    captures = sorted({r.capture for r in results})
    counts = ", ".join(
        f"{sum(r.verdict is v for r in results)} {v.value}"
        for v in Verdict
        if any(r.verdict is v for r in results)
    )
    return Text.assemble(
        ("tcpclose claims", "bold"),
        f": {len(results)} claims of the lesson checked on {system} "
        f"(capture: {', '.join(captures)}): {counts}\n",
    )


def claims_table(results: Sequence[ClaimResult]) -> Table:
    """One row per claim: the claim, its scenarios, the verdict, the evidence."""
    table = Table(show_lines=True, expand=True)
    table.add_column("claim", ratio=3)
    table.add_column("scenarios", no_wrap=True, min_width=18)
    table.add_column("verdict", no_wrap=True)
    table.add_column("evidence", ratio=4)
    for r in results:
        table.add_row(
            Text.assemble((r.id, "bold"), "\n", r.claim),
            "\n".join(r.scenarios),
            Text(r.verdict.value, style=VERDICT_STYLES[r.verdict]),
            r.evidence,
        )
    return table


def explanations(results: Sequence[ClaimResult]) -> Text:
    """What the kernel did instead, for every claim that does not simply hold."""
    out = Text()
    for r in results:
        if r.verdict is Verdict.HOLDS or not (r.explanation or r.verdict is Verdict.UNCHECKED):
            continue
        out.append(f"{r.id} ", style="bold")
        out.append(f"({r.verdict.value})", style=VERDICT_STYLES[r.verdict])
        out.append(f": {r.explanation or r.evidence}\n")
    return out


def claims_json(results: Sequence[ClaimResult]) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "system": results[0].system if results else None,
        "claims": [r.to_json() for r in results],
    }
