"""The SVG diagram of a canned timeline: golden file, classes, labels, escaping, time axis."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

from support.conversations import CONVERSATIONS
from tcpclose.render.svg import BREAK_MS, ROW, render_svg

GOLDEN = Path(__file__).parent / "data" / "canned-close.svg"
NS = {"s": "http://www.w3.org/2000/svg"}


def test_matches_the_golden_file():
    svg = render_svg(CONVERSATIONS["close-markup"].timeline(), title="canned close")
    if os.environ.get("TCPCLOSE_UPDATE_GOLDEN"):
        GOLDEN.write_text(svg, encoding="utf-8")
    assert svg == GOLDEN.read_text(encoding="utf-8")


def _groups(svg: str, kind: str) -> list[ET.Element]:
    root = ET.fromstring(svg)  # also proves the text is well-formed XML
    return [g for g in root.iter(f"{{{NS['s']}}}g") if kind in g.get("class", "").split()]


def test_arrows_by_kind_sender_and_label():
    svg = render_svg(CONVERSATIONS["close-markup"].timeline())
    arrows = [
        (g.get("class"), g.get("data-from"), g.get("data-label")) for g in _groups(svg, "segment")
    ]
    assert arrows == [
        ("segment syn", "client", "SYN"),
        ("segment syn", "server", "SYN, ACK"),
        ("segment data", "client", "data1"),
        ("segment data", "client", "data2"),
        ("segment fin", "client", "FIN"),
        ("segment data", "server", "Hi, <data1> & 'more'"),
        ("segment rst", "client", "RST"),
    ]


def test_pure_acks_only_on_request():
    assert not _groups(render_svg(CONVERSATIONS["close-markup"].timeline()), "ack")
    assert (
        len(_groups(render_svg(CONVERSATIONS["close-markup"].timeline(), show_acks=True), "ack"))
        == 2
    )


def test_text_is_escaped():
    svg = render_svg(CONVERSATIONS["close-markup"].timeline(), title="a <b> & c")
    assert "<data1>" not in svg and "&lt;data1&gt; &amp;" in svg
    assert "a &lt;b&gt; &amp; c" in svg


def test_rst_stands_out_and_killed_is_a_red_note():
    svg = render_svg(CONVERSATIONS["close-markup"].timeline())
    (rst,) = _groups(svg, "rst")
    line = rst.find("s:line", NS)
    assert line is not None and float(line.get("stroke-width")) > 3
    (error,) = _groups(svg, "error")
    assert error.get("data-label") == "killed by SIGPIPE" and error.get("data-role") == "server"


def test_long_idle_gaps_are_cut_with_a_break_mark():
    svg = render_svg(CONVERSATIONS["close-markup"].timeline())
    breaks = _groups(svg, "break")
    # 15.05 ms -> 505.0 ms and 505.2 ms -> 1006.0 ms are longer than BREAK_MS
    assert BREAK_MS < 489
    assert [b.find("s:text", NS).text for b in breaks] == ["≈ 490 ms later", "≈ 501 ms later"]
    height = float(ET.fromstring(svg).get("height"))
    assert height < 30 * ROW  # a second of time, yet one screen


def test_arrows_slant_downwards_from_the_sender():
    for g in _groups(render_svg(CONVERSATIONS["close-markup"].timeline()), "segment"):
        line = g.find("s:line", NS)
        assert float(line.get("y2")) > float(line.get("y1"))
        to_right = float(line.get("x2")) > float(line.get("x1"))
        assert to_right == (g.get("data-from") == "client")
