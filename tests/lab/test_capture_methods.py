"""The lab's capture fallbacks: tcpdump when AF_PACKET is not to be had, or none at all.
(Dropping CAP_NET_RAW for real is in tests/capture/test_live.py.)"""

from __future__ import annotations

import shutil

import pytest

from tcpclose.lab.runner import LabRun, run_scenario
from tcpclose.lab.scenarios import BY_NAME
from tcpclose.render.labels import segment_kind, segment_label


def telling(run: LabRun) -> list[tuple[str, str, str]]:
    return [
        (s.sender.value, segment_kind(s.packet), segment_label(s.packet))
        for s in run.timeline.segments
        if segment_kind(s.packet) != "ack"
    ]


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump is not installed")
def test_tcpdump_fallback_gives_the_same_verdict(catalog_runs: dict[str, LabRun]) -> None:
    run = run_scenario(BY_NAME["close"], capture_methods=("tcpdump",))
    live = catalog_runs["close"]
    assert run.capture.method == "tcpdump" and run.capture.note is None
    # Every segment but pure ACKs (their number depends on delayed-ACK timing).
    assert telling(run) == telling(live)
    assert run.verdict.termination == live.verdict.termination == "rst-after-close"
    assert run.verdict.conclusion == live.verdict.conclusion


def test_without_any_capture_the_events_still_tell_the_story() -> None:
    run = run_scenario(BY_NAME["shutdown"], capture_methods=())
    assert run.capture.method == "none" and run.timeline.segments == ()
    assert run.verdict.answers_delivered == ("Hi, data1", "Hi, data2")
    assert run.verdict.termination is None
    assert run.verdict.conclusion.endswith("(no packets captured: socket-level evidence only)")
