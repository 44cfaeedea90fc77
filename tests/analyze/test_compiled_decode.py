"""The compiled loop decodes every link type and both IP versions as `table.decode` does: IPv6
(extension headers, first fragments), VLAN tags, Linux cooked v1/v2, BSD loopback, raw IP,
frames that are not TCP among TCP ones; and with `--filter` (connections left out) and
`--connection` (one connection's packets kept) its rows, counts and timeline are the
reference path's."""

from __future__ import annotations

import socket
import struct
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_fast_path import (
    SEGMENT,
    compiled_loop,
    conversation_frames,
    handshake_then,
    run_both,
    write_pcap,
)

from support.frames import framed
from tcpclose.analyze.compiled import fastscan
from tcpclose.analyze.reading import Analysis, read_rows
from tcpclose.analyze.table import ConnectionTable

#: IPv6 headers before TCP: none, hop-by-hop, routing, destination options (8 bytes each,
#: or 24 for "60-long"), a first fragment, a later fragment (no TCP header: not decoded),
#: two in a row, one whose length runs past the frame
EXTENSIONS = [None, 0, 43, 60, "60-long", 44, "44-later", "0+60", "0-past-end"]


def tcp_ipv6(ipv4_packet: bytes, extension: int | str | None) -> bytes:
    """The TCP segment of an IPv4 packet (no options) in IPv6, between 2001:db8::<IPv4>
    addresses, behind the `extension` headers (see EXTENSIONS)."""
    total = struct.unpack_from("!H", ipv4_packet, 2)[0]
    segment = ipv4_packet[20:total]
    src = b"\x20\x01\x0d\xb8" + b"\0" * 8 + ipv4_packet[12:16]
    dst = b"\x20\x01\x0d\xb8" + b"\0" * 8 + ipv4_packet[16:20]

    def option(following: int, units: int = 0) -> bytes:
        """An extension header of 8 + 8 * units bytes: next header, length, one PadN."""
        pad = 4 + 8 * units
        return bytes([following, units, 1, pad]) + b"\0" * pad

    if extension is None:
        head, nh = b"", 6
    elif extension in (0, 43, 60):
        head, nh = option(6), int(extension)
    elif extension == "60-long":
        head, nh = option(6, 2), 60
    elif extension == "0+60":
        head, nh = option(60) + option(6), 0
    elif extension == "0-past-end":
        head, nh = bytes([6, 255]) + b"\x01\x04" + b"\0" * 4, 0  # says 2048 bytes
    elif extension == 44:
        head, nh = struct.pack("!BBHI", 6, 0, 0x0001, 77), 44  # offset 0, more fragments
    else:
        head, nh = struct.pack("!BBHI", 6, 0, (185 << 3) | 1, 77), 44  # a later fragment
    payload = head + segment
    return struct.pack("!IHBB", 6 << 28, len(payload), nh, 64) + src + dst + payload


def udp_ipv4(t: int) -> bytes:
    udp = struct.pack("!HHHH", 53, 5353, 12, 0) + struct.pack("!I", t)
    return (
        struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            20 + len(udp),
            0,
            0x4000,
            64,
            17,
            0,
            socket.inet_aton("10.0.0.1"),
            socket.inet_aton("10.0.1.1"),
        )
        + udp
    )


def same_everywhere(path: Path, flt: str | None, collect: int | None) -> list:
    """Rows, counts, warnings and timeline of the reference, pure and compiled paths, with
    this filter and collected connection; asserts they agree."""
    results = []
    for reference, compiled in ((True, False), (False, False), (False, True)):
        analysis = Analysis()
        with compiled_loop(compiled):
            rows = list(
                read_rows(path, flt, analysis=analysis, collect=collect, reference=reference)
            )
        counts = (analysis.packets, analysis.tcp_packets, analysis.skipped, analysis.connections)
        results.append((rows, counts, analysis.warnings, analysis.timeline))
    assert results[0] == results[1] == results[2]
    return results[2][0]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    connections=st.lists(
        st.tuples(
            st.integers(0, 3),  # 4-tuple
            st.booleans(),  # IPv6
            st.lists(SEGMENT, max_size=15),
        ),
        min_size=1,
        max_size=6,
    ),
    linktype=st.sampled_from([1, 113, 276, 0, 101]),
    vlan=st.integers(0, 2),
    extension=st.sampled_from([None, None, *EXTENSIONS[1:]]),
    cut=st.sets(st.integers(0, 60), max_size=4),
    udp_every=st.sampled_from([0, 2, 5]),
    collect=st.integers(0, 3),
)
def test_ipv6_vlan_link_types_filter_and_collect(
    connections: list[tuple[int, bool, list]],
    linktype: int,
    vlan: int,
    extension: int | str | None,
    cut: set[int],
    udp_every: int,
    collect: int,
) -> None:
    tagged: list[tuple[float, int, bytes]] = []
    for order, (tuple_id, six, segments) in enumerate(connections):
        client, server = (f"10.0.0.{1 + tuple_id % 2}", 40000 + tuple_id), ("10.0.1.1", 80)
        if tuple_id == 3:  # the same address and port at both ends
            client = server = ("10.0.0.9", 5555)
        for t, ip, _ in conversation_frames(client, server, handshake_then(segments), order):
            tagged.append((t + 1e9, len(tagged), tcp_ipv6(ip, extension) if six else ip))
    tagged.sort()
    frames = []
    for i, (t, _, ip) in enumerate(tagged):
        tags = (i + vlan) % 3  # untagged, 802.1Q, and 802.1ad + 802.1Q frames in turn
        frame = framed(linktype, ip, tags)
        if i in cut:  # cut short: somewhere in the link, IP, extension or TCP header
            frame = frame[: (i * 7) % len(frame)]
        frames.append((t, frame))
        if udp_every and i % udp_every == 0:
            frames.append((t, framed(linktype, udp_ipv4(i), tags)))
    with tempfile.TemporaryDirectory() as tmp:
        path = write_pcap(Path(tmp) / "g.pcap", frames, linktype)
        run_both(path)
        same_everywhere(path, None, collect)
        same_everywhere(path, "port 40001 or host 2001:db8::a00:9", None)
        same_everywhere(path, "not port 40002", collect)


@pytest.mark.skipif(fastscan is None, reason="the compiled loop is not built")
def test_an_ipv6_capture_is_tracked_in_c(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A capture of IPv6 connections behind a VLAN tag is tracked by the compiled loop: Python's
    `_frame` sees almost none of its packets (new tracker states are fed from the loop too),
    and the rows are the reference's. With a filter that leaves every connection out, the
    compiled loop counts their packets."""
    frames = []
    t = 1.7e9
    segments = [(True, 0x18, 0, 0, 512, 20, 0.001), (False, 0x18, 0, 20, 512, 90, 0.001)]
    segments += [(True, 0x11, 20, 90, 512, 0, 0.001), (False, 0x11, 90, 21, 512, 0, 0.001)]
    segments += [(True, 0x10, 21, 91, 512, 0, 0.001)]
    for n in range(2000):
        client = (f"10.5.{n % 10}.{1 + n % 200}", 10000 + n)
        for at, ip, _ in conversation_frames(
            client, ("10.6.0.1", 443), handshake_then(segments), t
        ):
            frames.append((at, framed(1, tcp_ipv6(ip, None), 1)))
        t += 0.01
    path = write_pcap(tmp_path / "six.pcap", frames)
    rows = same_everywhere(path, None, None)
    in_python = []
    frame = ConnectionTable._frame
    monkeypatch.setattr(
        ConnectionTable, "_frame", lambda self, *a: (in_python.append(1), frame(self, *a))[1]
    )
    assert list(read_rows(path)) == rows
    assert len(in_python) < len(frames) // 100
    # Filtered out: Python sees each connection's first packet both ways (the filter's
    # decision), the compiled loop counts the rest.
    in_python.clear()
    assert list(read_rows(path, "port 1")) == []
    assert len(in_python) <= 2 * len(rows) + 100
    assert len(rows) == 2000
    assert {row.verdict.termination.value for row in rows} == {"graceful"}
    assert rows[0].verdict.originator[0] == "2001:db8::a05:1"


@pytest.mark.skipif(fastscan is None, reason="the compiled loop is not built")
def test_long_connections_are_fed_from_c(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Long connections leave the shared states (every segment's numbers are new): their
    trackers are fed from the compiled loop, as `_frame` feeds them, not through `_frame`;
    the rows are the reference's."""
    frames: list[tuple[float, bytes]] = []
    for c in range(3):
        segments = []
        sent = answered = 0
        for i in range(2000):
            segments.append((True, 0x18, sent, answered, 512, 100, 0.0001))
            sent += 100
            segments.append((False, 0x18, answered, sent, 512, 200 + i % 7, 0.0001))
            answered += 200 + i % 7
        segments += [(True, 0x11, sent, answered, 512, 0, 0.001)]
        segments += [(False, 0x11, answered, sent + 1, 512, 0, 0.001)]
        client = (f"10.0.0.{c + 1}", 40000 + c)
        for at, ip, _ in conversation_frames(
            client, ("10.9.9.9", 5432), handshake_then(segments), 1.7e9 + c * 3e-5
        ):
            frames.append((at, framed(1, ip)))
    frames.sort(key=lambda frame: frame[0])
    path = write_pcap(tmp_path / "long.pcap", frames)
    rows = same_everywhere(path, None, None)
    assert [row.verdict.termination.value for row in rows] == ["graceful"] * 3
    in_python = []
    frame = ConnectionTable._frame
    monkeypatch.setattr(
        ConnectionTable, "_frame", lambda self, *a: (in_python.append(1), frame(self, *a))[1]
    )
    assert list(read_rows(path)) == rows
    assert len(in_python) < len(frames) // 100
