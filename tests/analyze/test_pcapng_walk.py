"""pcapng files through the compiled block walk (`_fastscan.walk_ng`) give the Python walk's
rows, counts and warnings: sections of either byte order, interfaces of several link types,
time resolutions and offsets, every packet block type, blocks the analyser skips, blocks cut
by the reader's chunk boundaries, and corrupt blocks (a bad length or byte order, a block
over the reader's limit) anywhere in the file."""

from __future__ import annotations

import struct
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_fast_path import MODES, conversation_frames, ethernet, handshake_then, run_both

from tcpclose.analyze import capfile
from tcpclose.analyze.compiled import fastscan
from tcpclose.analyze.reading import Analysis, read_rows

#: (link type, how an IPv4 packet is framed on it)
LINKS = {
    1: ethernet,
    101: lambda ip: ip,
    113: lambda ip: struct.pack("!HHH8sH", 0, 772, 6, b"\0" * 8, 0x0800) + ip,
    276: lambda ip: struct.pack("!HHIHBB8s", 0x0800, 0, 1, 772, 0, 6, b"\0" * 8) + ip,
    0: lambda ip: struct.pack("<I", 2) + ip,
}

#: if_tsresol option values: none (microseconds), 10**-9, 10**-3, 2**-20
RESOLUTIONS = [None, 9, 3, 0x80 | 20]
#: if_tsoffset option values (seconds), or none
OFFSETS = [None, 0, 1_000_000_000, -7]


def block(endian: str, btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    length = 12 + len(body)
    return struct.pack(endian + "II", btype, length) + body + struct.pack(endian + "I", length)


def section_header(endian: str) -> bytes:
    return block(endian, 0x0A0D0D0A, struct.pack(endian + "IHHq", 0x1A2B3C4D, 1, 0, -1))


def interface(endian: str, linktype: int, resolution: int | None, offset: int | None) -> bytes:
    options = b""
    if resolution is not None:
        options += struct.pack(endian + "HHB3x", 9, 1, resolution)
    if offset is not None:
        options += struct.pack(endian + "HHq", 14, 8, offset)
    if options:
        options += struct.pack(endian + "HH", 0, 0)
    return block(endian, 1, struct.pack(endian + "HHI", linktype, 0, 262144) + options)


def units(t: float, resolution: int | None, offset: int | None) -> int:
    per_second = (
        10**6
        if resolution is None
        else 2 ** (resolution & 0x7F)
        if resolution & 0x80
        else 10 ** (resolution & 0x7F)
    )
    return max(0, round((t - (offset or 0)) * per_second))


def packet_block(
    endian: str, kind: str, iface: int, count: int, data: bytes, overrun: bool
) -> bytes:
    caplen = len(data) + (1000 if overrun else 0)
    if kind == "epb":
        head = struct.pack(
            endian + "IIIII", iface, count >> 32, count & 0xFFFFFFFF, caplen, len(data)
        )
        return block(endian, 6, head + data)
    if kind == "pb":
        head = struct.pack(
            endian + "HHIIII", iface, 0, count >> 32, count & 0xFFFFFFFF, caplen, len(data)
        )
        return block(endian, 2, head + data)
    return block(endian, 3, struct.pack(endian + "I", len(data)) + data)  # spb


def pcap_to_pcapng(data: bytes) -> bytes:
    """A little-endian microsecond pcap file as pcapng: one section, one interface of the
    pcap's link type (microseconds), one enhanced packet block per record."""
    (linktype,) = struct.unpack_from("<I", data, 20)
    out = [section_header("<"), interface("<", linktype, None, None)]
    pos = 24
    while pos + 16 <= len(data):
        sec, usec, incl, _ = struct.unpack_from("<IIII", data, pos)
        frame = data[pos + 16 : pos + 16 + incl]
        out.append(packet_block("<", "epb", 0, sec * 10**6 + usec, frame, False))
        pos += 16 + incl
    return b"".join(out)


PLAN = st.lists(
    st.tuples(
        st.sampled_from("<>"),  # a section's byte order
        st.lists(  # its interfaces
            st.tuples(
                st.sampled_from(sorted(LINKS)),
                st.sampled_from(RESOLUTIONS),
                st.sampled_from(OFFSETS),
            ),
            min_size=1,
            max_size=3,
        ),
        st.lists(  # its blocks: (kind, interface index (may be unknown), caplen overrun)
            st.tuples(
                st.sampled_from(
                    ["epb"] * 12
                    + ["spb", "pb", "nrb", "isb", "custom", "idb"]
                    + ["bad-length", "bad-bom", "huge"]  # corrupt from there on
                ),
                st.integers(0, 3),
                st.integers(0, 30).map(lambda i: i == 0),
            ),
            max_size=40,
        ),
    ),
    min_size=1,
    max_size=3,
)


def build(plan: list, frames: list[tuple[float, bytes, bool]]) -> bytes:
    """A pcapng file that carries `frames` in order through the blocks of `plan`."""
    out: list[bytes] = []
    queue = list(frames)
    for endian, ifaces, blocks in plan:
        out.append(section_header(endian))
        described = list(ifaces)
        out.extend(interface(endian, *i) for i in ifaces)
        for kind, index, overrun in blocks:
            if kind == "nrb":
                out.append(block(endian, 4, b"\1\0\x08\0" + b"\x7f\0\0\1" + b"lo\0\0" + b"\0" * 4))
            elif kind == "isb":
                out.append(block(endian, 5, struct.pack(endian + "III", 0, 0, 0)))
            elif kind == "custom":
                out.append(block(endian, 0x40000BAD, struct.pack(endian + "I", 32473) + b"x"))
            elif kind == "idb":
                described.append((1, 9, None))
                out.append(interface(endian, 1, 9, None))
            elif kind == "bad-length":  # not a multiple of 4
                out.append(struct.pack(endian + "II", 6, 42) + b"\0" * 34)
            elif kind == "bad-bom":  # a section header of neither byte order
                out.append(b"\x0a\x0d\x0d\x0a" + struct.pack("<I", 28) + b"\x11" * 20)
            elif kind == "huge":  # a block longer than the reader takes for a packet
                out.append(struct.pack(endian + "II", 6, (1 << 24) + 4) + b"\0" * 64)
            elif queue:
                t, ip, _ = queue.pop(0)
                # an unknown interface index is kept: the reader must skip that block
                linktype, resolution, offset = described[min(index, len(described) - 1)]
                data = LINKS[linktype](ip)
                count = units(t, resolution, offset)
                out.append(packet_block(endian, kind, index, count, data, overrun))
    return b"".join(out)


@pytest.mark.skipif(fastscan is None, reason="the compiled walk is not built")
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(plan=PLAN, chunk=st.sampled_from([capfile.CHUNK, 64, 301]), cut=st.integers(0, 40))
def test_generated_pcapng_files(
    plan: list, chunk: int, cut: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    segments = handshake_then([(True, 0x18, 0, 0, 512, 5, 0.01), (False, 0x11, 0, 5, 512, 0, 0.2)])
    frames = conversation_frames(("10.0.0.1", 40000), ("10.0.1.1", 80), segments, 1.7e9)
    frames += conversation_frames(("10.0.0.2", 40001), ("10.0.1.1", 80), segments, 1.7e9 + 3)
    data = build(plan, frames)
    if cut:  # a file cut in its last blocks
        data = data[: max(len(data) - cut * 7, 0)]
    monkeypatch.setattr(capfile, "CHUNK", chunk)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "g.pcapng"
        path.write_bytes(data)
        run_both(path, MODES if chunk == 301 else ("csv",))


def test_big_endian_sections_and_link_type_changes(tmp_path: Path) -> None:
    """A file of two sections (little-endian, then big-endian) whose packets alternate
    between an Ethernet and a raw-IP interface: the batches change link type at every
    packet, and every packet is read."""
    segments = handshake_then([(True, 0x19, 0, 0, 512, 5, 0.01), (False, 0x11, 0, 6, 512, 0, 0.2)])
    frames = conversation_frames(("10.0.0.1", 40000), ("10.0.1.1", 80), segments, 1.7e9)
    plan = [
        (endian, [(1, 9, None), (101, 0x80 | 20, 5)], [("epb", i % 2, False) for i in range(3)])
        for endian in "<>"
    ]
    path = tmp_path / "two.pcapng"
    path.write_bytes(build(plan, frames))
    rows, analysis = run_both(path, MODES)
    assert analysis.packets == len(frames)
    assert len(rows) == 1 and rows[0].verdict.packets == len(frames)


def test_a_file_of_blocks_the_walk_skips(tmp_path: Path) -> None:
    """Name resolution, statistics and custom blocks only: no packets, no warning."""
    plan = [("<", [(1, None, None)], [("nrb", 0, False), ("isb", 0, False), ("custom", 0, False)])]
    path = tmp_path / "none.pcapng"
    path.write_bytes(build(plan, []))
    analysis = Analysis()
    assert list(read_rows(path, analysis=analysis)) == []
    assert analysis.packets == 0 and analysis.warnings == []
