"""Captured frames as the bytes of a classic pcap file that Wireshark and tshark open (pure)."""

from __future__ import annotations

import io
from collections.abc import Iterable

import dpkt

from tcpclose.render.views import FrameView


def pcap_bytes(frames: Iterable[FrameView]) -> bytes:
    """Ethernet frames as the bytes of a classic pcap file, nanosecond timestamps."""
    out = io.BytesIO()
    writer = dpkt.pcap.Writer(out, snaplen=262144, linktype=dpkt.pcap.DLT_EN10MB, nano=True)
    for frame in frames:
        writer.writepkt(frame.data, ts=frame.t_ns / 1e9)
    return out.getvalue()
