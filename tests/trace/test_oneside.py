"""The verdict of a side traced alone, on timelines built by hand (pure): answers counted on
the wire's evidence only, the traced side's calls, and what the wire shows of the other."""

from __future__ import annotations

from tcpclose.facts import RunFacts
from tcpclose.model.event import AppEvent
from tcpclose.model.packet import Flag, Packet
from tcpclose.model.timeline import Timeline
from tcpclose.trace.oneside import client_only_conclusion, server_only_conclusion

CLIENT, SERVER = ("127.0.0.1", 40000), ("127.0.0.1", 5000)
T0 = 1_800_000_000.0


class Wire:
    """Packets of one connection, numbered as the kernel would."""

    def __init__(self) -> None:
        self.packets: list[Packet] = []
        self.seq = {CLIENT: 100, SERVER: 900}

    def send(self, ms: float, by: tuple[str, int], flags: Flag, data: bytes = b"") -> None:
        to = SERVER if by == CLIENT else CLIENT
        p = Packet(
            T0 + ms / 1000, by[0], by[1], to[0], to[1], int(flags), self.seq[by],
            self.seq[to], 512, len(data), data,
        )  # fmt: skip
        self.seq[by] += len(data) + bool(flags & (Flag.SYN | Flag.FIN))
        self.packets.append(p)


def handshake() -> Wire:
    wire = Wire()
    wire.send(0, CLIENT, Flag.SYN)
    wire.send(0.1, SERVER, Flag.SYN | Flag.ACK)
    wire.send(0.2, CLIENT, Flag.ACK)
    return wire


def facts_of(wire: Wire, events: list[AppEvent]) -> RunFacts:
    timeline = Timeline.build(wire.packets, events, server=SERVER, client=CLIENT)
    return RunFacts.of(timeline)


def server_events(*steps: tuple[float, str, dict[str, object]]) -> list[AppEvent]:
    return [AppEvent(int((T0 + ms / 1000) * 1e9), "server", kind, f) for ms, kind, f in steps]


def test_answers_are_counted_on_the_wire_evidence_only() -> None:
    wire = handshake()
    wire.send(1, CLIENT, Flag.PSH | Flag.ACK, b"data1")
    wire.send(2, CLIENT, Flag.PSH | Flag.ACK, b"data2")
    wire.send(3, CLIENT, Flag.PSH | Flag.ACK, b"data3")
    wire.send(4, SERVER, Flag.PSH | Flag.ACK, b"Hi, data1")  # acknowledged: reached its kernel
    wire.send(5, CLIENT, Flag.ACK)
    wire.send(6, CLIENT, Flag.FIN | Flag.ACK)
    wire.send(7, SERVER, Flag.PSH | Flag.ACK, b"Hi, data2")  # after the client closed
    wire.send(7.1, CLIENT, Flag.RST)  # ... its kernel refused it
    events = server_events(
        (1.1, "received", {"data": "data1"}),
        (4, "sent", {"data": "Hi, data1"}),
        (7, "sent", {"data": "Hi, data2"}),
        (8, "error", {"call": "sendto", "errno": "EPIPE"}),
    )
    text = server_only_conclusion(facts_of(wire, events), events)
    assert text == (
        "1 of 3 answers reached the client's kernel (Hi, data1), 2 lost: Hi, data2 (the "
        "client's kernel answered it with RST), Hi, data3 (never sent); the server (traced): "
        "read data1, sent Hi, data1, sent Hi, data2, sendto() failed with EPIPE; the wire "
        "shows the client (not traced): sent data1, sent data2, sent data3, FIN at 6.0 ms, its "
        "kernel answered Hi, data2 with RST"
    )


def test_another_protocol_has_no_answers_and_no_calls_of_the_client() -> None:
    wire = handshake()
    wire.send(1, CLIENT, Flag.PSH | Flag.ACK, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    wire.send(2, SERVER, Flag.PSH | Flag.ACK, b"HTTP/1.1 200 OK\r\n\r\n")
    wire.send(3, SERVER, Flag.FIN | Flag.ACK)
    events = server_events((1.5, "received", {"data": "GET / HTTP/1.1\r\nHost: x\r\n\r\n"}))
    text = server_only_conclusion(facts_of(wire, events), events)
    assert text == (
        "the server (traced): read GET / HTTP/1.1\\r\\nH…; the wire shows the client (not "
        "traced): sent GET / HTTP/1.1\\r\\nH…"
    )


def test_nothing_captured_says_so() -> None:
    events = server_events((1, "received", {"bytes": 5}))
    text = server_only_conclusion(facts_of(Wire(), events), events)
    assert text == (
        "the server (traced): read 5 bytes; the client (not traced): no packets captured, "
        "nothing known of it"
    )


def test_a_client_traced_alone_says_the_servers_fin_as_the_wire_shows_it() -> None:
    wire = handshake()
    wire.send(12.5, SERVER, Flag.FIN | Flag.ACK)
    lab = "all 2 answers delivered: ...; then the server read EOF, exited, and its kernel sent FIN"
    assert client_only_conclusion(lab, facts_of(wire, [])) == (
        "all 2 answers delivered: ...; the wire shows the server (not traced) sent FIN at 12.5 ms"
    )
    assert client_only_conclusion("the answer was lost", facts_of(wire, [])) == (
        "the answer was lost"
    )
