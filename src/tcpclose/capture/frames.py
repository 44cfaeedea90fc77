"""Link-layer frames as captured, and their decoding into `Packet`s (with dpkt).

Every frame the project keeps is Ethernet-framed (the loopback interface's framing, and what the
pcap writer declares). A capture that meets another link type turns its frames into Ethernet
ones first (`to_ethernet`): Linux "cooked" headers (LINUX_SLL, from `tcpdump -i any`;
LINUX_SLL2, which also names the interface), raw IP (a tun device, an IP tunnel, a packet
socket of type SOCK_DGRAM) and BSD loopback (NULL) become a 14-byte Ethernet header with zero
MACs and the same EtherType. Anything else is reported as skipped, never guessed at.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from typing import NamedTuple

import dpkt

from tcpclose.model.packet import Packet

#: pcap link types (LINKTYPE_* of the pcap format) a capture may meet
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
#: DLT_RAW as some libpcap builds write it in a file header (OpenBSD 14, others 12)
_DLT_RAW_ALIASES = (12, 14)
LINK_NAMES = {
    LINKTYPE_NULL: "NULL",
    LINKTYPE_ETHERNET: "EN10MB",
    LINKTYPE_RAW: "RAW",
    LINKTYPE_LINUX_SLL: "LINUX_SLL",
    LINKTYPE_IPV4: "IPV4",
    LINKTYPE_IPV6: "IPV6",
    LINKTYPE_LINUX_SLL2: "LINUX_SLL2",
}
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
#: sockaddr_ll.sll_pkttype (and the cooked headers' packet type) of a copy we sent
PACKET_OUTGOING = 4
_NULL_FAMILIES = {2: ETH_P_IP, 10: ETH_P_IPV6, 24: ETH_P_IPV6, 28: ETH_P_IPV6, 30: ETH_P_IPV6}


class Frame(NamedTuple):
    """One captured Ethernet-framed packet with its kernel timestamp (ns since the epoch)."""

    t_ns: int
    data: bytes


class Unframed(NamedTuple):
    """A frame of another link type, as Ethernet, with what its own header said."""

    data: bytes  #: Ethernet-framed (zero MACs unless it was Ethernet already)
    outgoing: bool  #: the cooked header said PACKET_OUTGOING (a copy of a packet sent)
    ifindex: int | None  #: the interface (LINUX_SLL2 only)


def link_name(link_type: int) -> str:
    return LINK_NAMES.get(link_type, f"link type {link_type}")


def ethernet_header(ethertype: int) -> bytes:
    """A 14-byte Ethernet header with zero MACs, as the loopback interface writes them."""
    return bytes(12) + ethertype.to_bytes(2, "big")


def ip_ethertype(packet: bytes) -> int | None:
    """The EtherType of a raw IP packet, from its version nibble; None if it is not IP."""
    if not packet:
        return None
    version = packet[0] >> 4
    return ETH_P_IP if version == 4 else ETH_P_IPV6 if version == 6 else None


def to_ethernet(link_type: int, data: bytes) -> Unframed | None:
    """The frame as Ethernet; None for a link type this does not know or a frame too short."""
    if link_type == LINKTYPE_ETHERNET:
        return Unframed(data, False, None)
    if link_type in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6, *_DLT_RAW_ALIASES):
        ethertype = ip_ethertype(data)
        if ethertype is None:
            return None
        return Unframed(ethernet_header(ethertype) + data, False, None)
    if link_type == LINKTYPE_LINUX_SLL:
        # pkttype(2) hatype(2) halen(2) address(8) protocol(2)
        if len(data) < 16:
            return None
        pkttype = int.from_bytes(data[0:2], "big")
        return Unframed(bytes(12) + data[14:], pkttype == PACKET_OUTGOING, None)
    if link_type == LINKTYPE_LINUX_SLL2:
        # protocol(2) reserved(2) ifindex(4) hatype(2) pkttype(1) halen(1) address(8)
        if len(data) < 20:
            return None
        ifindex = int.from_bytes(data[4:8], "big")
        return Unframed(bytes(12) + data[0:2] + data[20:], data[10] == PACKET_OUTGOING, ifindex)
    if link_type == LINKTYPE_NULL:
        # the address family, in the byte order of the machine that wrote it
        if len(data) < 4:
            return None
        family = data[0] if data[0] else data[3]
        ethertype = _NULL_FAMILIES.get(family)
        if ethertype is None:
            return None
        return Unframed(ethernet_header(ethertype) + data[4:], False, None)
    return None


def parse_frame(frame: Frame) -> Packet | None:
    """Decode an Ethernet frame carrying TCP over IPv4/IPv6; None for anything else."""
    try:
        eth = dpkt.ethernet.Ethernet(frame.data)
    except (dpkt.UnpackError, ValueError):
        return None
    ip = eth.data
    if isinstance(ip, dpkt.ip.IP):
        family = socket.AF_INET
    elif isinstance(ip, dpkt.ip6.IP6):
        family = socket.AF_INET6
    else:
        return None
    tcp = ip.data
    if not isinstance(tcp, dpkt.tcp.TCP):
        return None
    payload = bytes(tcp.data)
    if family == socket.AF_INET:
        # IP total length tells the payload length even if the capture was cut short.
        length = ip.len - ip.hl * 4 - tcp.off * 4
    else:
        length = ip.plen - tcp.off * 4
    return Packet(
        t=frame.t_ns / 1e9,
        src=socket.inet_ntop(family, ip.src),
        sport=tcp.sport,
        dst=socket.inet_ntop(family, ip.dst),
        dport=tcp.dport,
        flags=tcp.flags,
        seq=tcp.seq,
        ack=tcp.ack,
        win=tcp.win,
        length=max(length, len(payload)),
        payload=payload,
    )


#: a packet seen on two interfaces (a bridge and its port, a bond and its slave) is the same
#: packet when its bytes from the IP header on are equal and it was seen this close in time
SAME_PACKET_NS = 1_000_000


def once_per_packet(seen: Iterable[tuple[Frame, object]]) -> list[Frame]:
    """Frames in time order, each packet once: a frame whose IP packet, byte for byte, was
    already seen on another interface (the second item) within SAME_PACKET_NS is a copy of it.
    On one interface identical frames are kept (a retransmission is another packet)."""
    kept: list[Frame] = []
    last: dict[int, tuple[int, object]] = {}
    for frame, interface in sorted(seen, key=lambda pair: pair[0].t_ns):
        key = hash(frame.data[14:])
        before = last.get(key)
        if (
            before is not None
            and before[1] != interface
            and frame.t_ns - before[0] <= SAME_PACKET_NS
        ):
            continue
        last[key] = (frame.t_ns, interface)
        kept.append(frame)
    return kept
