"""Frames of other link types than Ethernet: the cooked headers of `tcpdump -i any` (LINUX_SLL
and LINUX_SLL2), raw IP (a tun device, an IP tunnel, AF_PACKET's SOCK_DGRAM) and BSD loopback
become Ethernet frames that decode to the same packet; what cannot be decoded is None."""

from __future__ import annotations

import socket
import struct

import dpkt
import pytest

from tcpclose.capture.frames import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    PACKET_OUTGOING,
    Frame,
    once_per_packet,
    parse_frame,
    to_ethernet,
)
from tcpclose.trace.capture import frame_ports


def ipv4_segment(payload: bytes = b"Hi, data1") -> bytes:
    tcp = dpkt.tcp.TCP(sport=43211, dport=50412, seq=7, ack=9, flags=0x18, win=512)
    tcp.data = payload
    ip = dpkt.ip.IP(src=socket.inet_aton("10.9.0.1"), dst=socket.inet_aton("10.9.0.2"), p=6)
    ip.data = tcp
    ip.len = 20 + len(bytes(tcp))
    return bytes(ip)


def ipv6_segment() -> bytes:
    tcp = dpkt.tcp.TCP(sport=80, dport=35705, seq=1, ack=2, flags=0x11, win=512)
    ip = dpkt.ip6.IP6(
        src=socket.inet_pton(socket.AF_INET6, "fd00::1"),
        dst=socket.inet_pton(socket.AF_INET6, "fd00::2"),
        nxt=6,
        hlim=64,
    )
    ip.data = tcp
    ip.plen = len(bytes(tcp))
    return bytes(ip)


def sll(packet: bytes, pkttype: int = 0, protocol: int = 0x0800) -> bytes:
    """struct sll_header: pkttype, hatype, halen, address[8], protocol (network order)."""
    return struct.pack("!HHH8sH", pkttype, 1, 6, b"\x02" * 6 + b"\0\0", protocol) + packet


def sll2(packet: bytes, ifindex: int, pkttype: int = 0, protocol: int = 0x0800) -> bytes:
    """struct sll2_header: protocol, reserved, ifindex, hatype, pkttype, halen, address[8]."""
    return struct.pack("!HHIHBB8s", protocol, 0, ifindex, 1, pkttype, 6, b"\x02" * 8) + packet


def decoded(link_type: int, data: bytes) -> tuple[str, int, str, int, str, bytes]:
    unframed = to_ethernet(link_type, data)
    assert unframed is not None
    packet = parse_frame(Frame(1, unframed.data))
    assert packet is not None
    return (packet.src, packet.sport, packet.dst, packet.dport, packet.letters, packet.payload)


EXPECTED_V4 = ("10.9.0.1", 43211, "10.9.0.2", 50412, "PA", b"Hi, data1")


@pytest.mark.parametrize(
    ("link_type", "data"),
    [
        (LINKTYPE_RAW, ipv4_segment()),
        (LINKTYPE_IPV4, ipv4_segment()),
        (12, ipv4_segment()),  # DLT_RAW as some libpcap builds write it
        (LINKTYPE_LINUX_SLL, sll(ipv4_segment())),
        (LINKTYPE_LINUX_SLL2, sll2(ipv4_segment(), ifindex=7)),
        (LINKTYPE_NULL, struct.pack("<I", 2) + ipv4_segment()),  # little-endian writer
        (LINKTYPE_NULL, struct.pack(">I", 2) + ipv4_segment()),  # big-endian writer
        (LINKTYPE_ETHERNET, bytes(12) + b"\x08\x00" + ipv4_segment()),
    ],
)
def test_every_link_type_decodes_to_the_same_ipv4_packet(link_type: int, data: bytes) -> None:
    assert decoded(link_type, data) == EXPECTED_V4


def test_ipv6_raw_and_cooked() -> None:
    expected = ("fd00::1", 80, "fd00::2", 35705, "FA", b"")
    assert decoded(LINKTYPE_RAW, ipv6_segment()) == expected
    assert decoded(LINKTYPE_IPV6, ipv6_segment()) == expected
    assert decoded(LINKTYPE_LINUX_SLL2, sll2(ipv6_segment(), 1, protocol=0x86DD)) == expected


def test_cooked_headers_say_direction_and_interface() -> None:
    out = to_ethernet(LINKTYPE_LINUX_SLL2, sll2(ipv4_segment(), 1, pkttype=PACKET_OUTGOING))
    assert out is not None and out.outgoing and out.ifindex == 1
    inbound = to_ethernet(LINKTYPE_LINUX_SLL, sll(ipv4_segment(), pkttype=0))
    assert inbound is not None and not inbound.outgoing and inbound.ifindex is None
    # the Ethernet form is what the trace's port filter reads
    assert frame_ports(out.data) == (43211, 50412)


@pytest.mark.parametrize(
    ("link_type", "data"),
    [
        (LINKTYPE_RAW, b""),  # empty
        (LINKTYPE_RAW, b"\x50" + bytes(30)),  # IP version 5
        (LINKTYPE_LINUX_SLL, b"\0" * 10),  # shorter than its header
        (LINKTYPE_LINUX_SLL2, b"\0" * 19),
        (LINKTYPE_NULL, struct.pack("<I", 7) + ipv4_segment()),  # not an IP family
        (147, ipv4_segment()),  # LINKTYPE_USER0: nobody knows what it holds
        (9, ipv4_segment()),  # LINKTYPE_PPP: not read (PPP has its own header)
    ],
)
def test_what_cannot_be_decoded_is_none(link_type: int, data: bytes) -> None:
    assert to_ethernet(link_type, data) is None


def test_cooked_arp_is_not_a_packet() -> None:
    """A cooked frame of another protocol becomes an Ethernet frame that parse_frame skips."""
    unframed = to_ethernet(LINKTYPE_LINUX_SLL2, sll2(b"\0" * 28, 2, protocol=0x0806))
    assert unframed is not None
    assert parse_frame(Frame(1, unframed.data)) is None


def _ethernet(packet: bytes, mac: bytes = b"\x02" * 6) -> bytes:
    return mac + mac + b"\x08\x00" + packet


def test_a_packet_seen_on_two_interfaces_counts_once() -> None:
    """A bridge and its port both see a packet, with the same bytes, microseconds apart."""
    ip = ipv4_segment()
    seen: list[tuple[Frame, object]] = [
        (Frame(1_000_000, _ethernet(ip)), "veth0"),
        (Frame(1_000_050, _ethernet(ip)), "br0"),  # the bridge's copy
        (Frame(1_000_900, bytes(12) + b"\x08\x00" + ip), "tun0"),  # cooked: other header
        (Frame(9_000_000, _ethernet(ip)), "br0"),  # 8 ms later: another packet
        (Frame(9_000_010, _ethernet(ip)), "br0"),  # the same interface: kept
    ]
    kept = once_per_packet(reversed(seen))  # in any order: by time
    assert [f.t_ns for f in kept] == [1_000_000, 9_000_000, 9_000_010]
    other = ipv4_segment(b"Hi, data2")
    both = once_per_packet([(Frame(1, _ethernet(ip)), "a"), (Frame(2, _ethernet(other)), "b")])
    assert len(both) == 2
