"""A lab run as one JSON-able dict (the `--json` contract of `tcpclose lab` and `demo`):
packets and events in the one shape of `tcpclose.model.jsonshape`, with its schema version."""

from __future__ import annotations

from typing import Any

from tcpclose.lab.runner import LabRun
from tcpclose.model.jsonshape import event_json, packets_json, versioned

__all__ = ["packets_json", "run_json"]


def run_json(run: LabRun) -> dict[str, Any]:
    client = run.client.to_json()
    client["received"] = run.received
    return versioned(
        {
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
            "events": [event_json(e, run.timeline.start) for e in run.events],
            "client": client,
            "server": run.server.to_json(),
            "verdicts": run.verdict.to_json(),
        }
    )
