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
from tcpclose.lab.runner import _of_the_run, run_scenario
from tcpclose.lab.scenarios import CATALOG
from tcpclose.model.event import AppEvent, read_events
from tcpclose.model.packet import Flag, Packet

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


def _packet(t: float, src: tuple[str, int], dst: tuple[str, int], flags: int) -> Packet:
    return Packet(t, *src, *dst, flags, 1, 0, 65535, 0)


SERVER = ("127.0.0.1", 43401)
EARLIER = ("127.0.0.1", 39140)  # a connection left over from an earlier run on that port
CLIENT = ("127.0.0.1", 39142)


@pytest.mark.parametrize("logged_port", [True, False])
def test_only_the_clients_own_connection_to_the_server_reaches_the_timeline(
    logged_port: bool,
) -> None:
    syn, fin_ack = int(Flag.SYN), int(Flag.FIN | Flag.ACK)
    packets = [
        _packet(10.000, EARLIER, SERVER, fin_ack),  # the earlier connection's last segments
        _packet(10.001, CLIENT, SERVER, syn),
        _packet(10.002, SERVER, EARLIER, int(Flag.RST)),
        _packet(10.003, SERVER, CLIENT, int(Flag.SYN | Flag.ACK)),
        _packet(10.004, CLIENT, SERVER, int(Flag.ACK)),
        _packet(10.5, CLIENT, SERVER, fin_ack),
    ]
    fields = {"local_port": CLIENT[1]} if logged_port else {"text": "connect()"}
    events = [AppEvent(int(10.004 * 1e9), "client", "connected", fields)]
    kept = _of_the_run(packets, SERVER, events)
    assert {p.src_endpoint for p in kept} | {p.dst_endpoint for p in kept} == {CLIENT, SERVER}
    assert len(kept) == 4
