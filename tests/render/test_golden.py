"""Renderers on canned timelines, compared with golden files (UPDATE_GOLDEN=1 rewrites them)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from support.conversations import CONVERSATIONS
from tcpclose.render.mermaid import render_mermaid
from tcpclose.render.text import render_diagram, rich_diagram


def close_experiment():
    return CONVERSATIONS["close"].timeline()


def shutdown_experiment():
    return CONVERSATIONS["shutdown"].timeline()


GOLDEN = Path(__file__).parent.parent / "data" / "golden"
CASES = {"close": close_experiment, "shutdown": shutdown_experiment}
RENDERERS = {
    "txt": lambda t: render_diagram(t),
    "acks.txt": lambda t: render_diagram(t, show_acks=True, width=28),
    "mmd": lambda t: render_mermaid(t, title="canned"),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("ext", sorted(RENDERERS))
def test_matches_golden(case: str, ext: str) -> None:
    rendered = RENDERERS[ext](CASES[case]())
    path = GOLDEN / f"{case}.{ext}"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(rendered, encoding="utf-8")
    assert rendered == path.read_text(encoding="utf-8")


def test_arrows_point_from_sender() -> None:
    text = render_diagram(close_experiment())
    lines = text.splitlines()
    hi = next(line for line in lines if "Hi, data1" in line and "|<" in line)
    rst = next(line for line in lines if " RST " in line)
    assert hi.index("|<") < hi.index("Hi, data1")
    assert rst.rstrip().endswith(">|")


def test_pure_acks_hidden_and_counted() -> None:
    timeline = close_experiment()

    def pure_ack_rows(text: str) -> int:
        return sum(1 for line in text.splitlines() if "- ACK -" in line)

    assert pure_ack_rows(render_diagram(timeline)) == 0
    assert "(4 pure ACKs not shown)" in render_diagram(timeline)
    assert pure_ack_rows(render_diagram(timeline, show_acks=True)) == 4


def test_rich_diagram_colours_rst_red() -> None:
    text = rich_diagram(close_experiment())
    rst_spans = [s for s in text.spans if "red" in str(s.style)]
    assert any("RST" in text.plain[s.start : s.end] for s in rst_spans)
    assert text.plain == render_diagram(close_experiment())


def test_mermaid_escapes_and_crosses_rst() -> None:
    mermaid = render_mermaid(close_experiment(), title="a;b#c")
    assert "title a#59;b#35;c" in mermaid
    assert "C-xS: RST" in mermaid
    assert "S->>C: Hi, data1" in mermaid
