"""Hand-made timelines for renderer tests: the lesson's two experiments, packet by packet."""

from __future__ import annotations

from tcpclose.model.event import AppEvent
from tcpclose.model.packet import Flag, Packet
from tcpclose.model.timeline import Timeline

T0 = 1_700_000_000.0
CLIENT = ("127.0.0.1", 50000)
SERVER = ("127.0.0.1", 43211)


def _pkt(ms: float, sender: str, flags: Flag, data: bytes = b"", seq: int = 0) -> Packet:
    src, dst = (CLIENT, SERVER) if sender == "client" else (SERVER, CLIENT)
    return Packet(
        T0 + ms / 1000, src[0], src[1], dst[0], dst[1], int(flags), seq, 0, 65535, len(data), data
    )


def _ev(ms: float, role: str, name: str, **fields: object) -> AppEvent:
    return AppEvent(int((T0 + ms / 1000) * 1e9), role, name, dict(fields))


A, S, F, R, P = Flag.ACK, Flag.SYN, Flag.FIN, Flag.RST, Flag.PSH


def close_experiment() -> Timeline:
    packets = [
        _pkt(0.0, "client", S),
        _pkt(0.1, "server", S | A),
        _pkt(0.2, "client", A),
        _pkt(100.0, "client", P | A, b"data1"),
        _pkt(100.1, "server", A),
        _pkt(200.0, "client", P | A, b"data2"),
        _pkt(200.1, "server", A),
        _pkt(300.0, "client", F | A),
        _pkt(300.1, "server", A),
        _pkt(600.0, "server", P | A, b"Hi, data1"),
        _pkt(600.1, "client", R),
    ]
    events = [
        _ev(0.3, "client", "connected"),
        _ev(0.3, "server", "accepted"),
        _ev(100.2, "server", "received", bytes=5, data="data1"),
        _ev(300.05, "client", "close"),
        _ev(600.2, "server", "sent", bytes=9, data="Hi, data1"),
        _ev(600.3, "server", "received", bytes=5, data="data2"),
        _ev(1100.0, "server", "killed", signal="SIGPIPE"),
    ]
    return Timeline.build(packets, events, server=SERVER, start=T0)


def shutdown_experiment() -> Timeline:
    packets = [
        _pkt(0.0, "client", S),
        _pkt(0.1, "server", S | A),
        _pkt(0.2, "client", A),
        _pkt(100.0, "client", P | A, b"data1"),
        _pkt(200.0, "client", P | A, b"data2"),
        _pkt(300.0, "client", F | A),
        _pkt(600.0, "server", P | A, b"Hi, data1"),
        _pkt(600.1, "client", A),
        _pkt(1100.0, "server", P | A, b"Hi, data2"),
        _pkt(1100.1, "client", A),
        _pkt(1100.5, "server", F | A),
        _pkt(1100.6, "client", A),
    ]
    events = [
        _ev(300.05, "client", "shutdown", how="SHUT_WR", reason="command"),
        _ev(600.2, "client", "received", bytes=9, data="Hi, data1"),
        _ev(1100.2, "client", "received", bytes=9, data="Hi, data2"),
        _ev(1100.4, "server", "eof"),
        _ev(1100.7, "client", "eof"),
        _ev(1100.8, "client", "exit", status=1),
    ]
    return Timeline.build(packets, events, server=SERVER, start=T0)
