"""An IP packet framed for each link type the analyser reads (hand-built captures)."""

from __future__ import annotations

import struct


def framed(linktype: int, ip: bytes, tags: int = 0) -> bytes:
    """`ip` (IPv4 or IPv6, by its version) on a link of this type: Ethernet (1) with `tags`
    VLAN tags (an 802.1Q one, then 802.1ad), Linux cooked v1 (113) or v2 (276), BSD loopback
    (0), else raw IP."""
    version6 = ip[0] >> 4 == 6
    if linktype == 1:
        vlans = b"".join(struct.pack("!HH", 0x88A8 if i else 0x8100, 7) for i in range(tags))
        return b"\0" * 12 + vlans + (b"\x86\xdd" if version6 else b"\x08\x00") + ip
    proto = 0x86DD if version6 else 0x0800
    if linktype == 113:
        return struct.pack("!HHH8sH", 0, 772, 6, b"\0" * 8, proto) + ip
    if linktype == 276:
        return struct.pack("!HHIHBB8s", proto, 0, 1, 772, 0, 6, b"\0" * 8) + ip
    if linktype == 0:
        return struct.pack("<I", 30 if version6 else 2) + ip
    return ip
