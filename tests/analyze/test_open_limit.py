"""Memory stays bounded when a capture holds more connections open at once than a table keeps
(`MAX_OPEN`): a flood of SYNs that nobody answers. The quietest are finished early, with
one warning; every path gives the same rows, and two processes the same rows in another
order."""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from test_analyze_stream import _RSS, ENV, TCPCLOSE, csv_rows
from test_compiled_decode import same_everywhere
from test_fast_path import conversation_frames, csv_output, ethernet, handshake_then, write_pcap

from tcpclose.analyze import parallel, table
from tcpclose.analyze.reading import Analysis, read_rows


def flood(path: Path, syns: int, seconds: float, answered_every: int = 0) -> Path:
    """`syns` unanswered SYNs from distinct 4-tuples over `seconds`; every `answered_every`-th
    one is instead a whole graceful connection (handshake, data, FIN both ways)."""
    frames: list[tuple[float, bytes]] = []
    t0 = 1.7e9
    for i in range(syns):
        t = t0 + seconds * i / syns
        client = (f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}", 1024 + i % 60000)
        if answered_every and i % answered_every == 0:
            segments = [(True, 0x18, 0, 0, 512, 10, 0.0), (False, 0x11, 0, 10, 512, 0, 0.0)]
            segments += [(True, 0x11, 10, 1, 512, 0, 0.0), (False, 0x10, 1, 11, 512, 0, 0.0)]
            for at, ip, _ in conversation_frames(
                client, ("10.200.0.1", 80), handshake_then(segments), t
            ):
                frames.append((at, ethernet(ip)))
            continue
        tcp = struct.pack("!HHIIBBHHH", client[1], 80, i * 7919, 0, 0x50, 0x02, 64240, 0, 0)
        ip = struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            40,
            0,
            0x4000,
            64,
            6,
            0,
            socket.inet_aton(client[0]),
            socket.inet_aton("10.200.0.1"),
        )
        frames.append((t, ethernet(ip + tcp)))
    frames.sort(key=lambda frame: frame[0])
    return write_pcap(path, frames)


@pytest.mark.parametrize("answered_every", [0, 7])
def test_the_quietest_are_finished_early_the_same_way_on_every_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, answered_every: int
) -> None:
    monkeypatch.setattr(table, "MAX_OPEN", 40)
    monkeypatch.setattr(parallel, "MAX_OPEN", 40)
    path = flood(tmp_path / "flood.pcap", 1000, 30.0, answered_every)
    rows = same_everywhere(path, None, None)
    analysis = Analysis()
    assert list(read_rows(path, analysis=analysis)) == rows
    assert len(rows) == 1000 and analysis.connections == 1000
    (warning,) = analysis.warnings
    assert "connections were finished early, while more than 40 were open" in warning
    if answered_every:  # the graceful connections ended on their own, whole
        graceful = [r for r in rows if r.verdict.termination.value == "graceful"]
        assert len(graceful) == len(range(0, 1000, answered_every))
    single_text, _ = csv_output(path, 1)
    for workers in (2, 3):
        text, err = csv_output(path, workers)
        # Each process keeps its share of the limit: other connections go early, in another
        # order; the rows themselves are the same.
        assert csv_rows(text.encode()) == csv_rows(single_text.encode())
        assert "finished early" in err


@pytest.mark.parametrize("first", ["syn", "midstream"])
def test_a_connection_older_than_the_others_is_not_finished_at_its_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, first: str
) -> None:
    """The clock steps back: a new connection's first packet is older than every open
    connection's last. The new connection goes over the limit but is kept (it would otherwise
    be the quietest): every path, and two processes, give the same rows, without an error."""
    monkeypatch.setattr(table, "MAX_OPEN", 40)
    monkeypatch.setattr(parallel, "MAX_OPEN", 40)
    frames: list[tuple[float, bytes]] = []
    for i in range(120):
        client = (f"10.1.0.{1 + i % 200}", 2000 + i)
        flags = 0x02 if first == "syn" or i % 2 else 0x18  # a data segment: no SYN seen
        segments = [(True, flags, 0, 0, 512, 0 if flags == 0x02 else 5, 0.0)]
        segments += [(True, 0x18, 1, 0, 512, 5, 1.0)]
        t = 1000.0 + i if i % 41 else 10.0 + i  # every 41st: long before the others
        for at, ip, _ in conversation_frames(client, ("10.2.0.1", 80), segments, t):
            frames.append((at, ethernet(ip)))
    path = write_pcap(tmp_path / "back.pcap", frames)  # in file order, not time order
    rows = same_everywhere(path, None, None)
    assert len(rows) == 120
    assert all(row.verdict.packets == 2 for row in rows if row.number % 41 == 0)
    single_text, _ = csv_output(path, 1)
    for workers in (2, 3):
        text, err = csv_output(path, workers)
        assert csv_rows(text.encode()) == csv_rows(single_text.encode()), err


def test_rss_is_flat_under_a_syn_flood(tmp_path: Path) -> None:
    """120,000 and 240,000 unanswered SYNs over a minute (more than MAX_OPEN open at once):
    the same peak RSS, under 150 MB, in one process and in two."""
    small = flood(tmp_path / "small.pcap", 120_000, 60.0)
    large = flood(tmp_path / "large.pcap", 240_000, 120.0)
    for workers in ("1", "2"):
        peaks = []
        for path in (small, large):
            done = subprocess.run(
                [sys.executable, "-c", _RSS, *TCPCLOSE, "analyze", str(path), "--csv"],
                capture_output=True,
                env={**ENV, "TCPCLOSE_WORKERS": workers},
                timeout=600,
                check=True,
            )
            peaks.append(int(done.stdout))
        assert peaks[1] <= peaks[0] * 1.1 + 4096, (workers, peaks)  # kB
        assert peaks[1] < 150_000, (workers, peaks)
