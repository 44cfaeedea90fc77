"""Other loopback traffic that happens to use a run's port number stays out of its timeline.

The capture filter names ports only. Seen on a shared machine (another job driving 80,000
connections through loopback from random 127.x addresses): a client's ephemeral port equal to
the lab server's port put a foreign connection in the run, and judging it raised ValueError
(a traceback from `tcpclose lab`). Here the foreign connection is made on purpose, from
127.0.0.2 with the server's port number as its source port, while the run captures.
"""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tcpclose.lab.processes import allow_children
from tcpclose.lab.runner import run_scenario
from tcpclose.lab.scenarios import CATALOG
from tcpclose.model.event import read_events

#: slow enough that the foreign exchange (milliseconds) happens long before the run ends:
#: the server answers 2.5 s after each message
SPEED = 0.5
WAIT = 60.0


def server_port(tmp: Path, deadline: float) -> int:
    """The port the run's server logged as `listening`, once the client logged `connected`
    (the capture is in place before the client starts)."""
    while time.monotonic() < deadline:
        for path in tmp.glob("tcpclose-lab-*/events.jsonl"):
            try:
                events = read_events(path)
            except (OSError, ValueError):
                continue
            ports = [int(e.get("port")) for e in events if e.event == "listening"]
            if ports and any(e.event == "connected" for e in events):
                return ports[0]
        time.sleep(0.005)
    raise AssertionError("the run's client never logged connected")


def foreign_exchange(port: int) -> None:
    """A whole connection from 127.0.0.2:PORT to a listener of ours on 127.0.0.1."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        with socket.socket() as client:
            client.bind(("127.0.0.2", port))
            client.connect(listener.getsockname())
            conn, _ = listener.accept()
            with conn:
                client.sendall(b"foreign")
                assert conn.recv(16) == b"foreign"
                client.shutdown(socket.SHUT_WR)
                assert conn.recv(16) == b""


def test_a_foreign_connection_on_the_same_port_number_is_not_part_of_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    scenario = next(s for s in CATALOG if s.name == "close")
    failures: list[BaseException] = []

    def inject() -> None:
        try:
            foreign_exchange(server_port(tmp_path, time.monotonic() + WAIT))
        except BaseException as exc:  # reported by the test below
            failures.append(exc)

    injector = threading.Thread(target=inject, daemon=True)
    injector.start()
    allow_children()
    run = run_scenario(scenario, speed=SPEED)
    injector.join(WAIT)
    assert failures == []
    captured = {p.src for p in run.capture.packets}
    if run.capture.available:
        assert "127.0.0.2" in captured, "the foreign connection was not captured: no test"
    on_the_timeline = {e.packet.src for e in run.timeline.segments}
    assert on_the_timeline == {"127.0.0.1"}
    assert len(run.verdict.answers_lost) == 2, run.verdict
