"""The probe's packet facts are read from the shared facts layer (RunFacts, the probe as the
client), not computed from the packets a second time: both say the same thing."""

from __future__ import annotations

from tcpclose.facts import SegmentKind
from tcpclose.model.packet import Flag, Packet
from tcpclose.model.timeline import Role
from tcpclose.probe.facts import packet_facts

US, PEER = ("127.0.0.1", 40000), ("127.0.0.1", 8080)
A, S, F, P, R = Flag.ACK, Flag.SYN, Flag.FIN, Flag.PSH, Flag.RST


def pkt(t: float, ours: bool, flags: Flag, seq: int, ack: int, length: int = 0) -> Packet:
    src, dst = (US, PEER) if ours else (PEER, US)
    return Packet(t, src[0], src[1], dst[0], dst[1], int(flags), seq, ack, 65535, length)


def test_packet_facts_agree_with_the_run_facts_they_extend() -> None:
    packets = [
        pkt(0.0, True, S, 100, 0),
        pkt(0.001, False, S | A, 500, 101),
        pkt(0.01, True, P | A | F, 101, 501, 10),  # the request and our FIN in one segment
        pkt(0.02, False, P | A, 501, 112, 20),
        pkt(0.03, False, F | A, 521, 112),
        pkt(0.04, True, R, 112, 0),
    ]
    pk = packet_facts(packets, US, PEER)
    run = pk.run
    assert run is not None and len(run.segments) == pk.packets == 6
    ours, theirs = run.first_end(Role.CLIENT), run.first_end(Role.SERVER)
    assert ours is not None and ours.packet.t == pk.our_close_t and pk.our_close == "FIN"
    assert theirs is not None and theirs.packet.t == pk.peer_fin_t == pk.peer_end_t
    our_rst = run.first_with("rst", by=Role.CLIENT)
    assert our_rst is not None and our_rst.packet.t == pk.our_rst_t == 0.04
    assert pk.first_closer == run.segments[2].by.value == "client"
    data = sum(w.packet.length for w in run.wire(SegmentKind.DATA, Role.SERVER))
    assert pk.peer_bytes == pk.peer_bytes_after_our_close == data == 20
    assert pk.fin_with_request and pk.half_close_exercised
    assert run.termination is not None  # the shared classifier's verdict comes with them
