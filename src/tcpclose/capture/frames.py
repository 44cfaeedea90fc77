"""Link-layer frames as captured, and their decoding into `Packet`s (with dpkt)."""

from __future__ import annotations

import socket
from typing import NamedTuple

import dpkt

from tcpclose.model.packet import Packet


class Frame(NamedTuple):
    """One captured Ethernet-framed packet with its kernel timestamp (ns since the epoch)."""

    t_ns: int
    data: bytes


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
