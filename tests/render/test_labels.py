"""Words for segments and facts: a FIN or RST riding on data always shows; fact rows."""

from __future__ import annotations

import pytest

from support.conversations import CONVERSATIONS, pkt
from tcpclose.capture.session import CaptureResult
from tcpclose.facts import RunFacts
from tcpclose.model.packet import Flag
from tcpclose.render.facts_text import fact_rows
from tcpclose.render.labels import segment_label
from tcpclose.render.text import render_diagram

A, F, R, P = Flag.ACK, Flag.FIN, Flag.RST, Flag.PSH


@pytest.mark.parametrize("limit", [10, 16, 30, 40])
@pytest.mark.parametrize(("flags", "tail"), [(F | A, " + FIN"), (R | A, " + RST"),
                                             (F | R | A, " + FIN + RST")])  # fmt: skip
def test_a_flag_on_a_data_segment_survives_any_cut(flags: int, tail: str, limit: int) -> None:
    label = segment_label(pkt(0, "client", flags | P, b"x" * 5000), limit=limit)
    assert label.endswith(tail) and label.startswith("x")
    assert len(label) <= max(limit, len(tail) + 4)


def test_short_data_with_fin_is_written_whole() -> None:
    assert segment_label(pkt(0, "client", F | P | A, b"data1")) == "data1 + FIN"


def test_the_terminal_diagram_shows_a_fin_on_the_last_data_segment() -> None:
    conv = CONVERSATIONS["shutdown"]
    packets = list(conv.packets)
    packets[5] = pkt(300.0, "client", F | P | A, b"y" * 200)  # data2's bytes, then FIN
    text = render_diagram(type(conv)(conv.name, "", tuple(packets), conv.events,
                                     conv.expected).timeline())  # fmt: skip
    assert any(line.rstrip().endswith("+ FIN -->|") for line in text.splitlines())


def test_fact_rows_from_facts() -> None:
    conv = CONVERSATIONS["close-markup"]
    facts = RunFacts.of(conv.timeline())
    rows = dict(fact_rows(facts, CaptureResult("af_packet", None, (), conv.packets)))
    assert rows["answers"] == "0 of 2 delivered (lost: Hi, data1, Hi, data2)"
    assert rows["first FIN"] == "client at 15.0 ms, after close()"
    assert (
        rows["first RST"] == "client at 505.1 ms, after close(), in reply to Hi, <data1> & 'more'"
    )
    assert rows["signals"] == "server SIGPIPE"
    assert rows["capture"] == "af_packet, 9 packets"
    assert rows["termination"].startswith("rst-after-close (Zeek ")
