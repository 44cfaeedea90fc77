"""The HTML report: self-contained, escaped, one section per scenario, pcap downloads."""

from __future__ import annotations

import base64
import io
from html.parser import HTMLParser
from pathlib import Path

import dpkt

from support.conversations import canned_run
from tcpclose.render.html import render_report


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str, str]] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        for name, value in attrs:
            if name in ("src", "href", "action", "srcset", "data") and value is not None:
                self.urls.append((tag, name, value))


def parse(text: str) -> _Collect:
    parser = _Collect()
    parser.feed(text)
    return parser


def assert_self_contained(text: str) -> None:
    parsed = parse(text)
    for tag, _, url in parsed.urls:
        assert url.startswith(("#", "data:")), (tag, url[:80])
    assert not [t for t, a in parsed.tags if t in ("script", "link", "iframe", "img")]
    assert "@import" not in text and "url(" not in text


def test_canned_report_is_self_contained_and_escaped():
    text = render_report([canned_run()], system="Linux 0.0-test")
    assert_self_contained(text)
    assert "&lt;b&gt;x&lt;/b&gt;" in text and "<b>x</b>" not in text  # a transcript line
    assert "Linux 0.0-test" in text
    assert 'id="scenario-close"' in text and 'class="segment rst"' in text


def test_real_report_is_self_contained(demo_report: Path):
    assert_self_contained(demo_report.read_text(encoding="utf-8"))


def test_pcap_download_holds_the_captured_packets(demo_report: Path, real_runs):
    parsed = parse(demo_report.read_text(encoding="utf-8"))
    links = {a["download"]: a["href"] for t, a in parsed.tags if t == "a" and "download" in a}
    assert set(links) == {"close.pcap", "shutdown.pcap"}
    for name, href in links.items():
        data = base64.b64decode(href.split(",", 1)[1])
        packets = list(dpkt.pcap.Reader(io.BytesIO(data)))
        run = real_runs[name.removesuffix(".pcap")]
        assert len(packets) == len(run.capture.frames) > 0


def test_one_section_per_scenario_then_the_claims(demo_report: Path, real_claims):
    text = demo_report.read_text(encoding="utf-8")
    assert text.index('id="scenario-close"') < text.index('id="scenario-shutdown"')
    assert text.index('id="scenario-shutdown"') < text.index('id="claims"')
    for claim in real_claims:
        assert f'id="claim-{claim.id}" data-verdict="{claim.verdict.value}"' in text
    assert "@media print" in text
