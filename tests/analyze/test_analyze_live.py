"""Real traffic: nginx on loopback, captured by tcpdump, analysed, cross-checked with tshark."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from pathlib import Path

import dpkt
import pytest
from livetraffic import exchange, free_port, nginx, tcpdump

from tcpclose.analyze import analyze_files
from tcpclose.capture.frames import Frame, parse_frame
from tcpclose.classify import Side, Termination

pytestmark = pytest.mark.skipif(
    not (shutil.which("tcpdump") and shutil.which("tshark")), reason="needs tcpdump and tshark"
)

KINDS = ["graceful", "half-close", "reset"] * 8


#: the exchanges in the order they were made: (client port, server port, kind). A list, not
#: a mapping by client port: the kernel may give a client port again (after a reset, or to
#: another server port), and the capture then holds two connections from that port.
Exchanges = list[tuple[int, int, str]]


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Exchanges, int]:
    """One capture of 24 HTTP exchanges of three kinds, one refused connection and a last
    graceful exchange (its end lets the others' last FIN/ACKs reach the capture)."""
    tmp = tmp_path_factory.mktemp("live")
    port, closed = free_port(), free_port()
    kinds: Exchanges = []
    path = tmp / "live.pcap"
    with nginx(tmp / "nginx", port), tcpdump(path, port, closed) as probe:
        for kind in KINDS:
            kinds.append((exchange(port, kind), port, kind))
        kinds.append((exchange(closed, "refused"), closed, "refused"))
        kinds.append((exchange(port, "graceful"), port, "graceful"))
        wait_written(path, probe)
    return path, kinds, probe


#: how long tcpdump may take to write what it has read, on a loaded machine
WRITTEN_TIMEOUT = 60.0


def _marker_seen(path: Path, probe: int, marker: int, since_ns: int) -> bool:
    """Does the file hold the probe port's RST to `marker`, stamped after `since_ns`?"""
    with path.open("rb") as f, contextlib.suppress(dpkt.NeedData, dpkt.UnpackError, ValueError):
        # A record tcpdump is still writing may be cut short: read what is whole.
        for ts, buf in dpkt.pcap.Reader(f):
            t_ns = int(ts * 1_000_000_000)
            packet = parse_frame(Frame(t_ns, bytes(buf)))
            if (
                packet is not None
                and packet.rst
                and (packet.sport, packet.dport) == (probe, marker)
                and t_ns >= since_ns
            ):
                return True
    return False


def wait_written(path: Path, probe: int) -> None:
    """Wait until every packet sent so far is in the capture file.

    "The file stopped growing for 0.3 s" (livetraffic.wait_settled) is not that: tcpdump
    descheduled on a loaded machine writes nothing for a while with packets still in its
    ring, SIGINT then ends it without writing them, and the last connections were missing
    (21 rows instead of 26). Instead a marker: one more connection to the closed probe port
    (our SYN, its RST), and the wait lasts until that RST is in the file. tcpdump writes
    packets in the order it reads them from the ring, so every earlier packet is there too.
    """
    since_ns = time.time_ns() - 1_000_000  # the capture's clock; margin for its stamping
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", 0))
        marker = sock.getsockname()[1]
        with contextlib.suppress(OSError):  # refused: that is the marker
            sock.connect(("127.0.0.1", probe))
    finally:
        sock.close()
    deadline = time.monotonic() + WRITTEN_TIMEOUT
    while not _marker_seen(path, probe, marker, since_ns):
        if time.monotonic() > deadline:
            raise AssertionError(f"the capture did not show the marker within {WRITTEN_TIMEOUT} s")
        time.sleep(0.05)


def tshark_completeness(path: Path) -> dict[int, tuple[int, int]]:
    """tcp.stream -> (client port, tcp.completeness) from `tshark -T fields`."""
    out = subprocess.run(
        [
            "tshark",
            "-n",
            "-2",
            "-r",
            str(path),
            "-T",
            "fields",
            "-e",
            "tcp.stream",
            "-e",
            "tcp.completeness",
            "-e",
            "tcp.srcport",
            "-e",
            "tcp.dstport",
            "-e",
            "tcp.flags",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    streams: dict[int, tuple[int, int]] = {}
    for line in out.splitlines():
        stream, completeness, sport, dport, flags = line.split("\t")
        number = int(stream)
        if number not in streams:
            syn_ack = int(flags, 16) & 0x12 == 0x12
            client = int(dport) if syn_ack else int(sport)
            streams[number] = (client, 0)
        streams[number] = (streams[number][0], streams[number][1] | int(completeness))
    return streams


def test_every_connection_agrees_with_tshark(capture: tuple[Path, Exchanges, int]) -> None:
    path, _, probe = capture
    rows, analysis = analyze_files(path)
    expected = tshark_completeness(path)
    assert analysis.warnings == []
    served = [r for r in rows if r.verdict.responder[1] != probe]
    assert len(served) == len(KINDS) + 2  # the 24 exchanges, the refused one, the last one
    assert [r.number for r in rows] == sorted(expected)
    for row in rows:
        v = row.verdict
        client, bits = expected[row.number]
        assert v.originator[1] == client
        ours = {
            "SYN": "S" in v.history,
            "SYN-ACK": "h" in v.history,
            "FIN": v.first_fin is not None,
            "RST": v.first_rst is not None,
            "DATA": v.bytes_originator + v.bytes_responder > 0,
        }
        theirs = {
            "SYN": bool(bits & 1),
            "SYN-ACK": bool(bits & 2),
            "FIN": bool(bits & 16),
            "RST": bool(bits & 32),
            "DATA": bool(bits & 8),
        }
        assert ours == theirs, (row.number, v.history, v.reason)


def test_each_kind_is_classified(capture: tuple[Path, Exchanges, int]) -> None:
    path, kinds, probe = capture
    rows, _ = analyze_files(path, filter=f"not port {probe}")
    assert len(rows) == len(kinds)
    for row, (client_port, server_port, kind) in zip(rows, kinds, strict=True):
        v = row.verdict  # rows by number: the order the exchanges were made in
        assert (v.originator[1], v.responder[1]) == (client_port, server_port)
        if kind == "graceful":
            assert v.termination is Termination.GRACEFUL, v.reason
            assert v.first_fin is Side.RESPONDER and v.conn_state == "SF"
        elif kind == "half-close":
            assert v.termination is Termination.HALF_CLOSE, v.reason
            assert v.first_fin is Side.ORIGINATOR and v.data_after_fin
        elif kind == "reset":
            assert v.first_rst is Side.ORIGINATOR, v.reason
            assert v.termination in (
                Termination.ABORT,
                Termination.RST_UNREAD,
                Termination.RST_AFTER_CLOSE,
            ), v.reason
        else:
            assert v.termination is Termination.REJECTED and v.conn_state == "REJ"


def test_filter_keeps_one_port(capture: tuple[Path, Exchanges, int]) -> None:
    path, kinds, probe = capture
    some_port = kinds[0][0]
    with_it = [k for k in kinds if some_port in k[:2]]
    rows, _ = analyze_files(path, filter=f"port {some_port}")
    assert [(r.verdict.originator[1], r.verdict.responder[1]) for r in rows] == [
        k[:2] for k in with_it
    ]
    rows, _ = analyze_files(
        path, filter=f"not port {some_port} and host 127.0.0.1 and not port {probe}"
    )
    assert len(rows) == len(kinds) - len(with_it)


def _tcpdump_writing(path: Path) -> int:
    """The pid of the tcpdump writing `path` (a child of this test, found in /proc)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if argv and argv[0].endswith(b"tcpdump") and str(path).encode() in argv:
                return int(proc.name)
    raise AssertionError(f"no tcpdump writes {path}")


def test_a_stalled_tcpdump_still_writes_every_exchange(tmp_path: Path) -> None:
    """tcpdump stopped (SIGSTOP) while the exchanges happen and past the end of the block, as
    a loaded machine may leave it unscheduled: its file does not grow for a second, yet the
    capture must end up with every exchange."""
    import os
    import signal
    import threading

    port = free_port()
    path = tmp_path / "stalled.pcap"
    clients = []
    resumes: list[threading.Timer] = []
    try:
        with nginx(tmp_path / "nginx", port), tcpdump(path, port) as probe:
            pid = _tcpdump_writing(path)
            os.kill(pid, signal.SIGSTOP)
            resumes.append(threading.Timer(1.0, os.kill, (pid, signal.SIGCONT)))
            clients = [exchange(port, "graceful") for _ in range(5)]
            resumes[0].start()  # longer than livetraffic.wait_settled's quiet period
            wait_written(path, probe)
    finally:
        for resume in resumes:
            resume.cancel()
            with contextlib.suppress(ProcessLookupError):  # SIGCONT whatever happened
                resume.function(*resume.args)
    rows, _ = analyze_files(path, filter=f"not port {probe}")
    assert [row.verdict.originator[1] for row in rows] == clients
