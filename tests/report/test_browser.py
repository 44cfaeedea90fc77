"""The demo's report opened in real headless Chromium: every diagram renders, no errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tcpclose.render.labels import segment_kind
from tcpclose.render.screenshot import browser_missing, chromium

pytestmark = pytest.mark.skipif(
    browser_missing() is not None, reason=f"no browser: {browser_missing()}"
)

#: per diagram: its segments as [class, from, label] read back from the rendered DOM
_ARROWS_JS = """() => Array.from(document.querySelectorAll('section.scenario')).map(s => ({
  name: s.dataset.scenario,
  box: (() => { const r = s.querySelector('svg').getBoundingClientRect();
                return [r.width, r.height]; })(),
  arrows: Array.from(s.querySelectorAll('svg g.segment')).map(g => {
    const b = g.querySelector('line').getBBox();
    return [g.getAttribute('class'), g.dataset.from, g.dataset.label, b.width];
  }),
}))"""


@pytest.fixture(scope="module")
def rendered(demo_report: Path, tmp_path_factory):
    shot = tmp_path_factory.mktemp("shots") / "report.png"
    problems: list[str] = []
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 1600})
        page.on("console", lambda m: problems.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
        page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
        page.goto(demo_report.resolve().as_uri())
        diagrams = page.evaluate(_ARROWS_JS)
        claims_rows = page.locator("table.claims tbody tr").count()
        page.screenshot(path=str(shot))
    return {d["name"]: d for d in diagrams}, problems, shot, claims_rows


def test_no_console_messages_or_page_errors(rendered):
    _, problems, _, _ = rendered
    assert problems == []


def test_every_diagram_renders_with_visible_arrows(rendered):
    diagrams, _, _, _ = rendered
    assert set(diagrams) == {"close", "shutdown"}
    for d in diagrams.values():
        width, height = d["box"]
        assert width > 300 and height > 200
        assert d["arrows"] and all(a[3] > 100 for a in d["arrows"])  # drawn lifeline to lifeline


def test_close_diagram_shows_the_rst_and_the_lost_answer(rendered, real_runs):
    arrows = [tuple(a[:3]) for a in rendered[0]["close"]["arrows"]]
    assert ("segment rst", "client", "RST") in arrows
    assert ("segment data", "server", "Hi, data1") in arrows
    assert ("segment fin", "client", "FIN") in arrows
    # drawn from the captured packets: one arrow per non-ACK segment
    segments = real_runs["close"].timeline.segments
    shown = [s for s in segments if segment_kind(s.packet) != "ack"]
    assert len(arrows) == len(shown)


def test_shutdown_diagram_shows_both_answers_and_both_fins(rendered):
    arrows = [tuple(a[:3]) for a in rendered[0]["shutdown"]["arrows"]]
    assert ("segment data", "server", "Hi, data1") in arrows
    assert ("segment data", "server", "Hi, data2") in arrows
    fins = [a[1] for a in arrows if a[0] == "segment fin"]
    assert fins == ["client", "server"]
    assert not [a for a in arrows if a[0] == "segment rst"]


def test_claims_table_and_screenshot(rendered, real_claims):
    _, _, shot, rows = rendered
    assert rows == len(real_claims)
    assert shot.stat().st_size > 20_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


#: at a phone's width: how far the page scrolls sideways, and each diagram's smallest text
_NARROW_JS = """() => ({
  scrollWidth: document.documentElement.scrollWidth,
  bodyScrollWidth: document.body.scrollWidth,
  diagrams: Array.from(document.querySelectorAll('section.scenario svg')).map(svg => {
    const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
    const texts = Array.from(svg.querySelectorAll('text'));
    return {
      smallestFont: Math.min(...texts.map(
        t => parseFloat(getComputedStyle(t).fontSize) * scale)),
      segmentTextHeight: Math.min(...Array.from(svg.querySelectorAll('g.segment text')).map(
        t => t.getBoundingClientRect().height)),
      boxScrolls: svg.parentElement.scrollWidth > svg.parentElement.clientWidth,
    };
  }),
  tableBox: (() => { const t = document.querySelector('table.claims');
                     const b = t.parentElement;
                     return [t.getBoundingClientRect().width, b.clientWidth]; })(),
})"""

PHONE_WIDTH = 390


@pytest.fixture(scope="module")
def narrow(demo_report: Path, tmp_path_factory):
    shot = tmp_path_factory.mktemp("shots") / "report-390.png"
    with chromium() as browser:
        page = browser.new_page(viewport={"width": PHONE_WIDTH, "height": 844})
        page.goto(demo_report.resolve().as_uri())
        measured = page.evaluate(_NARROW_JS)
        page.screenshot(path=str(shot), full_page=True)
    return measured, shot


def test_phone_width_page_does_not_scroll_sideways(narrow):
    measured, _ = narrow
    assert measured["scrollWidth"] <= PHONE_WIDTH
    assert measured["bodyScrollWidth"] <= PHONE_WIDTH
    table_width, box_width = measured["tableBox"]
    assert table_width <= box_width + 1  # the claims table wraps its cells to the screen


def test_phone_width_diagram_text_stays_readable(narrow):
    measured, shot = narrow
    assert len(measured["diagrams"]) == 2
    for diagram in measured["diagrams"]:
        assert diagram["smallestFont"] >= 9
        assert diagram["segmentTextHeight"] >= 9
        # drawn wider than the screen: it scrolls in its own box, the page does not
        assert diagram["boxScrolls"]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000
