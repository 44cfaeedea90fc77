"""Writing captured frames as a classic pcap file that Wireshark and tshark open."""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path

import dpkt

from tcpclose.capture.frames import Frame
from tcpclose.errors import from_oserror


def pcap_bytes(frames: Iterable[Frame]) -> bytes:
    """Ethernet frames as the bytes of a classic pcap file, nanosecond timestamps."""
    out = io.BytesIO()
    writer = dpkt.pcap.Writer(out, snaplen=262144, linktype=dpkt.pcap.DLT_EN10MB, nano=True)
    for frame in frames:
        writer.writepkt(frame.data, ts=frame.t_ns / 1e9)
    return out.getvalue()


def write_pcap(path: str | Path, frames: Iterable[Frame]) -> int:
    """Write the frames as a pcap file; returns how many were written."""
    frames = list(frames)
    try:
        Path(path).write_bytes(pcap_bytes(frames))
    except OSError as exc:
        raise from_oserror(exc, f"cannot write {path}", on_file=True) from exc
    return len(frames)


def read_pcap_frames(path: str | Path) -> list[Frame]:
    """Read back an Ethernet pcap (as written by `write_pcap`, or by tcpdump on `lo`)."""
    with open(path, "rb") as f:
        # dpkt yields a Decimal for nanosecond files and a float for microsecond ones.
        return [Frame(int(ts * 1_000_000_000), bytes(buf)) for ts, buf in dpkt.pcap.Reader(f)]
