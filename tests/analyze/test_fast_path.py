"""The fast path gives the reference path's rows, on every capture the tests can make; the
CSV output on more than one core (`tcpclose.analyze.parallel`) is the single process's.

The reference: `read_rows(..., reference=True)` reads frame by frame and feeds every segment
through `ConnectionTracker.feed_reference` (the rules as written). The fast path: numpy
decoding per read chunk, and `feed_fields` (data and ACK segments specialised). Both must give
the same rows (every verdict field, the connection numbers and their order), the same counts
and the same warnings; one tracker fed both ways must hold the same state after every packet.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import shutil
import socket
import struct
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcpclose.analyze.reading import Analysis, read_rows
from tcpclose.analyze.table import SWEEP, Row
from tcpclose.classify import ConnectionTracker
from tcpclose.commands.analyze import Options, run
from tcpclose.errors import TcpcloseError

sys.path.insert(0, str(Path(__file__).parents[1] / "classify"))
from tcpconv import conversation

DATA = Path(__file__).parents[1] / "data" / "analyze"

#: one segment: (from the first sender?, flags, seq offset, ack offset, window, length, dt)
Segment = tuple[bool, int, int, int, int, int, float]


#: every output of `tcpclose analyze` that more than one process can write
MODES = ("csv", "json", "zeek", "all", "table")


def run_both(path: Path, modes: tuple[str, ...] = ("csv",)) -> tuple[list[Row], Analysis]:
    """Rows and counts of both paths; asserts they are the same (or the same error), and
    that every output in `modes` is the same from 1, 2 and 3 processes."""
    results = []
    # the reference path, the pure fast path, the compiled fast path (when it is built)
    for reference, compiled in ((True, False), (False, False), (False, True)):
        analysis = Analysis()
        try:
            with compiled_loop(compiled):
                rows = list(read_rows(path, analysis=analysis, reference=reference))
        except TcpcloseError as exc:
            results.append(("error", str(exc)))
            continue
        counts = (analysis.packets, analysis.tcp_packets, analysis.skipped, analysis.connections)
        results.append((rows, counts, analysis.warnings))
    assert results[0] == results[1] == results[2]
    for mode in modes:
        with compiled_loop(False):
            single = csv_output(path, 1, mode)
        for workers in (1, 2, 3):
            assert csv_output(path, workers, mode) == single, mode
        with compiled_loop(False):
            assert csv_output(path, 2, mode) == single, mode
    if results[1][0] == "error":
        return [], Analysis()
    return results[1][0], analysis


@contextlib.contextmanager
def compiled_loop(on: bool) -> Iterator[None]:
    """With the compiled inner loop (`tcpclose.analyze._fastscan`, when built) or without."""
    from tcpclose.analyze import capfile, output, parallel, table

    saved = table._fastscan
    modules = (table, parallel, capfile, output)
    for module in modules:
        module._fastscan = saved if on else None  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for module in modules:
            module._fastscan = saved  # type: ignore[attr-defined]


def test_the_compiled_loop_is_built_where_a_compiler_is() -> None:
    """With gcc (install-system-deps installs it), the tests above test the compiled loop."""
    if shutil.which("gcc") is None:
        pytest.skip("no C compiler: the pure path only")
    from tcpclose.analyze import table

    assert table._fastscan is not None


def csv_output(path: Path, workers: int, mode: str = "csv") -> tuple[str, str]:
    """`tcpclose analyze --MODE path` (stdout, stderr) with `workers` processes (1: the single
    process; more: `tcpclose.analyze.parallel`, forced on whatever the file's size). The
    times of a Zeek log's #open and #close lines are left out."""
    saved = os.environ.get("TCPCLOSE_WORKERS")
    os.environ["TCPCLOSE_WORKERS"] = str(workers)
    out, err = io.StringIO(), io.StringIO()
    try:
        run(Options((path,), None, mode, None, width=0), out, err)
    except TcpcloseError as exc:
        return "error", str(exc)
    finally:
        if saved is None:
            del os.environ["TCPCLOSE_WORKERS"]
        else:
            os.environ["TCPCLOSE_WORKERS"] = saved
    text = out.getvalue()
    if mode == "zeek":
        text = "\n".join(ln for ln in text.split("\n") if not ln.startswith(("#open", "#close")))
    return text, err.getvalue()


def state(tracker: ConnectionTracker) -> dict[str, object]:
    """Everything a tracker holds, its two halves and their Zeek endpoints included."""
    out: dict[str, object] = {}
    for name in ConnectionTracker.__slots__:
        value = getattr(tracker, name)
        if name in ("_o", "_r"):
            for slot in type(value).__slots__:
                inner = getattr(value, slot)
                if slot == "z":
                    for zslot in type(inner).__slots__:
                        out[f"{name}.z.{zslot}"] = getattr(inner, zslot)
                else:
                    out[f"{name}.{slot}"] = inner
        else:
            out[name] = list(value) if isinstance(value, list) else value
    return out


# -- building captures ---------------------------------------------------------------------


def tcp_ipv4(
    src: str,
    dst: str,
    sport: int,
    dport: int,
    flags: int,
    seq: int,
    ack: int,
    win: int,
    payload: bytes,
    options: bool = False,
    fragment: bool = False,
    total_zero: bool = False,
) -> bytes:
    seg = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, win, 0, 0) + payload
    ip_options = b"\x01\x01\x01\x00" if options else b""
    ihl = 5 + len(ip_options) // 4
    total = 0 if total_zero else ihl * 4 + len(seg)
    frag = 0x0010 if fragment else 0x4000  # a later fragment: no TCP header
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x40 | ihl,
        0,
        total,
        0,
        frag,
        64,
        6,
        0,
        socket.inet_aton(src),
        socket.inet_aton(dst),
    )
    return header + ip_options + seg


def ethernet(ip: bytes, vlan: bool = False) -> bytes:
    tag = struct.pack("!HH", 0x8100, 7) if vlan else b""
    return b"\0" * 12 + tag + b"\x08\x00" + ip


def write_pcap(path: Path, frames: list[tuple[float, bytes]], linktype: int = 1) -> Path:
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)]
    for t, data in frames:
        sec = int(t)
        out.append(struct.pack("<IIII", sec, round((t - sec) * 1e6), len(data), len(data)))
        out.append(data)
    path.write_bytes(b"".join(out))
    return path


def conversation_frames(
    client: tuple[str, int], server: tuple[str, int], segments: list[Segment], t0: float
) -> list[tuple[float, bytes, bool]]:
    """(time, IPv4 packet, sent by the client) for one 4-tuple's segments."""
    isn = {True: 4_294_967_000, False: 77}  # the client's numbers wrap around 2**32
    out = []
    t = t0
    for from_client, flags, dseq, dack, win, length, dt in segments:
        t += dt
        src, dst = (client, server) if from_client else (server, client)
        seq = (isn[from_client] + dseq) & 0xFFFFFFFF
        ack = (isn[not from_client] + dack) & 0xFFFFFFFF
        ip = tcp_ipv4(src[0], dst[0], src[1], dst[1], flags, seq, ack, win, b"x" * length)
        out.append((t, ip, from_client))
    return out


FLAGS = st.sampled_from(
    [0x02, 0x12, 0x10, 0x18, 0x11, 0x19, 0x04, 0x14, 0x01, 0x05, 0x03, 0x00, 0x08, 0x30, 0x16]
)
SEGMENT = st.tuples(
    st.booleans(),
    FLAGS,
    st.integers(-3000, 6000),
    st.integers(-3000, 6000),
    st.sampled_from([0, 1, 512, 65535]),
    st.sampled_from([0, 0, 0, 1, 5, 100, 1448]),
    st.sampled_from([0.0, 0.001, 0.5, 6.0]),
)


def handshake_then(segments: list[Segment]) -> list[Segment]:
    """A handshake, then the segments with offsets following the data sent so far."""
    out: list[Segment] = [
        (True, 0x02, -1, 0, 65535, 0, 0.0),
        (False, 0x12, -1, 0, 65535, 0, 0.001),
        (True, 0x10, 0, 0, 65535, 0, 0.001),
    ]
    sent = {True: 0, False: 0}
    for from_client, flags, dseq, dack, win, length, dt in segments:
        # half of the time in order (new data at the next byte), else the drawn offset
        seq = sent[from_client] if dseq % 2 else dseq
        ack = sent[not from_client] if dack % 2 else dack
        out.append((from_client, flags, seq, ack, win, length, dt))
        if seq == sent[from_client]:
            sent[from_client] += length + (1 if flags & 1 else 0)
    return out


# -- one tracker, both ways ------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    segments=st.lists(SEGMENT, max_size=40),
    handshake=st.booleans(),
    first_flags=FLAGS,
)
def test_feed_fields_keeps_the_reference_state(
    segments: list[Segment], handshake: bool, first_flags: int
) -> None:
    script = handshake_then(segments) if handshake else segments
    if not script:
        return
    frames = conversation_frames(("10.0.0.1", 40000), ("10.0.0.2", 80), script, 1e9)
    first = script[0]
    flags0 = first_flags if not handshake else first[1]
    trackers = [
        ConnectionTracker.from_fields(1e9, "10.0.0.1", 40000, "10.0.0.2", 80, flags0)
        for _ in range(2)
    ]
    for (t, ip, from_client), (_, flags, *_rest) in zip(frames, script, strict=True):
        is_orig = trackers[0].first_is_originator == from_client
        seq, ack, _off, _flags, win = struct.unpack_from("!IIBBH", ip, 24)
        length = len(ip) - 40
        trackers[0].feed_reference(t, is_orig, flags, seq, ack, win, length)
        trackers[1].feed_fields(t, is_orig, flags, seq, ack, win, length)
        assert state(trackers[0]) == state(trackers[1])
    assert trackers[0].verdict() == trackers[1].verdict()


# -- whole captures, both paths --------------------------------------------------------------


def test_committed_captures(tmp_path: Path) -> None:
    for name in ("three-closes.pcap", "three-closes.pcapng"):
        rows, _ = run_both(DATA / name, MODES)
        assert len(rows) == 3
        gz = tmp_path / f"{name}.gz"
        gz.write_bytes(gzip.compress((DATA / name).read_bytes()))
        assert run_both(gz, MODES)[0] == rows


@pytest.mark.parametrize("linktype", [1, 113, 276, 0, 101, 228])
def test_link_types_and_odd_frames(tmp_path: Path, linktype: int) -> None:
    """Every link type; frames with VLAN tags, IP options, fragments, total length 0, cut
    short, IPv6 and not TCP, mixed within one connection."""
    close = conversation(
        [
            ("c", "S", 0),
            ("s", "SA", 0),
            ("c", "A", 0),
            ("c", "PA", b"data1"),
            ("s", "A", 0),
            ("c", "FA", 0),
            ("s", "A", 0),
            ("s", "PA", b"Hi, data1"),
            ("c", "R", 0),
        ]
    )
    frames: list[tuple[float, bytes]] = []
    for i, p in enumerate(close * 3):
        ip = tcp_ipv4(
            p.src,
            p.dst,
            p.sport,
            p.dport,
            p.flags,
            p.seq,
            p.ack,
            p.win,
            p.payload,
            options=i % 5 == 1,
            fragment=i == 13,
            total_zero=i % 7 == 3,
        )
        if linktype == 1:
            frame = ethernet(ip, vlan=i % 4 == 2)
        elif linktype == 113:
            frame = struct.pack("!HHH8sH", 0, 772, 6, b"\0" * 8, 0x0800) + ip
        elif linktype == 276:
            frame = struct.pack("!HHIHBB8s", 0x0800, 0, 1, 772, 0, 6, b"\0" * 8) + ip
        elif linktype == 0:
            frame = struct.pack("<I", 2) + ip
        else:
            frame = ip
        if i == 20:
            frame = frame[: len(frame) - len(ip) + 30]  # cut inside the TCP header
        frames.append((p.t + i, frame))
        if i % 6 == 0:
            v6 = struct.pack("!IHBB", 6 << 28, 20, 6, 64) + b"\0" * 15 + b"\1" + b"\0" * 15
            v6 += b"\2" + struct.pack("!HHIIBBHHH", 1, 2, 3, 4, 0x50, 0x02, 9, 0, 0)
            udp = ip[:9] + b"\x11" + ip[10:]
            if linktype == 1:
                frames.append((p.t + i, b"\0" * 12 + b"\x86\xdd" + v6))
                frames.append((p.t + i, ethernet(udp)))
            elif linktype in (101, 0):
                frames.append((p.t + i, (struct.pack("<I", 30) if linktype == 0 else b"") + v6))
    rows, analysis = run_both(write_pcap(tmp_path / "x.pcap", frames, linktype), MODES)
    assert rows and analysis.skipped > 0


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    connections=st.lists(
        st.tuples(st.integers(0, 3), st.booleans(), st.lists(SEGMENT, max_size=25)),
        min_size=1,
        max_size=6,
    ),
    vlan=st.sets(st.integers(0, 60), max_size=5),
)
def test_generated_captures(
    connections: list[tuple[int, bool, list[Segment]]], vlan: set[int]
) -> None:
    """Interleaved connections on few 4-tuples (reused), handshake or not, any flags."""
    tagged: list[tuple[float, int, bytes]] = []
    for order, (tuple_id, handshake, segments) in enumerate(connections):
        script = handshake_then(segments) if handshake else segments
        client, server = (f"10.0.0.{1 + tuple_id % 2}", 40000 + tuple_id), ("10.0.1.1", 80)
        if tuple_id == 3:  # the same address and port at both ends: one key both ways
            client = server = ("10.0.0.9", 5555)
        elif tuple_id == 2:  # the server's key is the smaller one
            client, server = ("10.0.1.1", 80), ("10.0.0.1", 40002)
        for t, ip, _ in conversation_frames(client, server, script, 1e9 + order):
            tagged.append((t, len(tagged), ip))
    tagged.sort()
    frames = [(t, ethernet(ip, vlan=i in vlan)) for i, (t, _, ip) in enumerate(tagged)]
    with tempfile.TemporaryDirectory() as tmp:
        run_both(write_pcap(Path(tmp) / "g.pcap", frames))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(["three-closes.pcap", "three-closes.pcapng"]),
    edits=st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 255)), max_size=12),
    cut=st.integers(0, 4000),
)
def test_mutated_captures(seed: str, edits: list[tuple[int, int]], cut: int) -> None:
    """Corrupt and truncated files: the same rows, warnings and errors."""
    data = bytearray((DATA / seed).read_bytes())
    for pos, value in edits:
        if pos < len(data):
            data[pos] = value
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m"
        path.write_bytes(bytes(data[:cut] if cut < len(data) else data))
        run_both(path)


def test_many_connections_across_sweeps(tmp_path: Path) -> None:
    """More than 3 sweeps' worth of packets: connections that linger, late ACKs after the
    linger, idle ones, 4-tuples reused at once and after their end; gaps in time."""
    frames: list[tuple[float, bytes]] = []
    t = 1e9
    n = 0
    while len(frames) < 3 * SWEEP + 5000:
        client = (f"10.1.{n % 7}.{1 + n % 200}", 1024 + n % 900)
        server = ("10.2.0.1", 80 + n % 3)
        kind = n % 6
        segments = [(True, 0x18, 0, 0, 65535, 30, 0.0001), (False, 0x18, 0, 30, 65535, 90, 0.0001)]
        if kind == 0:
            segments += [(True, 0x11, 30, 90, 65535, 0, 0.0001), (False, 0x11, 90, 31, 0, 0, 0.0)]
        elif kind == 1:
            segments += [(False, 0x04, 90, 0, 0, 0, 0.0001)]
        elif kind == 2:
            segments += [(True, 0x11, 30, 90, 65535, 0, 0.0001)]  # half-closed, never ends
        for t_at, ip, _ in conversation_frames(client, server, handshake_then(segments), t):
            frames.append((t_at, ethernet(ip)))
        if kind == 3 and n > 50:  # a late ACK for a connection that ended long ago
            late = frames[-40]
            frames.append((t + 0.0005, late[1]))
        t += 0.0007 if n % 1000 else 7.0
        n += 1
    rows, analysis = run_both(write_pcap(tmp_path / "big.pcap", frames), MODES)
    assert analysis.packets == len(frames) and len(rows) > 10_000


@pytest.mark.parametrize("memo", ["not worth it", "tiny"])
def test_connections_started_in_c_without_shared_states(
    tmp_path: Path, memo: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compiled loop starts connections whatever tracker the memo gives: a plain
    ConnectionTracker when the memo is not worth it (fed through Python), or a MemoTracker of
    a memo of 8 states that keeps starting again and turning trackers real."""
    from tcpclose.classify import memo as memo_module

    if memo == "not worth it":
        monkeypatch.setattr(memo_module.TrackerMemo, "worth_it", property(lambda self: False))
    else:
        monkeypatch.setattr(memo_module.TrackerMemo.__init__, "__defaults__", (8, 1))
    frames: list[tuple[float, bytes]] = []
    t = 1.7e9
    for n in range(300):
        client = (f"10.3.{n % 5}.{1 + n % 50}", 2000 + n)
        segments = [(True, 0x18, 0, 0, 65535, 10 + n % 4, 0.0001)]
        segments += [(False, 0x18, 0, 10 + n % 4, 65535, 50 + n % 3, 0.0001)]
        segments += [(True, 0x11, 10 + n % 4, 50 + n % 3, 65535, 0, 0.0001)]
        if n % 3:
            segments += [(False, 0x11, 50 + n % 3, 11 + n % 4, 65535, 0, 0.0)]
        for t_at, ip, _ in conversation_frames(
            client, ("10.4.0.1", 80), handshake_then(segments), t
        ):
            frames.append((t_at, ethernet(ip)))
        t += 0.01
    rows, _ = run_both(write_pcap(tmp_path / "memo.pcap", frames), ("csv",))
    assert len(rows) == 300


@pytest.mark.skipif(
    not (shutil.which("tcpdump") and (shutil.which("nginx") or Path("/usr/sbin/nginx").exists())),
    reason="needs nginx and tcpdump",
)
def test_live_nginx_capture(tmp_path: Path) -> None:
    from livetraffic import exchange, free_port, nginx, tcpdump

    port, closed = free_port(), free_port()
    path = tmp_path / "live.pcap"
    with nginx(tmp_path / "nginx", port), tcpdump(path, port, closed):
        for kind in ["graceful", "half-close", "reset"] * 5:
            exchange(port, kind)
        exchange(closed, "refused")
        exchange(port, "graceful")
    rows, _ = run_both(path, MODES)
    assert len(rows) >= 17
