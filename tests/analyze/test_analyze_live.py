"""Real traffic: nginx on loopback, captured by tcpdump, analysed, cross-checked with tshark."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from livetraffic import exchange, free_port, nginx, tcpdump

from tcpclose.analyze import analyze_files
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
    return path, kinds, probe


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
