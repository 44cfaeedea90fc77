"""A lab run as one JSON-able dict (the `--json` contract of `tcpclose lab` and `demo`)."""

from __future__ import annotations

from typing import Any

from tcpclose.lab.runner import LabRun
from tcpclose.model.timeline import Timeline


def packets_json(timeline: Timeline) -> list[dict[str, Any]]:
    """Each packet: `t` seconds from the start, `from` client|server, `flags` letters S F R P A,
    `len`, `seq`/`ack` (absolute), `data` as text when printable, else null."""
    return [
        {
            "t": round(s.t, 6),
            "from": s.sender.value,
            "flags": s.packet.letters,
            "len": s.packet.length,
            "seq": s.packet.seq,
            "ack": s.packet.ack,
            "data": s.packet.text(limit=200),
        }
        for s in timeline.segments
    ]


def run_json(run: LabRun) -> dict[str, Any]:
    client = run.client.to_json()
    client["received"] = run.received
    return {
        "scenario": run.scenario.name,
        "summary": run.scenario.summary,
        "question": run.scenario.question,
        "speed": run.speed,
        "capture": {
            "method": run.capture.method,
            "note": run.capture.note,
            "packets": len(run.capture.packets),
            "dropped": run.capture.dropped,
        },
        "packets": packets_json(run.timeline),
        "events": [{"t": round(e.t - run.timeline.start, 6), **e.to_json()} for e in run.events],
        "client": client,
        "server": run.server.to_json(),
        "verdicts": run.verdict.to_json(),
    }
