"""Writing captured frames as a classic pcap file that Wireshark and tshark open."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import dpkt

from tcpclose.capture.frames import Frame
from tcpclose.errors import from_oserror
from tcpclose.render.pcap import pcap_bytes  # the pure writer; re-exported here

__all__ = ["pcap_bytes", "read_pcap_frames", "write_pcap"]


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
